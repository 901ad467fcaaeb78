// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {FeeOnTransferToken} from "../utils/FeeOnTransferToken.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryRegisterTest is Base {
    function _approve(address who, uint256 amount) internal {
        token.mint(who, amount);
        vm.prank(who);
        token.approve(address(registry), amount);
    }

    function test_register_recordsTheProviderAndPullsTheStake() public {
        _approve(provider2, MIN_STAKE);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.ProviderRegistered(provider2, MIN_STAKE, keccak256("meta"));
        vm.prank(provider2);
        registry.register(keccak256("meta"), MIN_STAKE);
        IProviderRegistry.Provider memory record = registry.providerOf(provider2);
        vm.assertEq(record.stake, MIN_STAKE, "stake");
        vm.assertEq(record.registeredAt, block.timestamp, "registeredAt");
        vm.assertEq(record.exitAvailableAt, 0, "not exiting");
        vm.assertEq(record.metadataHash, keccak256("meta"), "metadata");
        vm.assertTrue(registry.isActive(provider2), "active");
        vm.assertEq(registry.totalStaked(), 2 * MIN_STAKE, "total");
        vm.assertEq(token.balanceOf(address(registry)), 2 * MIN_STAKE, "balance");
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        _approve(provider, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryAlreadyRegistered.selector, provider));
        vm.prank(provider);
        registry.register(bytes32(0), MIN_STAKE);
    }

    function test_register_revertsBelowTheMinimumStake() public {
        _approve(provider2, MIN_STAKE);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.RegistryStakeBelowMinimum.selector, MIN_STAKE - 1, MIN_STAKE)
        );
        vm.prank(provider2);
        registry.register(bytes32(0), MIN_STAKE - 1);
    }

    function test_register_revertsOnAZeroStakeEvenWithoutAMinimum() public {
        ProviderRegistry free = new ProviderRegistry(token, 0, EXIT_DELAY, owner, arbiter);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryStakeBelowMinimum.selector, 0, 0));
        vm.prank(provider2);
        free.register(bytes32(0), 0);
    }

    function test_register_revertsWhenTheStakeExceeds128Bits() public {
        uint256 stake = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryInvalidAmount.selector, stake));
        vm.prank(provider2);
        registry.register(bytes32(0), stake);
    }

    function test_register_creditsWhatArrivesFromAFeeOnTransferToken() public {
        FeeOnTransferToken feeToken = new FeeOnTransferToken(100);
        ProviderRegistry feeRegistry = new ProviderRegistry(feeToken, MIN_STAKE, EXIT_DELAY, owner, arbiter);
        feeToken.mint(provider2, 2 * MIN_STAKE);
        vm.startPrank(provider2);
        feeToken.approve(address(feeRegistry), 2 * MIN_STAKE);
        feeRegistry.register(bytes32(0), MIN_STAKE);
        vm.stopPrank();
        uint256 arrived = MIN_STAKE - MIN_STAKE / 100;
        vm.assertEq(feeRegistry.providerOf(provider2).stake, arrived, "stake is what arrived");
        vm.assertEq(feeRegistry.totalStaked(), feeToken.balanceOf(address(feeRegistry)), "total == balance");
        vm.assertFalse(feeRegistry.isActive(provider2), "below the minimum after the fee");
    }

    function test_register_revertsWhenNothingArrives() public {
        FeeOnTransferToken burnAll = new FeeOnTransferToken(10_000);
        ProviderRegistry feeRegistry = new ProviderRegistry(burnAll, MIN_STAKE, EXIT_DELAY, owner, arbiter);
        burnAll.mint(provider2, MIN_STAKE);
        vm.startPrank(provider2);
        burnAll.approve(address(feeRegistry), MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryInvalidAmount.selector, 0));
        feeRegistry.register(bytes32(0), MIN_STAKE);
        vm.stopPrank();
    }

    function testFuzz_register_keepsTotalStakedEqualToTheBalance(uint256 stake) public {
        stake = bound(stake, MIN_STAKE, type(uint128).max);
        _approve(provider2, stake);
        vm.prank(provider2);
        registry.register(bytes32(0), stake);
        vm.assertEq(registry.totalStaked(), token.balanceOf(address(registry)), "total == balance");
        vm.assertEq(registry.providerOf(provider2).stake, stake, "stake");
    }
}
