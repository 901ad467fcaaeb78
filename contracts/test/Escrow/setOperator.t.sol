// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowSetOperatorTest is Base {
    function test_setOperator_movesTheRole() public {
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.OperatorChanged(operator, stranger);
        vm.prank(owner);
        escrow.setOperator(stranger);
        vm.assertEq(escrow.operator(), stranger, "operator");

        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementUnauthorizedOperator.selector, operator));
        vm.prank(operator);
        escrow.postRoot(1, keccak256("root"));
        vm.prank(stranger);
        escrow.postRoot(1, keccak256("root"));
    }

    function test_setOperator_revertsWhenCallerIsNotTheOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        vm.prank(operator);
        escrow.setOperator(operator);
    }

    function test_setOperator_revertsWhenOperatorIsZero() public {
        vm.expectRevert(IEscrow.EscrowZeroAddress.selector);
        vm.prank(owner);
        escrow.setOperator(address(0));
    }
}
