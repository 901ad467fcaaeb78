// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistrySetArbiterTest is Base {
    function test_setArbiter_movesTheRole() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.ArbiterChanged(arbiter, stranger);
        vm.prank(owner);
        registry.setArbiter(stranger);
        vm.assertEq(registry.arbiter(), stranger, "arbiter");
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryUnauthorizedArbiter.selector, arbiter));
        vm.prank(arbiter);
        registry.slash(provider, 1, arbiter, bytes32(0));
    }

    function test_setArbiter_revertsWhenCallerIsNotTheOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, arbiter));
        vm.prank(arbiter);
        registry.setArbiter(arbiter);
    }

    function test_setArbiter_revertsWhenArbiterIsZero() public {
        vm.expectRevert(IProviderRegistry.RegistryZeroAddress.selector);
        vm.prank(owner);
        registry.setArbiter(address(0));
    }
}
