// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {FeeOnTransferToken} from "../utils/FeeOnTransferToken.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryConstructorTest is Base {
    function test_constructor_setsTokenMinimumDelayAndArbiter() public view {
        vm.assertEq(address(registry.token()), address(token), "token");
        vm.assertEq(registry.minStake(), MIN_STAKE, "min stake");
        vm.assertEq(registry.exitDelay(), EXIT_DELAY, "exit delay");
        vm.assertEq(registry.arbiter(), arbiter, "arbiter");
        vm.assertEq(registry.owner(), owner, "owner");
    }

    function test_constructor_revertsWhenTokenIsZero() public {
        vm.expectRevert(IProviderRegistry.RegistryZeroAddress.selector);
        new ProviderRegistry(IERC20(address(0)), MIN_STAKE, EXIT_DELAY, owner, arbiter);
    }

    function test_constructor_revertsWhenArbiterIsZero() public {
        vm.expectRevert(IProviderRegistry.RegistryZeroAddress.selector);
        new ProviderRegistry(token, MIN_STAKE, EXIT_DELAY, owner, address(0));
    }
}
