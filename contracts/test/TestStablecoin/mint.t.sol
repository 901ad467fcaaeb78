// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestStablecoin} from "../../src/TestStablecoin.sol";
import {vm} from "../utils/Vm.sol";

contract TestStablecoinMintTest {
    TestStablecoin internal token;

    function setUp() public {
        token = new TestStablecoin();
    }

    function test_mint_mintsToAnyoneOnTheDevnet() public {
        token.mint(address(0xB0B), 5e6);
        vm.assertEq(token.balanceOf(address(0xB0B)), 5e6, "balance");
        vm.assertEq(token.totalSupply(), 5e6, "supply");
    }

    function test_mint_revertsOnAnyOtherChain() public {
        vm.chainId(1);
        vm.expectRevert(abi.encodeWithSelector(TestStablecoin.TestStablecoinMintOnlyOnDevnet.selector, 1));
        token.mint(address(0xB0B), 5e6);
    }

    function testFuzz_mint_revertsUnlessTheChainIsTheDevnet(uint64 chainId) public {
        vm.assume(chainId != 0);
        vm.chainId(chainId);
        if (chainId != 31337) {
            vm.expectRevert(abi.encodeWithSelector(TestStablecoin.TestStablecoinMintOnlyOnDevnet.selector, chainId));
        }
        token.mint(address(0xB0B), 1);
    }

    function test_decimals_isSix() public view {
        vm.assertEq(token.decimals(), 6, "decimals");
        vm.assertEq(keccak256(bytes(token.symbol())), keccak256("tUSD"), "symbol");
    }
}
