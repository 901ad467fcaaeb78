// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryExitTest is Base {
    function test_exit_returnsTheStakeAfterTheDelay() public {
        vm.prank(provider);
        registry.requestExit();
        vm.warp(block.timestamp + EXIT_DELAY);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.ProviderExited(provider, MIN_STAKE);
        vm.prank(provider);
        uint256 returned = registry.exit();
        vm.assertEq(returned, MIN_STAKE, "returned");
        vm.assertEq(token.balanceOf(provider), MIN_STAKE, "tokens back");
        vm.assertEq(registry.totalStaked(), 0, "total");
        vm.assertEq(registry.providerOf(provider).registeredAt, 0, "record deleted");
    }

    function test_exit_allowsRegisteringAgain() public {
        vm.prank(provider);
        registry.requestExit();
        vm.warp(block.timestamp + EXIT_DELAY);
        vm.prank(provider);
        registry.exit();
        _register(provider, MIN_STAKE);
        vm.assertTrue(registry.isActive(provider), "active again");
    }

    function test_exit_revertsBeforeTheDelay() public {
        vm.prank(provider);
        registry.requestExit();
        uint64 availableAt = uint64(block.timestamp) + EXIT_DELAY;
        vm.warp(availableAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryExitTooEarly.selector, provider, availableAt));
        vm.prank(provider);
        registry.exit();
    }

    function test_exit_revertsWithoutARequest() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryExitNotRequested.selector, provider));
        vm.prank(provider);
        registry.exit();
    }

    function test_exit_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryNotRegistered.selector, provider2));
        vm.prank(provider2);
        registry.exit();
    }

    function testFuzz_exit_returnsTheStakeLeftAfterSlashes(uint256 slashed) public {
        slashed = bound(slashed, 1, MIN_STAKE);
        vm.prank(arbiter);
        registry.slash(provider, slashed, arbiter, bytes32(0));
        vm.prank(provider);
        registry.requestExit();
        vm.warp(block.timestamp + EXIT_DELAY);
        vm.prank(provider);
        vm.assertEq(registry.exit(), MIN_STAKE - slashed, "returned the rest");
        vm.assertEq(token.balanceOf(address(registry)), registry.totalStaked(), "total == balance");
    }
}
