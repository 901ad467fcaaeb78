// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IEscrow} from "./interfaces/IEscrow.sol";

/// @title EscrowLedger
/// @notice Token custody and the internal ledger. Tokens move only here, on deposit and withdrawal; everything
/// else moves ledger entries. The escrow's token balance always equals the sum of all accounts' `available` and
/// `reserved`.
abstract contract EscrowLedger is IEscrow, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @inheritdoc IEscrow
    IERC20 public immutable token;
    /// @inheritdoc IEscrow
    uint64 public immutable withdrawalNotice;

    mapping(address account => Account) internal _accounts;
    mapping(address account => Withdrawal) internal _withdrawals;

    constructor(IERC20 token_, uint64 withdrawalNotice_) {
        if (address(token_) == address(0)) revert EscrowZeroAddress();
        token = token_;
        withdrawalNotice = withdrawalNotice_;
    }

    /// @inheritdoc IEscrow
    function deposit(uint256 amount) external nonReentrant {
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc IEscrow
    function depositFor(address account, uint256 amount) external nonReentrant {
        if (account == address(0)) revert EscrowZeroAddress();
        _deposit(account, amount);
    }

    /// @inheritdoc IEscrow
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0 || amount > type(uint128).max) revert EscrowInvalidAmount(amount);
        uint64 availableAt = uint64(block.timestamp) + withdrawalNotice;
        _withdrawals[msg.sender] = Withdrawal(uint128(amount), availableAt);
        emit WithdrawalRequested(msg.sender, amount, availableAt);
    }

    /// @inheritdoc IEscrow
    function cancelWithdrawal() external {
        if (_withdrawals[msg.sender].availableAt == 0) revert EscrowNoWithdrawalPending(msg.sender);
        delete _withdrawals[msg.sender];
        emit WithdrawalCancelled(msg.sender);
    }

    /// @inheritdoc IEscrow
    function withdraw() external nonReentrant returns (uint256 amount) {
        Withdrawal memory pending = _withdrawals[msg.sender];
        if (pending.availableAt == 0) revert EscrowNoWithdrawalPending(msg.sender);
        if (block.timestamp < pending.availableAt) {
            revert EscrowWithdrawalNotYetAvailable(msg.sender, pending.availableAt);
        }
        Account storage account = _accounts[msg.sender];
        amount = pending.amount < account.available ? pending.amount : account.available;
        delete _withdrawals[msg.sender];
        // amount <= available, both 128-bit.
        unchecked {
            account.available -= uint128(amount);
        }
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IEscrow
    function accountOf(address account) external view returns (Account memory) {
        return _accounts[account];
    }

    /// @inheritdoc IEscrow
    function pendingWithdrawal(address account) external view returns (Withdrawal memory) {
        return _withdrawals[account];
    }

    /// @dev Credits what the escrow actually received, so a token that takes a fee on transfer is accounted
    /// exactly rather than trusted.
    function _deposit(address account, uint256 amount) private {
        if (amount == 0 || amount > type(uint128).max) revert EscrowInvalidAmount(amount);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        Account storage entry = _accounts[account];
        // The escrow's balance bounds every entry, and a 128-bit total supply bounds the balance in practice; a
        // token that exceeds it is refused here rather than truncated by the cast.
        uint256 credited = uint256(entry.available) + received;
        if (credited > type(uint128).max) revert EscrowInvalidAmount(received);
        entry.available = uint128(credited);
        emit Deposited(account, received);
    }

    /// @dev Moves `amount` of `buyer`'s available balance into its reserve.
    function _reserve(address buyer, uint256 amount) internal {
        Account storage entry = _accounts[buyer];
        uint256 available = entry.available;
        if (amount > available) revert EscrowInsufficientBalance(buyer, amount, available);
        // amount <= available < 2^128, and reserved + amount <= total deposits < 2^128.
        unchecked {
            entry.available = uint128(available - amount);
            entry.reserved += uint128(amount);
        }
    }

    /// @dev Takes `paid + refunded` out of `buyer`'s reserve: `paid` to `provider`, `refunded` back to the buyer.
    /// Callers guarantee the sum is at most what this lease reserved, so the reserve cannot underflow.
    function _release(address buyer, address provider, uint256 paid, uint256 refunded) internal {
        Account storage buyerEntry = _accounts[buyer];
        buyerEntry.reserved -= uint128(paid + refunded);
        buyerEntry.available += uint128(refunded);
        if (paid != 0) _accounts[provider].available += uint128(paid);
    }
}
