// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistrySlashTest is Base {
    bytes32 internal constant REASON = keccak256("failed challenge 17");

    function test_slash_movesStakeToTheRecipient() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.ProviderSlashed(provider, buyer, 30e6, MIN_STAKE - 30e6, REASON);
        vm.prank(arbiter);
        registry.slash(provider, 30e6, buyer, REASON);
        vm.assertEq(registry.providerOf(provider).stake, MIN_STAKE - 30e6, "stake left");
        vm.assertEq(token.balanceOf(buyer), 30e6, "recipient paid");
        vm.assertEq(registry.totalStaked(), MIN_STAKE - 30e6, "total");
        vm.assertFalse(registry.isActive(provider), "below the minimum");
    }

    function test_slash_revertsWhenCallerIsNotTheArbiter() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryUnauthorizedArbiter.selector, owner));
        vm.prank(owner);
        registry.slash(provider, 1, owner, REASON);
    }

    function test_slash_revertsWhenRecipientIsZero() public {
        vm.expectRevert(IProviderRegistry.RegistryZeroAddress.selector);
        vm.prank(arbiter);
        registry.slash(provider, 1, address(0), REASON);
    }

    function test_slash_revertsWhenProviderIsNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryNotRegistered.selector, provider2));
        vm.prank(arbiter);
        registry.slash(provider2, 1, arbiter, REASON);
    }

    function test_slash_revertsWhenTheAmountIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryInvalidAmount.selector, 0));
        vm.prank(arbiter);
        registry.slash(provider, 0, arbiter, REASON);
    }

    function test_slash_revertsBeyondTheStake() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.RegistrySlashExceedsStake.selector, provider, MIN_STAKE + 1, MIN_STAKE
            )
        );
        vm.prank(arbiter);
        registry.slash(provider, MIN_STAKE + 1, arbiter, REASON);
    }

    function test_slash_reachesAnExitingProvider() public {
        vm.prank(provider);
        registry.requestExit();
        vm.prank(arbiter);
        registry.slash(provider, MIN_STAKE, arbiter, REASON);
        vm.warp(block.timestamp + EXIT_DELAY);
        vm.prank(provider);
        vm.assertEq(registry.exit(), 0, "nothing left to return");
    }

    function testFuzz_slash_keepsTotalStakedEqualToTheBalance(uint256 amount) public {
        amount = bound(amount, 1, MIN_STAKE);
        vm.prank(arbiter);
        registry.slash(provider, amount, arbiter, REASON);
        vm.assertEq(registry.totalStaked(), token.balanceOf(address(registry)), "total == balance");
    }
}
