// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Bid} from "../libraries/Orders.sol";
import {BidState} from "../libraries/BidStates.sol";
import {IProviderRegistry} from "./IProviderRegistry.sol";

/// @title IEscrow
/// @notice Custody, ledger and settlement of the gpuspot market.
///
/// Buyers deposit the settlement token; from then on money moves between ledger entries only, and tokens leave
/// only by a withdrawal that waits `withdrawalNotice`. The matcher (the operator) posts one Merkle root per batch.
/// A lease committed in a root is locked by presenting the buyer's signed bid and the lease leaf's proof: the
/// bid's nonce is consumed, its full cost at the price cap is reserved, and the lease leaf is recorded so that
/// no other leaf for the same bid (another payee, another price, an earlier start) can ever settle it. Usage
/// leaves in later roots pay the provider for proven GPU-seconds; the final usage leaf closes the lease and
/// returns the rest to the buyer.
/// Every call takes many leases, proven together by one multiproof.
///
/// What bounds any root: a buyer pays only under a bid the buyer signed for this chain and this contract, at most
/// once per bid, at most the lease price (itself at most the bid's cap) for at most `gpus` x the time elapsed since
/// the root that committed the lease, and never more than the lease reserved.
interface IEscrow {
    /// @notice A lease as the market agreed it: the buyer's signed bid plus the matcher's terms.
    /// @param bid The buyer's order, exactly as signed.
    /// @param r The signature's r, EIP-2098 compact form. Checked whenever the call locks the lease; once it is
    /// locked the stored leaf binds the terms and the signature may be left zero.
    /// @param vs The signature's s with v folded into its top bit (EIP-2098).
    /// @param leaseId The matcher's id for the lease, unique across the market.
    /// @param provider The provider that sells the lease and is paid for it.
    /// @param pricePerGpuHour The clearing price the lease pays, at most the bid's cap.
    struct SignedLease {
        Bid bid;
        bytes32 r;
        bytes32 vs;
        uint64 leaseId;
        address provider;
        uint128 pricePerGpuHour;
    }

    /// @notice Cumulative proven usage of a lease, as a usage leaf commits it.
    /// @param usedGpuSeconds GPU-seconds proven since the lease started, cumulative.
    /// @param isFinal Whether the leaf is the lease's final usage leaf (closes it).
    struct Usage {
        uint64 usedGpuSeconds;
        bool isFinal;
    }

    /// @notice An OpenZeppelin multiproof: leaves are given in the order the tree expects (for trees built with
    /// unsorted leaves, ascending leaf index), then `proof` siblings and `flags` rebuild the root.
    struct MultiProof {
        bytes32[] proof;
        bool[] flags;
    }

    /// @notice A batch's settlement root and when it was posted (the start of every lease it commits).
    struct BatchRoot {
        bytes32 root;
        uint64 postedAt;
    }

    /// @notice A ledger entry: `available` can fund bids or be withdrawn, `reserved` backs locked leases.
    struct Account {
        uint128 available;
        uint128 reserved;
    }

    /// @notice A pending withdrawal: at most `amount`, not before `availableAt`.
    struct Withdrawal {
        uint128 amount;
        uint64 availableAt;
    }

    /// @notice What a partially settled lease has already paid, by bid digest.
    struct Payment {
        uint64 gpuSeconds;
        uint128 amount;
    }

    // --- errors -------------------------------------------------------------------------------------------------

    /// @notice The constructor's windows leave a lease unprotected: the notice must outlast the lock window.
    error EscrowWindowsUnsafe(uint64 withdrawalNotice, uint64 lockWindow);
    /// @notice An address argument that must be set was zero.
    error EscrowZeroAddress();
    /// @notice An amount that must be positive was zero, or exceeds the ledger's 128-bit entries.
    error EscrowInvalidAmount(uint256 amount);
    /// @notice `account` has `available` free but the operation needs `needed`.
    error EscrowInsufficientBalance(address account, uint256 needed, uint256 available);
    /// @notice The account has no pending withdrawal.
    error EscrowNoWithdrawalPending(address account);
    /// @notice The pending withdrawal is not executable before `availableAt`.
    error EscrowWithdrawalNotYetAvailable(address account, uint64 availableAt);
    /// @notice A call that takes leases got none, or arrays that must match in length do not.
    error EscrowEmptyOrMismatchedBatch(uint256 leases, uint256 usages);
    /// @notice Only the operator may post roots.
    error SettlementUnauthorizedOperator(address caller);
    /// @notice Batch ids must strictly increase.
    error SettlementBatchIdNotIncreasing(uint64 batchId, uint64 lastBatchId);
    /// @notice A root of zero commits nothing.
    error SettlementEmptyRoot(uint64 batchId);
    /// @notice No root was posted for the batch.
    error SettlementUnknownBatch(uint64 batchId);
    /// @notice The multiproof does not rebuild the batch's root from the presented leaves.
    error SettlementInvalidProof(uint64 batchId);
    /// @notice Usage must come from a batch after the one that committed the lease.
    error SettlementUsageBatchNotAfterLease(uint64 batchId, uint64 usageBatchId);
    /// @notice The signature does not recover to the bid's buyer under this chain's and this contract's domain.
    error BidSignatureInvalid(address buyer, address recovered);
    /// @notice The bid had expired when the root committing its lease was posted.
    error BidExpired(address buyer, uint256 nonce, uint64 expiry, uint64 committedAt);
    /// @notice A bid for zero GPUs or zero seconds buys nothing.
    error BidEmpty(address buyer, uint256 nonce);
    /// @notice The bid is not in the state the operation needs (already locked, closed or invalidated).
    error BidNotInState(address buyer, uint256 nonce, BidState state);
    /// @notice The lease's price is above the bid's cap.
    error LeasePriceAboveCap(uint64 leaseId, uint128 pricePerGpuHour, uint128 maxPricePerGpuHour);
    /// @notice The lease's provider is not registered with an active stake.
    error LeaseProviderInactive(uint64 leaseId, address provider);
    /// @notice The window in which the batch's leases could be locked has passed.
    error LeaseLockWindowClosed(uint64 batchId, uint64 closedAt);
    /// @notice The usage exceeds what the lease could have run by now: `gpus` x min(duration, elapsed).
    error SettlementExceedsElapsed(uint64 leaseId, uint64 usedGpuSeconds, uint256 maxGpuSeconds);
    /// @notice The usage is below what was already paid for; cumulative usage never decreases.
    error SettlementUsageDecreased(uint64 leaseId, uint64 usedGpuSeconds, uint64 paidGpuSeconds);
    /// @notice Paying the usage would exceed the lease's reservation.
    error SettlementExceedsLocked(uint64 leaseId, uint256 payout, uint256 reserved);
    /// @notice The lease terms presented are not the ones the bid was locked with (another leaf for the same bid).
    error LeaseTermsMismatch(uint64 leaseId, bytes32 bidDigest);
    /// @notice The lease can be reclaimed only after its end plus the settle window.
    error LeaseReclaimTooEarly(uint64 leaseId, uint64 reclaimableAt);

    // --- events -------------------------------------------------------------------------------------------------

    /// @notice `account` deposited `amount` base units (the amount the escrow actually received).
    event Deposited(address indexed account, uint256 amount);
    /// @notice `account` asked to withdraw up to `amount`, executable from `availableAt`.
    event WithdrawalRequested(address indexed account, uint256 amount, uint64 availableAt);
    /// @notice `account` withdrew its pending request before executing it.
    event WithdrawalCancelled(address indexed account);
    /// @notice `amount` left the escrow to `account`.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice The operator role moved.
    event OperatorChanged(address indexed previousOperator, address indexed newOperator);
    /// @notice The root of batch `batchId` was posted at `postedAt`.
    event RootPosted(uint64 indexed batchId, bytes32 root, uint64 postedAt);
    /// @notice `account` closed the open nonces `wordPos * 128 + i` for each set bit i of `closedLanes`'s even bits.
    event NoncesInvalidated(address indexed account, uint256 indexed wordPos, uint256 closedLanes);
    /// @notice A lease of batch `batchId` was locked: the bid's nonce is consumed and `reserved` is held.
    event LeaseLocked(
        uint64 indexed leaseId,
        address indexed buyer,
        address indexed provider,
        uint64 batchId,
        uint256 nonce,
        bytes32 bidDigest,
        uint256 reserved
    );
    /// @notice A lease was paid up to `usedGpuSeconds`: `paid` to the provider in this call, and `refunded` to the
    /// buyer when `closed`.
    event LeaseSettled(uint64 indexed leaseId, uint64 usedGpuSeconds, uint256 paid, uint256 refunded, bool closed);
    /// @notice A lease nobody settled to its end was closed after its settle window; the rest went back to the
    /// buyer.
    event LeaseReclaimed(uint64 indexed leaseId, uint256 refunded);

    // --- ledger -------------------------------------------------------------------------------------------------

    /// @notice Moves `amount` tokens from the caller (after `approve`) into the caller's available balance.
    function deposit(uint256 amount) external;

    /// @notice Deposits for `account`, e.g. a faucet or a treasury funding a buyer.
    function depositFor(address account, uint256 amount) external;

    /// @notice Starts the notice period for withdrawing up to `amount`; replaces any pending request.
    function requestWithdrawal(uint256 amount) external;

    /// @notice Drops the caller's pending withdrawal request.
    function cancelWithdrawal() external;

    /// @notice Executes the caller's pending withdrawal once its notice has passed, paying out the lesser of the
    /// requested amount and the available balance at that moment.
    function withdraw() external returns (uint256 amount);

    // --- roots --------------------------------------------------------------------------------------------------

    /// @notice Posts the settlement root of batch `batchId`; only the operator, batch ids strictly increasing.
    function postRoot(uint64 batchId, bytes32 root) external;

    /// @notice Replaces the operator; only the owner.
    function setOperator(address newOperator) external;

    // --- nonces -------------------------------------------------------------------------------------------------

    /// @notice Closes the caller's open nonces `wordPos * 128 + i` for each set bit i of `mask`; bids and asks with
    /// those nonces can no longer be locked, whatever the matcher does. Locked leases are unaffected.
    function invalidateNonces(uint256 wordPos, uint128 mask) external;

    // --- leases -------------------------------------------------------------------------------------------------

    /// @notice Locks leases that the root of `batchId` committed, within `lockWindow` of its post. Each bid's
    /// signature, cap, expiry and nonce are checked; its nonce is consumed and its cost at the cap reserved.
    function lockLeases(uint64 batchId, SignedLease[] calldata leases, MultiProof calldata proof) external;

    /// @notice Pays leases of batch `batchId` for the usage that batch `usageBatchId` committed. Proves each lease
    /// leaf against `batchId`'s root and each usage leaf against `usageBatchId`'s; a locked lease must present the
    /// leaf it was locked with. A final usage leaf closes its lease and refunds the buyer. A lease still open
    /// within the lock window is locked in the same call (its signature is then checked).
    function settleLeases(
        uint64 batchId,
        uint64 usageBatchId,
        SignedLease[] calldata leases,
        Usage[] calldata usages,
        MultiProof calldata leaseProof,
        MultiProof calldata usageProof
    ) external;

    /// @notice Closes locked leases of `batchId` that nobody settled to the end within `settleWindow` after they
    /// ended: the provider keeps what was paid, the buyer gets the rest back. Each lease must present the leaf it
    /// was locked with, which binds its terms; signatures are not needed and `proof` must rebuild the root.
    function reclaimLeases(uint64 batchId, SignedLease[] calldata leases, MultiProof calldata proof) external;

    // --- views --------------------------------------------------------------------------------------------------

    function token() external view returns (IERC20);
    function registry() external view returns (IProviderRegistry);
    function operator() external view returns (address);
    function lastBatchId() external view returns (uint64);
    function withdrawalNotice() external view returns (uint64);
    function lockWindow() external view returns (uint64);
    function settleWindow() external view returns (uint64);
    function batchRoot(uint64 batchId) external view returns (BatchRoot memory);
    function accountOf(address account) external view returns (Account memory);
    function pendingWithdrawal(address account) external view returns (Withdrawal memory);
    function bidState(address account, uint256 nonce) external view returns (BidState);
    function paymentOf(bytes32 bidDigest) external view returns (Payment memory);
    /// @notice The lease leaf a bid is locked with while its lease is open (zero otherwise): settlement and
    /// reclaim accept only this leaf's terms for the bid.
    function lockedLeaf(bytes32 bidDigest) external view returns (bytes32);
    /// @notice The EIP-712 digest a buyer signs for `bid` under this contract's domain.
    function bidDigest(Bid calldata bid) external view returns (bytes32);
    /// @notice The settlement-tree leaf hash of a lease (`kind` 0) or of its usage (`kind` 1 or 2).
    function leaseLeaf(uint8 kind, uint64 batchId, SignedLease calldata lease, uint64 usedGpuSeconds)
        external
        view
        returns (bytes32);
}
