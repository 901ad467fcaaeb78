// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {IEscrow} from "./interfaces/IEscrow.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {EscrowLedger} from "./EscrowLedger.sol";
import {Bid, OrderHashes} from "./libraries/Orders.sol";
import {BidState, BidStates} from "./libraries/BidStates.sol";
import {LeaseLeaf} from "./libraries/LeaseLeaf.sol";
import {LeaseMath} from "./libraries/LeaseMath.sol";

/// @title Escrow
/// @notice The market's settlement contract: the ledger (see {EscrowLedger}), the batch roots the operator
/// posts, and the lease lifecycle (lock, settle, reclaim) that moves ledger entries against those roots.
/// `multicall` bundles calls for several batches into one transaction.
contract Escrow is EscrowLedger, EIP712, Ownable2Step, Multicall {
    using BidStates for mapping(uint256 => uint256);

    /// @inheritdoc IEscrow
    IProviderRegistry public immutable registry;
    /// @inheritdoc IEscrow
    uint64 public immutable lockWindow;
    /// @inheritdoc IEscrow
    uint64 public immutable settleWindow;

    /// @inheritdoc IEscrow
    address public operator;
    /// @inheritdoc IEscrow
    uint64 public lastBatchId;

    mapping(uint64 batchId => BatchRoot) private _roots;
    mapping(address account => mapping(uint256 wordPos => uint256)) private _bidStates;
    mapping(bytes32 bidDigest => Payment) private _payments;
    /// @dev The lease leaf each open lease was locked with. Written only for leases that outlive the call that
    /// locked them: a lease locked and closed in one call is bound by that call alone.
    mapping(bytes32 bidDigest => bytes32 leaf) private _lockedLeaves;

    /// @param withdrawalNotice_ Seconds a withdrawal waits; must exceed `lockWindow_`, so funds a root committed
    /// are still there when the lease is locked.
    /// @param lockWindow_ Seconds after a root's post during which its leases can be locked.
    /// @param settleWindow_ Seconds after a lease's end reserved for its final settlement, before anyone may
    /// reclaim it for the buyer.
    constructor(
        IERC20 token_,
        IProviderRegistry registry_,
        address owner_,
        address operator_,
        uint64 withdrawalNotice_,
        uint64 lockWindow_,
        uint64 settleWindow_
    ) EscrowLedger(token_, withdrawalNotice_) EIP712("gpuspot", "1") Ownable(owner_) {
        if (address(registry_) == address(0) || operator_ == address(0)) revert EscrowZeroAddress();
        if (withdrawalNotice_ <= lockWindow_) revert EscrowWindowsUnsafe(withdrawalNotice_, lockWindow_);
        registry = registry_;
        lockWindow = lockWindow_;
        settleWindow = settleWindow_;
        operator = operator_;
        emit OperatorChanged(address(0), operator_);
    }

    // --- roots --------------------------------------------------------------------------------------------------

    /// @inheritdoc IEscrow
    function postRoot(uint64 batchId, bytes32 root) external {
        if (msg.sender != operator) revert SettlementUnauthorizedOperator(msg.sender);
        if (root == bytes32(0)) revert SettlementEmptyRoot(batchId);
        if (batchId <= lastBatchId) revert SettlementBatchIdNotIncreasing(batchId, lastBatchId);
        lastBatchId = batchId;
        _roots[batchId] = BatchRoot(root, uint64(block.timestamp));
        emit RootPosted(batchId, root, uint64(block.timestamp));
    }

    /// @inheritdoc IEscrow
    function setOperator(address newOperator) external onlyOwner {
        if (newOperator == address(0)) revert EscrowZeroAddress();
        emit OperatorChanged(operator, newOperator);
        operator = newOperator;
    }

    // --- nonces -------------------------------------------------------------------------------------------------

    /// @inheritdoc IEscrow
    function invalidateNonces(uint256 wordPos, uint128 mask) external {
        uint256 closed = _bidStates[msg.sender].closeOpen(wordPos, mask);
        emit NoncesInvalidated(msg.sender, wordPos, closed);
    }

    // --- leases -------------------------------------------------------------------------------------------------

    /// @inheritdoc IEscrow
    function lockLeases(uint64 batchId, SignedLease[] calldata leases, MultiProof calldata proof) external {
        uint256 n = leases.length;
        if (n == 0) revert EscrowEmptyOrMismatchedBatch(0, 0);
        BatchRoot memory committed = _batchRoot(batchId);
        _requireLockWindowOpen(batchId, committed.postedAt);
        bytes32[] memory leaves = new bytes32[](n);
        address checkedProvider;
        for (uint256 i; i < n; ++i) {
            SignedLease calldata lease = leases[i];
            bytes32 digest = _verifyBid(lease, committed.postedAt);
            checkedProvider = _lock(batchId, lease, digest, checkedProvider);
            bytes32 leaf = _leaf(LeaseLeaf.KIND_LEASE, batchId, lease, digest, 0);
            _lockedLeaves[digest] = leaf;
            leaves[i] = leaf;
        }
        _verifyMultiProof(batchId, committed.root, proof, leaves);
    }

    /// @inheritdoc IEscrow
    function settleLeases(
        uint64 batchId,
        uint64 usageBatchId,
        SignedLease[] calldata leases,
        Usage[] calldata usages,
        MultiProof calldata leaseProof,
        MultiProof calldata usageProof
    ) external {
        uint256 n = leases.length;
        if (n == 0 || usages.length != n) revert EscrowEmptyOrMismatchedBatch(n, usages.length);
        if (usageBatchId <= batchId) revert SettlementUsageBatchNotAfterLease(batchId, usageBatchId);
        BatchRoot memory committed = _batchRoot(batchId);
        bytes32 usageRoot = _batchRoot(usageBatchId).root;
        bytes32[] memory leaseLeaves = new bytes32[](n);
        bytes32[] memory usageLeaves = new bytes32[](n);
        address checkedProvider;
        for (uint256 i; i < n; ++i) {
            (leaseLeaves[i], usageLeaves[i], checkedProvider) =
                _settleLease(batchId, committed.postedAt, leases[i], usages[i], checkedProvider);
        }
        _verifyMultiProof(batchId, committed.root, leaseProof, leaseLeaves);
        _verifyMultiProof(usageBatchId, usageRoot, usageProof, usageLeaves);
    }

    /// @inheritdoc IEscrow
    function reclaimLeases(uint64 batchId, SignedLease[] calldata leases, MultiProof calldata proof) external {
        uint256 n = leases.length;
        if (n == 0) revert EscrowEmptyOrMismatchedBatch(0, 0);
        BatchRoot memory committed = _batchRoot(batchId);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = _reclaimLease(batchId, committed.postedAt, leases[i]);
        }
        _verifyMultiProof(batchId, committed.root, proof, leaves);
    }

    // --- views --------------------------------------------------------------------------------------------------

    /// @inheritdoc IEscrow
    function batchRoot(uint64 batchId) external view returns (BatchRoot memory) {
        return _roots[batchId];
    }

    /// @inheritdoc IEscrow
    function bidState(address account, uint256 nonce) external view returns (BidState) {
        return _bidStates[account].get(nonce);
    }

    /// @inheritdoc IEscrow
    function paymentOf(bytes32 digest) external view returns (Payment memory) {
        return _payments[digest];
    }

    /// @inheritdoc IEscrow
    function lockedLeaf(bytes32 digest) external view returns (bytes32) {
        return _lockedLeaves[digest];
    }

    /// @inheritdoc IEscrow
    function bidDigest(Bid calldata bid) external view returns (bytes32) {
        return _hashTypedDataV4(OrderHashes.hash(bid));
    }

    /// @inheritdoc IEscrow
    function leaseLeaf(uint8 kind, uint64 batchId, SignedLease calldata lease, uint64 usedGpuSeconds)
        external
        view
        returns (bytes32)
    {
        return _leaf(kind, batchId, lease, _hashTypedDataV4(OrderHashes.hash(lease.bid)), usedGpuSeconds);
    }

    // --- internals ----------------------------------------------------------------------------------------------

    /// @dev Checks what a lease's bid must satisfy on-chain and returns the bid's EIP-712 digest.
    function _verifyBid(SignedLease calldata lease, uint64 committedAt) private view returns (bytes32 digest) {
        Bid calldata bid = lease.bid;
        if (bid.gpus == 0 || bid.duration == 0) revert BidEmpty(bid.buyer, bid.nonce);
        if (bid.expiry < committedAt) revert BidExpired(bid.buyer, bid.nonce, bid.expiry, committedAt);
        if (lease.pricePerGpuHour > bid.maxPricePerGpuHour) {
            revert LeasePriceAboveCap(lease.leaseId, lease.pricePerGpuHour, bid.maxPricePerGpuHour);
        }
        digest = _hashTypedDataV4(OrderHashes.hash(bid));
        // tryRecover rejects malleable (high-s) signatures and bad v.
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, lease.r, lease.vs);
        if (err != ECDSA.RecoverError.NoError || signer != bid.buyer) revert BidSignatureInvalid(bid.buyer, signer);
    }

    /// @dev Consumes the bid's nonce and reserves its cost at the cap. `checkedProvider` is the last provider
    /// found active in this call, so a provider's many leases ask the registry once.
    function _lock(uint64 batchId, SignedLease calldata lease, bytes32 digest, address checkedProvider)
        private
        returns (address)
    {
        Bid calldata bid = lease.bid;
        if (lease.provider != checkedProvider) {
            if (!registry.isActive(lease.provider)) revert LeaseProviderInactive(lease.leaseId, lease.provider);
            checkedProvider = lease.provider;
        }
        mapping(uint256 => uint256) storage states = _bidStates[bid.buyer];
        BidState state = states.get(bid.nonce);
        if (state != BidState.Open) revert BidNotInState(bid.buyer, bid.nonce, state);
        states.set(bid.nonce, BidState.Locked);
        uint256 reserved = LeaseMath.reservation(bid);
        _reserve(bid.buyer, reserved);
        emit LeaseLocked(lease.leaseId, bid.buyer, lease.provider, batchId, bid.nonce, digest, reserved);
        return checkedProvider;
    }

    /// @dev One lease of {settleLeases}: locks it first if it is still open (checking its signature), or checks
    /// that it presents the leaf it was locked with; settles it; returns its lease and usage leaves.
    function _settleLease(
        uint64 batchId,
        uint64 startedAt,
        SignedLease calldata lease,
        Usage calldata usage,
        address checkedProvider
    ) private returns (bytes32 leaseLeafHash, bytes32 usageLeafHash, address) {
        bytes32 digest;
        BidState state = _bidStates[lease.bid.buyer].get(lease.bid.nonce);
        if (state == BidState.Open) {
            // Lock and settle in one call: the withdrawal notice protects a lease for its lock window.
            digest = _verifyBid(lease, startedAt);
            _requireLockWindowOpen(batchId, startedAt);
            checkedProvider = _lock(batchId, lease, digest, checkedProvider);
            leaseLeafHash = _leaf(LeaseLeaf.KIND_LEASE, batchId, lease, digest, 0);
            if (!usage.isFinal) _lockedLeaves[digest] = leaseLeafHash;
            state = BidState.Locked;
        } else if (state == BidState.Closed) {
            revert BidNotInState(lease.bid.buyer, lease.bid.nonce, state);
        } else {
            digest = _hashTypedDataV4(OrderHashes.hash(lease.bid));
            leaseLeafHash = _requireLockedLeaf(batchId, lease, digest);
            if (usage.isFinal) delete _lockedLeaves[digest];
        }
        _settle(lease, digest, state, usage, startedAt);
        uint8 kind = usage.isFinal ? LeaseLeaf.KIND_FINAL_USAGE : LeaseLeaf.KIND_USAGE;
        usageLeafHash = _leaf(kind, batchId, lease, digest, usage.usedGpuSeconds);
        return (leaseLeafHash, usageLeafHash, checkedProvider);
    }

    /// @dev Pays a locked lease up to `usage`, bounded by elapsed time and its reservation; closes it on a final
    /// usage leaf.
    function _settle(
        SignedLease calldata lease,
        bytes32 digest,
        BidState state,
        Usage calldata usage,
        uint64 startedAt
    ) private {
        Payment memory paid;
        if (state == BidState.PartiallySettled) paid = _payments[digest];
        uint256 due = _amountDue(lease, usage.usedGpuSeconds, startedAt, paid);
        uint256 reserved = LeaseMath.reservation(lease.bid);
        if (due > reserved) revert SettlementExceedsLocked(lease.leaseId, due, reserved);
        uint256 refunded;
        if (usage.isFinal) {
            refunded = reserved - due;
            _bidStates[lease.bid.buyer].set(lease.bid.nonce, BidState.Closed);
            if (state == BidState.PartiallySettled) delete _payments[digest];
        } else {
            if (state != BidState.PartiallySettled) {
                _bidStates[lease.bid.buyer].set(lease.bid.nonce, BidState.PartiallySettled);
            }
            // due <= reserved, which _reserve bounded by a 128-bit balance.
            _payments[digest] = Payment(usage.usedGpuSeconds, uint128(due));
        }
        _release(lease.bid.buyer, lease.provider, due - paid.amount, refunded);
        emit LeaseSettled(lease.leaseId, usage.usedGpuSeconds, due - paid.amount, refunded, usage.isFinal);
    }

    /// @dev The cumulative amount a lease owes for `used` GPU-seconds, after checking that the usage fits in the
    /// time elapsed since `startedAt` and does not go below what was already paid.
    function _amountDue(SignedLease calldata lease, uint64 used, uint64 startedAt, Payment memory paid)
        private
        view
        returns (uint256 due)
    {
        uint256 elapsed = block.timestamp - startedAt;
        uint256 duration = lease.bid.duration;
        uint256 maxGpuSeconds = uint256(lease.bid.gpus) * (elapsed < duration ? elapsed : duration);
        if (used > maxGpuSeconds) revert SettlementExceedsElapsed(lease.leaseId, used, maxGpuSeconds);
        due = LeaseMath.cost(used, lease.pricePerGpuHour);
        if (used < paid.gpuSeconds || due < paid.amount) {
            revert SettlementUsageDecreased(lease.leaseId, used, paid.gpuSeconds);
        }
    }

    /// @dev One lease of {reclaimLeases}: closes it after its settle window and refunds what was not paid.
    function _reclaimLease(uint64 batchId, uint64 startedAt, SignedLease calldata lease) private returns (bytes32) {
        Bid calldata bid = lease.bid;
        mapping(uint256 => uint256) storage states = _bidStates[bid.buyer];
        BidState state = states.get(bid.nonce);
        if (state != BidState.Locked && state != BidState.PartiallySettled) {
            revert BidNotInState(bid.buyer, bid.nonce, state);
        }
        bytes32 digest = _hashTypedDataV4(OrderHashes.hash(bid));
        bytes32 leaf = _requireLockedLeaf(batchId, lease, digest);
        uint64 reclaimableAt = startedAt + bid.duration + settleWindow;
        if (block.timestamp < reclaimableAt) revert LeaseReclaimTooEarly(lease.leaseId, reclaimableAt);
        uint256 paid;
        if (state == BidState.PartiallySettled) {
            paid = _payments[digest].amount;
            delete _payments[digest];
        }
        delete _lockedLeaves[digest];
        states.set(bid.nonce, BidState.Closed);
        uint256 refunded = LeaseMath.reservation(bid) - paid;
        _release(bid.buyer, lease.provider, 0, refunded);
        emit LeaseReclaimed(lease.leaseId, refunded);
        return leaf;
    }

    /// @dev The lease leaf of `lease` in batch `batchId`, which must be the leaf its bid was locked with.
    function _requireLockedLeaf(uint64 batchId, SignedLease calldata lease, bytes32 digest)
        private
        view
        returns (bytes32 leaf)
    {
        leaf = _leaf(LeaseLeaf.KIND_LEASE, batchId, lease, digest, 0);
        if (_lockedLeaves[digest] != leaf) revert LeaseTermsMismatch(lease.leaseId, digest);
    }

    function _batchRoot(uint64 batchId) private view returns (BatchRoot memory committed) {
        committed = _roots[batchId];
        if (committed.root == bytes32(0)) revert SettlementUnknownBatch(batchId);
    }

    function _requireLockWindowOpen(uint64 batchId, uint64 postedAt) private view {
        uint64 closesAt = postedAt + lockWindow;
        if (block.timestamp > closesAt) revert LeaseLockWindowClosed(batchId, closesAt);
    }

    function _leaf(uint8 kind, uint64 batchId, SignedLease calldata lease, bytes32 digest, uint64 used)
        private
        pure
        returns (bytes32)
    {
        return LeaseLeaf.hash(kind, batchId, lease.leaseId, digest, lease.bid, lease.provider, lease.pricePerGpuHour, used);
    }

    /// @dev The caller passes at least one leaf, which rules out OpenZeppelin's empty-set case.
    function _verifyMultiProof(uint64 batchId, bytes32 root, MultiProof calldata proof, bytes32[] memory leaves)
        private
        pure
    {
        if (leaves.length + proof.proof.length != proof.flags.length + 1) revert SettlementInvalidProof(batchId);
        if (!MerkleProof.multiProofVerifyCalldata(proof.proof, proof.flags, root, leaves)) {
            revert SettlementInvalidProof(batchId);
        }
    }
}
