// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowRequestWithdrawalTest is Base {
    function test_requestWithdrawal_recordsAmountAndNotice() public {
        uint64 availableAt = uint64(block.timestamp) + WITHDRAWAL_NOTICE;
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.WithdrawalRequested(buyer, 10e6, availableAt);
        vm.prank(buyer);
        escrow.requestWithdrawal(10e6);
        IEscrow.Withdrawal memory pending = escrow.pendingWithdrawal(buyer);
        vm.assertEq(pending.amount, 10e6, "amount");
        vm.assertEq(pending.availableAt, availableAt, "availableAt");
        vm.assertEq(_available(buyer), FUNDING, "nothing moves yet");
    }

    function test_requestWithdrawal_replacesThePendingRequestAndRestartsTheNotice() public {
        vm.prank(buyer);
        escrow.requestWithdrawal(10e6);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE - 1);
        vm.prank(buyer);
        escrow.requestWithdrawal(3e6);
        IEscrow.Withdrawal memory pending = escrow.pendingWithdrawal(buyer);
        vm.assertEq(pending.amount, 3e6, "replaced amount");
        vm.assertEq(pending.availableAt, block.timestamp + WITHDRAWAL_NOTICE, "notice restarted");
    }

    function test_requestWithdrawal_mayExceedTheBalance() public {
        vm.prank(stranger);
        escrow.requestWithdrawal(1e18);
        vm.assertEq(escrow.pendingWithdrawal(stranger).amount, 1e18, "recorded");
    }

    function test_requestWithdrawal_revertsWhenAmountIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, 0));
        vm.prank(buyer);
        escrow.requestWithdrawal(0);
    }

    function test_requestWithdrawal_revertsWhenAmountExceeds128Bits() public {
        uint256 amount = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, amount));
        vm.prank(buyer);
        escrow.requestWithdrawal(amount);
    }

    function testFuzz_requestWithdrawal_becomesAvailableAfterExactlyTheNotice(uint256 amount, uint32 wait) public {
        amount = bound(amount, 1, type(uint128).max);
        vm.warp(block.timestamp + wait);
        vm.prank(buyer);
        escrow.requestWithdrawal(amount);
        vm.assertEq(escrow.pendingWithdrawal(buyer).availableAt, block.timestamp + WITHDRAWAL_NOTICE, "notice");
    }
}
