// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowWithdrawTest is Base {
    function _request(address account, uint256 amount) internal returns (uint64 availableAt) {
        vm.prank(account);
        escrow.requestWithdrawal(amount);
        return escrow.pendingWithdrawal(account).availableAt;
    }

    function test_withdraw_paysTheRequestAfterTheNotice() public {
        _request(buyer, 10e6);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.Withdrawn(buyer, 10e6);
        vm.prank(buyer);
        uint256 paid = escrow.withdraw();
        vm.assertEq(paid, 10e6, "paid");
        vm.assertEq(token.balanceOf(buyer), 10e6, "tokens out");
        vm.assertEq(_available(buyer), FUNDING - 10e6, "ledger debited");
        vm.assertEq(escrow.pendingWithdrawal(buyer).availableAt, 0, "request consumed");
    }

    function test_withdraw_revertsBeforeTheNoticeHasPassed() public {
        uint64 availableAt = _request(buyer, 10e6);
        vm.warp(availableAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.EscrowWithdrawalNotYetAvailable.selector, buyer, availableAt)
        );
        vm.prank(buyer);
        escrow.withdraw();
    }

    function test_withdraw_revertsWhenNoneIsPending() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowNoWithdrawalPending.selector, buyer));
        vm.prank(buyer);
        escrow.withdraw();
    }

    function test_withdraw_revertsWhenTheRequestWasAlreadyExecuted() public {
        _request(buyer, 1e6);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        vm.startPrank(buyer);
        escrow.withdraw();
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowNoWithdrawalPending.selector, buyer));
        escrow.withdraw();
        vm.stopPrank();
    }

    function test_withdraw_paysOnlyTheAvailableBalanceAndNeverTheReserve() public {
        (IEscrow.SignedLease[] memory leases,) = _commitAndLock(1, 0);
        uint256 reserved = _reservation(leases[0].bid);
        _request(buyer, FUNDING);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        vm.prank(buyer);
        uint256 paid = escrow.withdraw();
        vm.assertEq(paid, FUNDING - reserved, "available only");
        vm.assertEq(_available(buyer), 0, "available drained");
        vm.assertEq(_reserved(buyer), reserved, "reserve intact");
    }

    function test_withdraw_paysZeroWhenNothingIsAvailable() public {
        _request(stranger, 5e6);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        vm.prank(stranger);
        vm.assertEq(escrow.withdraw(), 0, "nothing to pay");
    }

    /// @dev The notice outlasts the lock window: a buyer who asks to withdraw when a root commits its bid cannot
    /// pull the money before the lease is locked.
    function test_withdraw_cannotOutrunTheLockWindow() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        uint64 availableAt = _request(buyer, FUNDING);
        vm.warp(block.timestamp + LOCK_WINDOW);
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.EscrowWithdrawalNotYetAvailable.selector, buyer, availableAt)
        );
        vm.prank(buyer);
        escrow.withdraw();
        _lock(1, leases, tree);
        vm.assertEq(_reserved(buyer), _reservation(leases[0].bid), "locked in time");
    }

    function testFuzz_withdraw_paysTheLesserOfRequestAndAvailable(uint256 deposit, uint256 request) public {
        deposit = bound(deposit, 1, 1e30);
        request = bound(request, 1, type(uint128).max);
        _fund(stranger, deposit);
        _request(stranger, request);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        vm.prank(stranger);
        uint256 paid = escrow.withdraw();
        uint256 expected = request < deposit ? request : deposit;
        vm.assertEq(paid, expected, "paid");
        vm.assertEq(_available(stranger), deposit - expected, "rest stays");
        vm.assertEq(token.balanceOf(stranger), expected, "tokens out");
    }
}
