// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {FeeOnTransferToken} from "../utils/FeeOnTransferToken.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryAddStakeTest is Base {
    function test_addStake_increasesTheStake() public {
        token.mint(provider, 5e6);
        vm.startPrank(provider);
        token.approve(address(registry), 5e6);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.StakeAdded(provider, 5e6, MIN_STAKE + 5e6);
        registry.addStake(5e6);
        vm.stopPrank();
        vm.assertEq(registry.providerOf(provider).stake, MIN_STAKE + 5e6, "stake");
        vm.assertEq(registry.totalStaked(), MIN_STAKE + 5e6, "total");
    }

    function test_addStake_restoresASlashedProvider() public {
        vm.prank(arbiter);
        registry.slash(provider, 10e6, arbiter, bytes32(0));
        vm.assertFalse(registry.isActive(provider), "inactive after the slash");
        token.mint(provider, 10e6);
        vm.startPrank(provider);
        token.approve(address(registry), 10e6);
        registry.addStake(10e6);
        vm.stopPrank();
        vm.assertTrue(registry.isActive(provider), "active again");
    }

    function test_addStake_revertsWhenTheAmountIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryInvalidAmount.selector, 0));
        vm.prank(provider);
        registry.addStake(0);
    }

    function test_addStake_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryNotRegistered.selector, provider2));
        vm.prank(provider2);
        registry.addStake(1);
    }
}
