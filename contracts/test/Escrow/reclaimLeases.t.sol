// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowReclaimLeasesTest is Base {
    IEscrow.SignedLease[] internal _leases;
    bytes32[] internal _tree;
    uint64 internal _reclaimableAt;

    function setUp() public override {
        super.setUp();
        (IEscrow.SignedLease[] memory leases, bytes32[] memory tree) = _commitAndLock(1, 0);
        _leases.push(leases[0]);
        _tree = tree;
        _reclaimableAt = uint64(block.timestamp) + DURATION + SETTLE_WINDOW;
    }

    function test_reclaimLeases_refundsAnUnsettledLeaseInFull() public {
        vm.warp(_reclaimableAt);
        uint256 reservation = _reservation(_leases[0].bid);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseReclaimed(_leases[0].leaseId, reservation);
        vm.prank(stranger); // anyone may reclaim for the buyer
        _reclaim(1, _leases, _tree);
        vm.assertEq(_available(buyer), FUNDING, "refunded");
        vm.assertEq(_reserved(buyer), 0, "released");
        vm.assertEq(_state(buyer, 0), uint256(BidState.Closed), "closed");
    }

    function test_reclaimLeases_letsTheProviderKeepWhatWasPaid() public {
        vm.warp(block.timestamp + 1000);
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 1000, false);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        _settle(1, 2, leases, usages, _tree, usageTree);
        uint256 paid = _cost(uint64(GPUS) * 1000, PRICE);

        vm.warp(_reclaimableAt);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseReclaimed(leases[0].leaseId, _reservation(leases[0].bid) - paid);
        _reclaim(1, leases, _tree);
        vm.assertEq(_available(provider), paid, "provider keeps the paid part");
        vm.assertEq(_available(buyer), FUNDING - paid, "buyer gets the rest");
        vm.assertEq(_reserved(buyer), 0, "released");
        vm.assertEq(escrow.paymentOf(_digest(leases[0])).amount, 0, "payment record cleared");
    }

    function test_reclaimLeases_revertsBeforeTheSettleWindowHasPassed() public {
        vm.warp(_reclaimableAt - 1);
        IEscrow.SignedLease[] memory leases = _leases;
        bytes32[] memory tree = _tree;
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.LeaseReclaimTooEarly.selector, leases[0].leaseId, _reclaimableAt)
        );
        _reclaim(1, leases, tree);
    }

    function testFuzz_reclaimLeases_opensExactlyAtTheEndPlusTheSettleWindow(uint256 wait) public {
        wait = bound(wait, 0, 3 * (DURATION + SETTLE_WINDOW));
        vm.warp(_reclaimableAt - DURATION - SETTLE_WINDOW + wait);
        IEscrow.SignedLease[] memory leases = _leases;
        bytes32[] memory tree = _tree;
        if (block.timestamp < _reclaimableAt) {
            vm.expectRevert(
                abi.encodeWithSelector(IEscrow.LeaseReclaimTooEarly.selector, leases[0].leaseId, _reclaimableAt)
            );
        }
        _reclaim(1, leases, tree);
    }

    function test_reclaimLeases_revertsWhenTheLeaseIsClosed() public {
        vm.warp(_reclaimableAt);
        IEscrow.SignedLease[] memory leases = _leases;
        bytes32[] memory tree = _tree;
        _reclaim(1, leases, tree);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Closed));
        _reclaim(1, leases, tree);
    }

    function test_reclaimLeases_revertsAfterAFinalSettlement() public {
        vm.warp(block.timestamp + DURATION);
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * DURATION, true);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        bytes32[] memory tree = _tree;
        _settle(1, 2, leases, usages, tree, usageTree);
        vm.warp(_reclaimableAt);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Closed));
        _reclaim(1, leases, tree);
    }

    function test_reclaimLeases_revertsWhenTheLeaseWasNeverLocked() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory tree = _commit(2, leases);
        vm.warp(block.timestamp + DURATION + SETTLE_WINDOW);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer2, 0, BidState.Open));
        _reclaim(2, leases, tree);
    }

    function test_reclaimLeases_revertsWhenNoLeaseIsGiven() public {
        IEscrow.SignedLease[] memory none;
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowEmptyOrMismatchedBatch.selector, 0, 0));
        escrow.reclaimLeases(1, none, proof);
    }

    function test_reclaimLeases_revertsWhenTheBatchIsUnknown() public {
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementUnknownBatch.selector, uint64(5)));
        escrow.reclaimLeases(5, leases, proof);
    }

    function test_reclaimLeases_revertsWhenALockedLeasePresentsOtherTerms() public {
        vm.warp(_reclaimableAt);
        IEscrow.SignedLease[] memory leases = _leases;
        leases[0].pricePerGpuHour = 1;
        bytes32[] memory tree = _tree;
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.LeaseTermsMismatch.selector, leases[0].leaseId, _digest(leases[0]))
        );
        _reclaim(1, leases, tree);
    }

    /// @dev The same bid committed again in a later root cannot reclaim (on its own, later, schedule) the lease
    /// locked from the first root.
    function test_reclaimLeases_revertsThroughAnotherCommittedLeafOfTheSameBid() public {
        IEscrow.SignedLease[] memory other = _leases;
        other[0].leaseId = 999;
        bytes32[] memory otherTree = _commit(2, other);
        vm.warp(_reclaimableAt);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.LeaseTermsMismatch.selector, uint64(999), _digest(other[0])));
        _reclaim(2, other, otherTree);
    }

    function test_reclaimLeases_revertsWhenTheProofDoesNotRebuildTheRoot() public {
        vm.warp(_reclaimableAt);
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.MultiProof memory proof;
        proof.proof = new bytes32[](1);
        proof.flags = new bool[](1);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(1)));
        escrow.reclaimLeases(1, leases, proof);
    }

    function test_reclaimLeases_needsNoSignatureAndClearsTheLockedLeaf() public {
        vm.warp(_reclaimableAt);
        IEscrow.SignedLease[] memory leases = _leases;
        bytes32 digest = _digest(leases[0]);
        vm.assertEq(escrow.lockedLeaf(digest), _tree[0], "recorded");
        (leases[0].r, leases[0].vs) = (bytes32(0), bytes32(0));
        _reclaim(1, leases, _tree);
        vm.assertEq(escrow.lockedLeaf(digest), bytes32(0), "cleared");
        vm.assertEq(_available(buyer), FUNDING, "refunded");
    }
}
