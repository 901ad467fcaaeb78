// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowCancelWithdrawalTest is Base {
    function test_cancelWithdrawal_dropsThePendingRequest() public {
        vm.startPrank(buyer);
        escrow.requestWithdrawal(10e6);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.WithdrawalCancelled(buyer);
        escrow.cancelWithdrawal();
        vm.stopPrank();
        vm.assertEq(escrow.pendingWithdrawal(buyer).availableAt, 0, "cleared");
    }

    function test_cancelWithdrawal_revertsWhenNoneIsPending() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowNoWithdrawalPending.selector, buyer));
        vm.prank(buyer);
        escrow.cancelWithdrawal();
    }
}
