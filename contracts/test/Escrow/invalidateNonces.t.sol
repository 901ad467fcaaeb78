// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowInvalidateNoncesTest is Base {
    function test_invalidateNonces_closesOpenNoncesAndEmitsTheirLanes() public {
        // mask bits 0 and 2 -> lanes 0 and 4 (bit 2i per nonce i)
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.NoncesInvalidated(buyer, 3, (1 << 0) | (1 << 4));
        vm.prank(buyer);
        escrow.invalidateNonces(3, 0x5);
        vm.assertEq(_state(buyer, 3 * 128), uint256(BidState.Closed), "nonce 384 closed");
        vm.assertEq(_state(buyer, 3 * 128 + 1), uint256(BidState.Open), "nonce 385 open");
        vm.assertEq(_state(buyer, 3 * 128 + 2), uint256(BidState.Closed), "nonce 386 closed");
        vm.assertEq(_state(buyer2, 3 * 128), uint256(BidState.Open), "other accounts untouched");
    }

    function test_invalidateNonces_beatsLocking() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 7));
        bytes32[] memory tree = _commit(1, leases);
        vm.prank(buyer);
        escrow.invalidateNonces(0, uint128(1) << 7);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 7, BidState.Closed));
        _lock(1, leases, tree);
        vm.assertEq(_reserved(buyer), 0, "nothing reserved");
    }

    function test_invalidateNonces_beatsLockAndSettle() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 7));
        bytes32[] memory leaseTree = _commit(1, leases);
        IEscrow.Usage[] memory usages = _usages(0, false);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        vm.prank(buyer);
        escrow.invalidateNonces(0, uint128(1) << 7);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 7, BidState.Closed));
        _settle(1, 2, leases, usages, leaseTree, usageTree);
    }

    function test_invalidateNonces_leavesALockedLeaseLocked() public {
        (IEscrow.SignedLease[] memory leases, bytes32[] memory tree) = _commitAndLock(1, 5);
        // The locked nonce's lane is not reported as closed; its neighbour's is.
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.NoncesInvalidated(buyer, 0, 1 << 12);
        vm.prank(buyer);
        escrow.invalidateNonces(0, (uint128(1) << 5) | (uint128(1) << 6));
        vm.assertEq(_state(buyer, 5), uint256(BidState.Locked), "still locked");
        vm.assertEq(_state(buyer, 6), uint256(BidState.Closed), "neighbour closed");

        // The lease still settles to the end.
        vm.warp(block.timestamp + DURATION);
        IEscrow.Usage[] memory usages = _usages(uint64(GPUS) * DURATION, true);
        bytes32[] memory usageTree = _commitUsage(1, 2, leases, usages);
        _settle(1, 2, leases, usages, tree, usageTree);
        vm.assertEq(_available(provider), _cost(uint64(GPUS) * DURATION, PRICE), "provider paid");
        vm.assertEq(_state(buyer, 5), uint256(BidState.Closed), "closed by settlement");
    }

    function test_invalidateNonces_isIdempotent() public {
        vm.startPrank(buyer);
        escrow.invalidateNonces(0, 1);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.NoncesInvalidated(buyer, 0, 0);
        escrow.invalidateNonces(0, 1);
        vm.stopPrank();
        vm.assertEq(_state(buyer, 0), uint256(BidState.Closed), "closed");
    }

    function testFuzz_invalidateNonces_closesExactlyTheMaskedOpenNonces(uint256 wordPos, uint128 mask, uint8 lane)
        public
    {
        wordPos = bound(wordPos, 0, type(uint256).max >> 7);
        vm.prank(buyer);
        escrow.invalidateNonces(wordPos, mask);
        uint256 nonce = (wordPos << 7) | (lane & 127);
        bool masked = (mask >> (lane & 127)) & 1 == 1;
        vm.assertEq(_state(buyer, nonce), masked ? uint256(BidState.Closed) : uint256(BidState.Open), "lane");
    }
}
