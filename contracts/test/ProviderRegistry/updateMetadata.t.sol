// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {Base} from "../utils/Base.t.sol";
import {FeeOnTransferToken} from "../utils/FeeOnTransferToken.sol";
import {vm, bound} from "../utils/Vm.sol";

contract ProviderRegistryUpdateMetadataTest is Base {
    function test_updateMetadata_replacesTheHash() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IProviderRegistry.MetadataUpdated(provider, keccak256("v2"));
        vm.prank(provider);
        registry.updateMetadata(keccak256("v2"));
        vm.assertEq(registry.providerOf(provider).metadataHash, keccak256("v2"), "metadata");
    }

    function test_updateMetadata_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryNotRegistered.selector, provider2));
        vm.prank(provider2);
        registry.updateMetadata(keccak256("v2"));
    }
}
