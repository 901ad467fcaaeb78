// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Bid} from "../../src/libraries/Orders.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowSettleLeasesTest is Base {
    uint64 internal constant FULL = uint64(GPUS) * DURATION;

    IEscrow.SignedLease[] internal _leases;
    bytes32[] internal _leaseTree;
    uint256 internal _startedAt;

    /// @dev One locked default lease of `buyer`, committed in batch 1 at `_startedAt`.
    function setUp() public override {
        super.setUp();
        _startedAt = block.timestamp;
        (IEscrow.SignedLease[] memory leases, bytes32[] memory tree) = _commitAndLock(1, 0);
        _leases.push(leases[0]);
        _leaseTree = tree;
    }

    function _settleAt(uint64 usageBatchId, uint64 used, bool isFinal) internal {
        _settleCommitted(usageBatchId, used, isFinal, _commitUsageAt(usageBatchId, used, isFinal));
    }

    function _commitUsageAt(uint64 usageBatchId, uint64 used, bool isFinal) internal returns (bytes32[] memory) {
        return _commitUsage(1, usageBatchId, _leases, _usages(used, isFinal));
    }

    function _settleCommitted(uint64 usageBatchId, uint64 used, bool isFinal, bytes32[] memory usageTree) internal {
        _settle(1, usageBatchId, _leases, _usages(used, isFinal), _leaseTree, usageTree);
    }

    function _expectRevertSettle(uint64 usageBatchId, uint64 used, bool isFinal, bytes memory err) internal {
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(used, isFinal);
        bytes32[] memory usageTree = _commitUsage(1, usageBatchId, leases, usages);
        bytes32[] memory leaseTree = _leaseTree;
        vm.expectRevert(err);
        _settle(1, usageBatchId, leases, usages, leaseTree, usageTree);
    }

    // --- payments -------------------------------------------------------------------------------------------------

    function test_settleLeases_paysTheProviderForProvenUsage() public {
        vm.warp(_startedAt + 1800);
        uint64 used = uint64(GPUS) * 1800;
        uint256 due = _cost(used, PRICE);
        bytes32[] memory usageTree = _commitUsageAt(2, used, false);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseSettled(_leases[0].leaseId, used, due, 0, false);
        _settleCommitted(2, used, false, usageTree);
        vm.assertEq(_available(provider), due, "provider paid");
        vm.assertEq(_reserved(buyer), _reservation(_leases[0].bid) - due, "reserve reduced");
        vm.assertEq(_state(buyer, 0), uint256(BidState.PartiallySettled), "partially settled");
        IEscrow.Payment memory paid = escrow.paymentOf(_digest(_leases[0]));
        vm.assertEq(paid.gpuSeconds, used, "paid seconds");
        vm.assertEq(paid.amount, due, "paid amount");
    }

    function test_settleLeases_paysOnlyTheIncrementOfCumulativeUsage() public {
        vm.warp(_startedAt + 1000);
        _settleAt(2, uint64(GPUS) * 1000, false);
        vm.warp(_startedAt + 3000);
        _settleAt(3, uint64(GPUS) * 3000, false);
        vm.assertEq(_available(provider), _cost(uint64(GPUS) * 3000, PRICE), "total is the cumulative cost");
    }

    function test_settleLeases_finalUsageClosesAndRefundsTheRest() public {
        vm.warp(_startedAt + 1000);
        _settleAt(2, uint64(GPUS) * 1000, false);
        vm.warp(_startedAt + DURATION);
        uint64 used = FULL - 100;
        uint256 total = _cost(used, PRICE);
        uint256 reservation = _reservation(_leases[0].bid);
        bytes32[] memory usageTree = _commitUsageAt(3, used, true);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseSettled(
            _leases[0].leaseId, used, total - _cost(uint64(GPUS) * 1000, PRICE), reservation - total, true
        );
        _settleCommitted(3, used, true, usageTree);
        vm.assertEq(_available(provider), total, "provider paid in total");
        vm.assertEq(_reserved(buyer), 0, "reserve released");
        vm.assertEq(_available(buyer), FUNDING - total, "buyer refunded the rest");
        vm.assertEq(_state(buyer, 0), uint256(BidState.Closed), "closed");
        vm.assertEq(escrow.paymentOf(_digest(_leases[0])).amount, 0, "payment record cleared");
    }

    function test_settleLeases_finalUsageOfZeroRefundsEverything() public {
        _settleAt(2, 0, true);
        vm.assertEq(_available(buyer), FUNDING, "full refund");
        vm.assertEq(_available(provider), 0, "nothing paid");
    }

    function test_settleLeases_settlesAfterTheProviderLeft() public {
        vm.prank(provider);
        registry.requestExit();
        vm.warp(_startedAt + DURATION);
        _settleAt(2, FULL, true);
        vm.assertEq(_available(provider), _cost(FULL, PRICE), "still paid for a locked lease");
    }

    function test_settleLeases_locksAnOpenLeaseInTheSameCall() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory leaseTree = _commit(2, leases);
        vm.warp(block.timestamp + 60);
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 60, false);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        uint256 due = _cost(uint64(GPUS) * 60, PRICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseLocked(
            leases[0].leaseId, buyer2, provider, 2, 0, _digest(leases[0]), _reservation(leases[0].bid)
        );
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseSettled(leases[0].leaseId, uint64(GPUS) * 60, due, 0, false);
        _settle(2, 3, leases, usages, leaseTree, usageTree);
        vm.assertEq(_state(buyer2, 0), uint256(BidState.PartiallySettled), "locked and settled");
        vm.assertEq(_reserved(buyer2), _reservation(leases[0].bid) - due, "reserved less paid");
    }

    function test_settleLeases_revertsWhenLockingAnOpenLeaseAfterTheLockWindow() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory leaseTree = _commit(2, leases);
        uint64 closesAt = uint64(block.timestamp) + LOCK_WINDOW;
        vm.warp(closesAt + 1);
        IEscrow.Usage[] memory usages = _usages(0, true);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.LeaseLockWindowClosed.selector, uint64(2), closesAt));
        _settle(2, 3, leases, usages, leaseTree, usageTree);
    }

    // --- bounds ---------------------------------------------------------------------------------------------------

    function test_settleLeases_revertsBeyondTheElapsedTime() public {
        vm.warp(_startedAt + 100);
        uint64 used = uint64(GPUS) * 100 + 1;
        _expectRevertSettle(
            2,
            used,
            false,
            abi.encodeWithSelector(
                IEscrow.SettlementExceedsElapsed.selector, _leases[0].leaseId, used, uint256(GPUS) * 100
            )
        );
    }

    function test_settleLeases_revertsBeyondTheDurationLongAfterTheEnd() public {
        vm.warp(_startedAt + 10 * DURATION);
        _expectRevertSettle(
            2,
            FULL + 1,
            true,
            abi.encodeWithSelector(IEscrow.SettlementExceedsElapsed.selector, _leases[0].leaseId, FULL + 1, FULL)
        );
    }

    function test_settleLeases_revertsWhenUsageDecreases() public {
        vm.warp(_startedAt + 1000);
        _settleAt(2, uint64(GPUS) * 1000, false);
        uint64 lower = uint64(GPUS) * 1000 - 1;
        _expectRevertSettle(
            3,
            lower,
            true,
            abi.encodeWithSelector(
                IEscrow.SettlementUsageDecreased.selector, _leases[0].leaseId, lower, uint64(GPUS) * 1000
            )
        );
    }

    function test_settleLeases_revertsWhenTheLeaseIsClosed() public {
        vm.warp(_startedAt + DURATION);
        _settleAt(2, FULL, true);
        _expectRevertSettle(
            3, FULL, true, abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Closed)
        );
    }

    // --- arguments and proofs -------------------------------------------------------------------------------------

    function test_settleLeases_revertsWhenUsageComesFromTheLeaseBatch() public {
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(0, true);
        IEscrow.MultiProof memory proof = _proofOfAll(_leaseTree, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.SettlementUsageBatchNotAfterLease.selector, uint64(1), uint64(1))
        );
        escrow.settleLeases(1, 1, leases, usages, proof, proof);
    }

    function test_settleLeases_revertsWhenLengthsMismatch() public {
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages;
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowEmptyOrMismatchedBatch.selector, 1, 0));
        escrow.settleLeases(1, 2, leases, usages, proof, proof);
    }

    function test_settleLeases_revertsWhenNoLeaseIsGiven() public {
        IEscrow.SignedLease[] memory leases;
        IEscrow.Usage[] memory usages;
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowEmptyOrMismatchedBatch.selector, 0, 0));
        escrow.settleLeases(1, 2, leases, usages, proof, proof);
    }

    function test_settleLeases_revertsWhenTheUsageBatchIsUnknown() public {
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(0, true);
        IEscrow.MultiProof memory proof = _proofOfAll(_leaseTree, 1);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementUnknownBatch.selector, uint64(2)));
        escrow.settleLeases(1, 2, leases, usages, proof, proof);
    }

    function test_settleLeases_revertsWhenAPartialUsageIsPresentedAsFinal() public {
        vm.warp(_startedAt + 1000);
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 1000, false);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        usages[0].isFinal = true;
        bytes32[] memory leaseTree = _leaseTree;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(2)));
        _settle(1, 2, leases, usages, leaseTree, usageTree);
    }

    function test_settleLeases_revertsWhenALockedLeasePresentsOtherTerms() public {
        vm.warp(_startedAt + 1000);
        IEscrow.SignedLease[] memory leases = _leases;
        leases[0].provider = stranger; // divert the payment
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 1000, false);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        bytes32[] memory leaseTree = _leaseTree;
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.LeaseTermsMismatch.selector, leases[0].leaseId, _digest(leases[0]))
        );
        _settle(1, 2, leases, usages, leaseTree, usageTree);
    }

    /// @dev The attack the locked-leaf record closes: the same signed bid committed again in a later root with
    /// another payee and an earlier-looking start cannot settle the lease locked from the first root.
    function test_settleLeases_revertsWhenTheSameBidIsSettledThroughAnotherCommittedLeaf() public {
        IEscrow.SignedLease[] memory other = _leases;
        other[0].provider = stranger;
        other[0].leaseId = 999;
        bytes32[] memory otherTree = _commit(2, other);
        vm.warp(_startedAt + 1000);
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 1000, true);
        bytes32[] memory usageTree = _commitUsage(2, 3, other, usages);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.LeaseTermsMismatch.selector, uint64(999), _digest(other[0])));
        _settle(2, 3, other, usages, otherTree, usageTree);
    }

    function test_settleLeases_revertsWhenTheLeafOfAnOpenLeaseWasTamperedWith() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory leaseTree = _commit(2, leases);
        leases[0].pricePerGpuHour = PRICE - 1;
        IEscrow.Usage[] memory usages = _usages(0, false);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(2)));
        _settle(2, 3, leases, usages, leaseTree, usageTree);
    }

    function test_settleLeases_needsNoSignatureOnceLocked() public {
        vm.warp(_startedAt + DURATION);
        IEscrow.SignedLease[] memory leases = _leases;
        (leases[0].r, leases[0].vs) = (bytes32(0), bytes32(0));
        IEscrow.Usage[] memory usages = _usages(FULL, true);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        _settle(1, 2, leases, usages, _leaseTree, usageTree);
        vm.assertEq(_state(buyer, 0), uint256(BidState.Closed), "closed without a signature");
    }

    function test_settleLeases_recordsTheLockedLeafUntilTheLeaseCloses() public {
        bytes32 digest = _digest(_leases[0]);
        vm.assertEq(escrow.lockedLeaf(digest), _leaseTree[0], "recorded at lock");
        vm.warp(_startedAt + 1000);
        _settleAt(2, uint64(GPUS) * 1000, false);
        vm.assertEq(escrow.lockedLeaf(digest), _leaseTree[0], "kept while open");
        _settleAt(3, uint64(GPUS) * 1000, true);
        vm.assertEq(escrow.lockedLeaf(digest), bytes32(0), "cleared at close");
    }

    function test_settleLeases_recordsNoLeafForALeaseLockedAndClosedInOneCall() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory leaseTree = _commit(2, leases);
        IEscrow.Usage[] memory usages = _usages(0, true);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        _settle(2, 3, leases, usages, leaseTree, usageTree);
        vm.assertEq(_state(buyer2, 0), uint256(BidState.Closed), "closed");
        vm.assertEq(escrow.lockedLeaf(_digest(leases[0])), bytes32(0), "no record");
    }

    function test_settleLeases_recordsTheLeafOfALeaseLockedAndLeftOpenInOneCall() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER2_KEY, 0));
        bytes32[] memory leaseTree = _commit(2, leases);
        IEscrow.Usage[] memory usages = _usages(0, false);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        _settle(2, 3, leases, usages, leaseTree, usageTree);
        vm.assertEq(escrow.lockedLeaf(_digest(leases[0])), leaseTree[0], "recorded");
    }

    function test_settleLeases_revertsWhenTheUsageIsForAnotherLease() public {
        vm.warp(_startedAt + 1000);
        IEscrow.SignedLease[] memory leases = _leases;
        IEscrow.SignedLease[] memory other = _one(_lease(BUYER2_KEY, 0));
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * 1000, false);
        bytes32[] memory usageTree = _commitUsage(1, 2, other, usages);
        bytes32[] memory leaseTree = _leaseTree;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(2)));
        _settle(1, 2, leases, usages, leaseTree, usageTree);
    }

    // --- properties -----------------------------------------------------------------------------------------------

    function testFuzz_settleLeases_neverPaysBeyondElapsed(uint256 elapsed, uint256 used) public {
        elapsed = bound(elapsed, 0, 3 * DURATION);
        used = bound(used, 0, FULL + 1000);
        vm.warp(_startedAt + elapsed);
        uint256 maxGpuSeconds = uint256(GPUS) * (elapsed < DURATION ? elapsed : DURATION);
        if (used > maxGpuSeconds) {
            _expectRevertSettle(
                2,
                uint64(used),
                false,
                abi.encodeWithSelector(
                    IEscrow.SettlementExceedsElapsed.selector, _leases[0].leaseId, uint64(used), maxGpuSeconds
                )
            );
            return;
        }
        _settleAt(2, uint64(used), false);
        vm.assertEq(_available(provider), _cost(used, PRICE), "paid the cost of the usage");
        vm.assertLe(_available(provider), _cost(maxGpuSeconds, PRICE), "never beyond elapsed");
    }

    function testFuzz_settleLeases_partialsThenFinalPayTheFinalCostAndRefundTheRest(
        uint256 first,
        uint256 second,
        uint256 last,
        uint128 price
    ) public {
        // A fresh lease at a fuzzed price, so rounding of each step is exercised.
        price = uint128(bound(price, 0, MAX_PRICE));
        IEscrow.SignedLease[] memory leases = _one(_signedLease(BUYER2_KEY, _bid(buyer2, 0), provider, price));
        bytes32[] memory leaseTree = _commit(2, leases);
        _lock(2, leases, leaseTree);
        uint256 startedAt = block.timestamp;
        vm.warp(startedAt + DURATION);
        first = bound(first, 0, FULL);
        second = bound(second, first, FULL);
        last = bound(last, second, FULL);
        uint64[3] memory steps = [uint64(first), uint64(second), uint64(last)];
        for (uint64 i; i < 3; ++i) {
            IEscrow.Usage[] memory usages = _usages(steps[i], i == 2);
            bytes32[] memory usageTree = _commitUsage(2, 3 + i, leases, usages);
            _settle(2, 3 + i, leases, usages, leaseTree, usageTree);
        }
        uint256 total = _cost(last, price);
        vm.assertEq(_available(provider), total, "provider gets the final cost");
        vm.assertEq(_available(buyer2), FUNDING - total, "buyer pays exactly that");
        vm.assertEq(_reserved(buyer2), 0, "nothing left reserved");
        vm.assertLe(total, _reservation(leases[0].bid), "within the reservation");
    }

    /// @dev `SettlementExceedsLocked` is a guard that the checks before it make unreachable: the price is capped at
    /// the bid's cap and usage at gpus x duration, so the cost is at most the reservation. This property pins that.
    function testFuzz_settleLeases_fullUsageAtTheCapNeverExceedsTheReservation(
        uint16 gpus,
        uint32 duration,
        uint128 cap
    ) public {
        gpus = uint16(bound(gpus, 1, type(uint16).max));
        duration = uint32(bound(duration, 1, 7 days));
        cap = uint128(bound(cap, 0, 1e9));
        Bid memory bid = _bid(buyer2, 1);
        (bid.gpus, bid.duration, bid.maxPricePerGpuHour) = (gpus, duration, cap);
        vm.assume(_reservation(bid) <= FUNDING);
        IEscrow.SignedLease[] memory leases = _one(_signedLease(BUYER2_KEY, bid, provider, cap));
        bytes32[] memory leaseTree = _commit(2, leases);
        vm.warp(block.timestamp + duration);
        IEscrow.Usage[] memory usages = _usages(uint64(gpus) * duration, true);
        bytes32[] memory usageTree = _commitUsage(2, 3, leases, usages);
        if (duration > LOCK_WINDOW) {
            _lockEarlyThenSettle(leases, leaseTree, usages, usageTree, duration);
        } else {
            _settle(2, 3, leases, usages, leaseTree, usageTree);
        }
        vm.assertEq(_available(provider), _reservation(bid), "full usage at the cap costs the reservation");
        vm.assertEq(_reserved(buyer2), 0, "released");
    }

    function _lockEarlyThenSettle(
        IEscrow.SignedLease[] memory leases,
        bytes32[] memory leaseTree,
        IEscrow.Usage[] memory usages,
        bytes32[] memory usageTree,
        uint32 duration
    ) internal {
        vm.warp(block.timestamp - duration);
        _lock(2, leases, leaseTree);
        vm.warp(block.timestamp + duration);
        _settle(2, 3, leases, usages, leaseTree, usageTree);
    }
}
