// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IProviderRegistry
/// @notice GPU providers register here with a stake in the settlement token and a hash of their host metadata.
/// A provider leaves by announcing its exit and waiting `exitDelay`, long enough for disputes about its last
/// leases to reach the arbiter. Slashing goes through the arbiter, an address the owner sets: the dispute path
/// for now is the matcher's published evidence (failed challenges, missing receipts) judged by that role.
interface IProviderRegistry {
    /// @notice A provider's record. `exitAvailableAt` is 0 while the provider is not leaving.
    struct Provider {
        uint128 stake;
        uint64 registeredAt;
        uint64 exitAvailableAt;
        bytes32 metadataHash;
    }

    /// @notice An address argument that must be set was zero.
    error RegistryZeroAddress();
    /// @notice The stake offered is below the minimum.
    error RegistryStakeBelowMinimum(uint256 stake, uint256 minStake);
    /// @notice An amount that must be positive was zero or exceeds 128 bits.
    error RegistryInvalidAmount(uint256 amount);
    /// @notice The caller is already registered.
    error RegistryAlreadyRegistered(address provider);
    /// @notice The address is not a registered provider.
    error RegistryNotRegistered(address provider);
    /// @notice The provider has already announced its exit.
    error RegistryExitPending(address provider, uint64 exitAvailableAt);
    /// @notice The provider has not announced its exit.
    error RegistryExitNotRequested(address provider);
    /// @notice The exit delay has not passed.
    error RegistryExitTooEarly(address provider, uint64 exitAvailableAt);
    /// @notice Only the arbiter may slash.
    error RegistryUnauthorizedArbiter(address caller);
    /// @notice The slash exceeds the provider's stake.
    error RegistrySlashExceedsStake(address provider, uint256 amount, uint256 stake);

    event ProviderRegistered(address indexed provider, uint256 stake, bytes32 metadataHash);
    event StakeAdded(address indexed provider, uint256 amount, uint256 stake);
    event MetadataUpdated(address indexed provider, bytes32 metadataHash);
    event ExitRequested(address indexed provider, uint64 exitAvailableAt);
    event ProviderExited(address indexed provider, uint256 stakeReturned);
    event ProviderSlashed(
        address indexed provider, address indexed recipient, uint256 amount, uint256 stakeLeft, bytes32 reason
    );
    event ArbiterChanged(address indexed previousArbiter, address indexed newArbiter);

    /// @notice Registers the caller with `stake` tokens (after `approve`), at least `minStake`.
    function register(bytes32 metadataHash, uint256 stake) external;

    /// @notice Adds `amount` to the caller's stake.
    function addStake(uint256 amount) external;

    /// @notice Replaces the caller's host metadata hash.
    function updateMetadata(bytes32 metadataHash) external;

    /// @notice Announces the caller's exit: it stops being active now and may take its stake after `exitDelay`.
    function requestExit() external;

    /// @notice Returns the caller's stake and deletes its record once the exit delay has passed.
    function exit() external returns (uint256 stakeReturned);

    /// @notice Moves `amount` of `provider`'s stake to `recipient`; only the arbiter. `reason` names the
    /// published evidence (e.g. the hash of a failed challenge record).
    function slash(address provider, uint256 amount, address recipient, bytes32 reason) external;

    /// @notice Replaces the arbiter; only the owner.
    function setArbiter(address newArbiter) external;

    /// @notice Whether `provider` may take new leases: registered, not exiting, stake at least `minStake`.
    function isActive(address provider) external view returns (bool);

    function providerOf(address provider) external view returns (Provider memory);
    function token() external view returns (IERC20);
    function minStake() external view returns (uint256);
    function exitDelay() external view returns (uint64);
    function arbiter() external view returns (address);
    /// @notice Sum of all stakes: equals the registry's token balance.
    function totalStaked() external view returns (uint256);
}
