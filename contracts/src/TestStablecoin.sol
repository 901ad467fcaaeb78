// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestStablecoin
/// @notice The devnet's settlement token: a 6-decimal dollar stand-in that anyone may mint, on the devnet only.
/// On any other chain `mint` reverts, so a deployment that slipped onto a real network prints no money.
contract TestStablecoin is ERC20 {
    /// @notice Anvil's and Hardhat's default chain id.
    uint256 public constant DEVNET_CHAIN_ID = 31337;

    /// @notice Minting was attempted on a chain other than the devnet.
    error TestStablecoinMintOnlyOnDevnet(uint256 chainId);

    constructor() ERC20("gpuspot Test USD", "tUSD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` base units to `to`; devnet only.
    function mint(address to, uint256 amount) external {
        if (block.chainid != DEVNET_CHAIN_ID) revert TestStablecoinMintOnlyOnDevnet(block.chainid);
        _mint(to, amount);
    }
}
