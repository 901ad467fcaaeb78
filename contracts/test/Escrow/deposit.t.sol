// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Escrow} from "../../src/Escrow.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {FeeOnTransferToken} from "../utils/FeeOnTransferToken.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowDepositTest is Base {
    function _approve(address from, uint256 amount) internal {
        token.mint(from, amount);
        vm.prank(from);
        token.approve(address(escrow), amount);
    }

    function test_deposit_creditsAvailableAndEmits() public {
        _approve(stranger, 5e6);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.Deposited(stranger, 5e6);
        vm.prank(stranger);
        escrow.deposit(5e6);
        vm.assertEq(_available(stranger), 5e6, "available");
        vm.assertEq(_reserved(stranger), 0, "reserved");
        vm.assertEq(token.balanceOf(address(escrow)), 2 * FUNDING + 5e6, "escrow balance");
    }

    function test_deposit_revertsWhenAmountIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, 0));
        vm.prank(stranger);
        escrow.deposit(0);
    }

    function test_deposit_revertsWhenAmountExceeds128Bits() public {
        uint256 amount = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, amount));
        vm.prank(stranger);
        escrow.deposit(amount);
    }

    /// @dev Two deposits that each fit in 128 bits but together do not must revert, not wrap the balance.
    function test_deposit_revertsRatherThanTruncatingA128BitBalance() public {
        uint256 amount = type(uint128).max;
        _approve(stranger, 2 * amount);
        vm.startPrank(stranger);
        escrow.deposit(amount);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, amount));
        escrow.deposit(amount);
        vm.stopPrank();
        vm.assertEq(_available(stranger), amount, "balance kept");
    }

    function test_deposit_revertsWithoutAllowance() public {
        token.mint(stranger, 1e6);
        vm.expectRevert();
        vm.prank(stranger);
        escrow.deposit(1e6);
    }

    function testFuzz_deposit_creditsExactlyTheAmount(uint256 amount) public {
        amount = bound(amount, 1, type(uint128).max - 2 * FUNDING);
        _approve(stranger, amount);
        vm.prank(stranger);
        escrow.deposit(amount);
        vm.assertEq(_available(stranger), amount, "available");
        vm.assertEq(token.balanceOf(address(escrow)), 2 * FUNDING + amount, "escrow balance");
    }

    function test_depositFor_creditsTheAccountNotTheCaller() public {
        _approve(stranger, 7e6);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.Deposited(buyer2, 7e6);
        vm.prank(stranger);
        escrow.depositFor(buyer2, 7e6);
        vm.assertEq(_available(buyer2), FUNDING + 7e6, "beneficiary credited");
        vm.assertEq(_available(stranger), 0, "caller not credited");
        vm.assertEq(token.balanceOf(stranger), 0, "caller paid");
    }

    function test_depositFor_revertsWhenAccountIsZero() public {
        _approve(stranger, 1e6);
        vm.expectRevert(IEscrow.EscrowZeroAddress.selector);
        vm.prank(stranger);
        escrow.depositFor(address(0), 1e6);
    }

    function test_depositFor_revertsWhenAmountIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowInvalidAmount.selector, 0));
        vm.prank(stranger);
        escrow.depositFor(buyer, 0);
    }

    /// @dev A 1% fee-on-transfer token: the ledger credits what arrived, and stays equal to the escrow's balance
    /// through a withdrawal too.
    function testFuzz_deposit_accountsFeeOnTransferTokenExactly(uint256 amount) public {
        amount = bound(amount, 1, 1e30);
        FeeOnTransferToken feeToken = new FeeOnTransferToken(100);
        Escrow feeEscrow =
            new Escrow(feeToken, registry, owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW);
        feeToken.mint(buyer, amount);
        uint256 received = amount - amount / 100;

        vm.startPrank(buyer);
        feeToken.approve(address(feeEscrow), amount);
        vm.expectEmit(true, true, true, true, address(feeEscrow));
        emit IEscrow.Deposited(buyer, received);
        feeEscrow.deposit(amount);
        vm.assertEq(feeEscrow.accountOf(buyer).available, received, "credited what arrived");
        vm.assertEq(feeToken.balanceOf(address(feeEscrow)), received, "balance == ledger");

        feeEscrow.requestWithdrawal(amount);
        vm.warp(block.timestamp + WITHDRAWAL_NOTICE);
        uint256 paid = feeEscrow.withdraw();
        vm.stopPrank();
        vm.assertEq(paid, received, "withdraws the ledger balance");
        vm.assertEq(feeEscrow.accountOf(buyer).available, 0, "ledger emptied");
        vm.assertEq(feeToken.balanceOf(address(feeEscrow)), 0, "escrow emptied");
    }
}
