// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryRequestExitTest is Base {
    function test_requestExit_startsTheDelayAndDeactivates() public {
        uint64 availableAt = uint64(block.timestamp) + EXIT_DELAY;
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.ExitRequested(provider, availableAt);
        vm.prank(provider);
        registry.requestExit();
        vm.assertEq(registry.providerOf(provider).exitAvailableAt, availableAt, "exitAvailableAt");
        vm.assertFalse(registry.isActive(provider), "inactive while exiting");
    }

    function test_requestExit_revertsWhenAlreadyPending() public {
        vm.startPrank(provider);
        registry.requestExit();
        uint64 availableAt = uint64(block.timestamp) + EXIT_DELAY;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryExitPending.selector, provider, availableAt));
        registry.requestExit();
        vm.stopPrank();
    }

    function test_requestExit_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryNotRegistered.selector, provider2));
        vm.prank(provider2);
        registry.requestExit();
    }
}
