// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Escrow} from "../../src/Escrow.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {vm} from "../utils/Vm.sol";

contract EscrowConstructorTest is Base {
    function test_constructor_setsLinkedContractsAndWindows() public view {
        vm.assertEq(address(escrow.token()), address(token), "token");
        vm.assertEq(address(escrow.registry()), address(registry), "registry");
        vm.assertEq(escrow.operator(), operator, "operator");
        vm.assertEq(escrow.owner(), owner, "owner");
        vm.assertEq(escrow.withdrawalNotice(), WITHDRAWAL_NOTICE, "notice");
        vm.assertEq(escrow.lockWindow(), LOCK_WINDOW, "lock window");
        vm.assertEq(escrow.settleWindow(), SETTLE_WINDOW, "settle window");
        vm.assertEq(escrow.lastBatchId(), 0, "no batch yet");
    }

    function test_constructor_emitsOperatorChanged() public {
        vm.expectEmit(true, true, true, true);
        emit IEscrow.OperatorChanged(address(0), operator);
        new Escrow(token, registry, owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW);
    }

    function test_constructor_revertsWhenNoticeDoesNotOutlastLockWindow() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowWindowsUnsafe.selector, uint64(600), uint64(600)));
        new Escrow(token, registry, owner, operator, 600, 600, SETTLE_WINDOW);
    }

    function testFuzz_constructor_revertsUnlessNoticeExceedsLockWindow(uint64 notice, uint64 lockWindow) public {
        if (notice <= lockWindow) {
            vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowWindowsUnsafe.selector, notice, lockWindow));
        }
        new Escrow(token, registry, owner, operator, notice, lockWindow, SETTLE_WINDOW);
    }

    function test_constructor_revertsWhenTokenIsZero() public {
        vm.expectRevert(IEscrow.EscrowZeroAddress.selector);
        new Escrow(IERC20(address(0)), registry, owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW);
    }

    function test_constructor_revertsWhenRegistryIsZero() public {
        vm.expectRevert(IEscrow.EscrowZeroAddress.selector);
        new Escrow(
            token, IProviderRegistry(address(0)), owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW
        );
    }

    function test_constructor_revertsWhenOperatorIsZero() public {
        vm.expectRevert(IEscrow.EscrowZeroAddress.selector);
        new Escrow(token, registry, owner, address(0), WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW);
    }
}
