// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";

/// @title ProviderRegistry
/// @notice Providers, their stakes and host metadata. Holds the stakes itself: its token balance always equals
/// `totalStaked`.
contract ProviderRegistry is IProviderRegistry, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @inheritdoc IProviderRegistry
    IERC20 public immutable token;
    /// @inheritdoc IProviderRegistry
    uint256 public immutable minStake;
    /// @inheritdoc IProviderRegistry
    uint64 public immutable exitDelay;

    /// @inheritdoc IProviderRegistry
    address public arbiter;
    /// @inheritdoc IProviderRegistry
    uint256 public totalStaked;

    mapping(address provider => Provider) private _providers;

    constructor(IERC20 token_, uint256 minStake_, uint64 exitDelay_, address owner_, address arbiter_)
        Ownable(owner_)
    {
        if (address(token_) == address(0) || arbiter_ == address(0)) revert RegistryZeroAddress();
        token = token_;
        minStake = minStake_;
        exitDelay = exitDelay_;
        arbiter = arbiter_;
        emit ArbiterChanged(address(0), arbiter_);
    }

    /// @inheritdoc IProviderRegistry
    function register(bytes32 metadataHash, uint256 stake) external nonReentrant {
        if (_providers[msg.sender].registeredAt != 0) revert RegistryAlreadyRegistered(msg.sender);
        if (stake < minStake || stake == 0) revert RegistryStakeBelowMinimum(stake, minStake);
        uint128 received = _pull(stake);
        _providers[msg.sender] = Provider(received, uint64(block.timestamp), 0, metadataHash);
        emit ProviderRegistered(msg.sender, received, metadataHash);
    }

    /// @inheritdoc IProviderRegistry
    function addStake(uint256 amount) external nonReentrant {
        Provider storage provider = _registered(msg.sender);
        if (amount == 0) revert RegistryInvalidAmount(amount);
        uint128 received = _pull(amount);
        provider.stake += received;
        emit StakeAdded(msg.sender, received, provider.stake);
    }

    /// @inheritdoc IProviderRegistry
    function updateMetadata(bytes32 metadataHash) external {
        _registered(msg.sender).metadataHash = metadataHash;
        emit MetadataUpdated(msg.sender, metadataHash);
    }

    /// @inheritdoc IProviderRegistry
    function requestExit() external {
        Provider storage provider = _registered(msg.sender);
        if (provider.exitAvailableAt != 0) revert RegistryExitPending(msg.sender, provider.exitAvailableAt);
        uint64 exitAvailableAt = uint64(block.timestamp) + exitDelay;
        provider.exitAvailableAt = exitAvailableAt;
        emit ExitRequested(msg.sender, exitAvailableAt);
    }

    /// @inheritdoc IProviderRegistry
    function exit() external nonReentrant returns (uint256 stakeReturned) {
        Provider memory provider = _providers[msg.sender];
        if (provider.registeredAt == 0) revert RegistryNotRegistered(msg.sender);
        if (provider.exitAvailableAt == 0) revert RegistryExitNotRequested(msg.sender);
        if (block.timestamp < provider.exitAvailableAt) {
            revert RegistryExitTooEarly(msg.sender, provider.exitAvailableAt);
        }
        stakeReturned = provider.stake;
        delete _providers[msg.sender];
        totalStaked -= stakeReturned;
        emit ProviderExited(msg.sender, stakeReturned);
        token.safeTransfer(msg.sender, stakeReturned);
    }

    /// @inheritdoc IProviderRegistry
    function slash(address provider, uint256 amount, address recipient, bytes32 reason) external nonReentrant {
        if (msg.sender != arbiter) revert RegistryUnauthorizedArbiter(msg.sender);
        if (recipient == address(0)) revert RegistryZeroAddress();
        Provider storage record = _registered(provider);
        if (amount == 0) revert RegistryInvalidAmount(amount);
        if (amount > record.stake) revert RegistrySlashExceedsStake(provider, amount, record.stake);
        // amount <= stake, checked above.
        unchecked {
            record.stake -= uint128(amount);
        }
        totalStaked -= amount;
        emit ProviderSlashed(provider, recipient, amount, record.stake, reason);
        token.safeTransfer(recipient, amount);
    }

    /// @inheritdoc IProviderRegistry
    function setArbiter(address newArbiter) external onlyOwner {
        if (newArbiter == address(0)) revert RegistryZeroAddress();
        emit ArbiterChanged(arbiter, newArbiter);
        arbiter = newArbiter;
    }

    /// @inheritdoc IProviderRegistry
    function isActive(address provider) external view returns (bool) {
        Provider storage record = _providers[provider];
        return record.registeredAt != 0 && record.exitAvailableAt == 0 && record.stake >= minStake;
    }

    /// @inheritdoc IProviderRegistry
    function providerOf(address provider) external view returns (Provider memory) {
        return _providers[provider];
    }

    function _registered(address provider) private view returns (Provider storage record) {
        record = _providers[provider];
        if (record.registeredAt == 0) revert RegistryNotRegistered(provider);
    }

    /// @dev Takes `amount` from the caller and returns what actually arrived (a fee-taking token is accounted
    /// exactly).
    function _pull(uint256 amount) private returns (uint128 received) {
        if (amount > type(uint128).max) revert RegistryInvalidAmount(amount);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 arrived = token.balanceOf(address(this)) - before;
        if (arrived == 0 || arrived > type(uint128).max) revert RegistryInvalidAmount(arrived);
        received = uint128(arrived);
        totalStaked += arrived;
    }
}
