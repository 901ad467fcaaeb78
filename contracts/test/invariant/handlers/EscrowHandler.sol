// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Escrow} from "../../../src/Escrow.sol";
import {IEscrow} from "../../../src/interfaces/IEscrow.sol";
import {ProviderRegistry} from "../../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";
import {TestStablecoin} from "../../../src/TestStablecoin.sol";
import {Bid} from "../../../src/libraries/Orders.sol";
import {BidState} from "../../../src/libraries/BidStates.sol";
import {MerkleBuilder} from "../../utils/MerkleBuilder.sol";
import {Vm, vm, bound} from "../../utils/Vm.sol";

/// @notice Drives the escrow and the registry through valid actions in random order: deposits, withdrawals, roots
/// that commit leases and usage, locks, partial and final settlements (with lock-and-settle), reclaims, nonce
/// invalidations, time, and provider stakes. Every action picks among what is valid now and skips when nothing
/// is, so the campaign can run with `fail_on_revert`. What the contracts did is read back from their events into
/// ghost counters, so the invariants judge the contracts, not this handler's intentions.
contract EscrowHandler {
    // --- the system -----------------------------------------------------------------------------------------------

    Escrow public immutable escrow;
    ProviderRegistry public immutable registry;
    TestStablecoin public immutable token;
    address public immutable operator;
    address public immutable arbiter;
    uint64 internal immutable lockWindow;
    uint64 internal immutable settleWindow;
    uint256 internal immutable minStake;

    uint256 public constant BUYERS = 4;
    uint256 public constant PROVIDERS = 3;
    uint256[BUYERS] internal _buyerKeys;
    address[BUYERS] public buyers;
    address[PROVIDERS] public providers;

    // --- ghost state ----------------------------------------------------------------------------------------------

    enum Status {
        Committed, // in a root, not locked
        Locked, // locked (possibly partially settled), not closed
        Closed
    }

    struct LeaseRec {
        IEscrow.SignedLease lease;
        uint64 batchId;
        uint64 startedAt;
        uint256 reservation;
        Status status;
        // read back from the escrow's events:
        uint256 locks;
        uint256 closes;
        uint256 paid;
        uint64 paidGpuSeconds;
    }

    struct BatchRec {
        uint64 id;
        uint64 postedAt;
        bytes32[] tree;
        uint256[] leaseRecs; // leaf i (i < leaseRecs.length) commits recs[leaseRecs[i]]
        uint256[] usageRecs; // leaf leaseRecs.length + j is the usage of recs[usageRecs[j]]
        uint64[] usageUsed;
        bool[] usageFinal;
    }

    LeaseRec[] internal _recs;
    BatchRec[] internal _batches;
    mapping(uint256 buyer => uint256) internal _nextNonce;

    /// @notice The campaign's clock: every action starts here, whatever the fuzzer did to the block.
    uint256 public clock;

    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    uint256 public ghostStakeIn;
    uint256 public ghostStakeOut;

    // What the campaign reached, for the after-invariant check.
    uint256 public lockedLeases;
    uint256 public settlements;
    uint256 public partialSettlements;
    uint256 public finalSettlements;
    uint256 public lockAndSettles;
    uint256 public reclaims;
    uint256 public invalidations;
    uint256 public withdrawals;
    mapping(bytes4 => uint256) public calls;
    mapping(bytes4 => uint256) public skips;

    constructor(Escrow escrow_, ProviderRegistry registry_, uint256[BUYERS] memory buyerKeys_, address[PROVIDERS] memory providers_) {
        escrow = escrow_;
        registry = registry_;
        token = TestStablecoin(address(escrow_.token()));
        operator = escrow_.operator();
        arbiter = registry_.arbiter();
        lockWindow = escrow_.lockWindow();
        settleWindow = escrow_.settleWindow();
        minStake = registry_.minStake();
        _buyerKeys = buyerKeys_;
        for (uint256 i; i < BUYERS; ++i) {
            buyers[i] = vm.addr(buyerKeys_[i]);
        }
        providers = providers_;
        clock = block.timestamp;
    }

    modifier action(bytes4 selector) {
        vm.warp(clock);
        ++calls[selector];
        _;
    }

    // --- views for the invariants ---------------------------------------------------------------------------------

    function recCount() external view returns (uint256) {
        return _recs.length;
    }

    function rec(uint256 i) external view returns (LeaseRec memory) {
        return _recs[i];
    }

    // --- ledger ---------------------------------------------------------------------------------------------------

    function deposit(uint256 buyerSeed, uint256 amount) external action(this.deposit.selector) {
        _fund(buyers[buyerSeed % BUYERS], bound(amount, 1, 1e13));
    }

    function requestWithdrawal(uint256 buyerSeed, uint256 amount) external action(this.requestWithdrawal.selector) {
        vm.prank(buyers[buyerSeed % BUYERS]);
        escrow.requestWithdrawal(bound(amount, 1, 1e13));
    }

    function cancelWithdrawal(uint256 buyerSeed) external action(this.cancelWithdrawal.selector) {
        address who = buyers[buyerSeed % BUYERS];
        if (escrow.pendingWithdrawal(who).availableAt == 0) return _skip(this.cancelWithdrawal.selector);
        vm.prank(who);
        escrow.cancelWithdrawal();
    }

    function withdraw(uint256 buyerSeed) external action(this.withdraw.selector) {
        address who = buyers[buyerSeed % BUYERS];
        IEscrow.Withdrawal memory pending = escrow.pendingWithdrawal(who);
        if (pending.availableAt == 0 || clock < pending.availableAt) return _skip(this.withdraw.selector);
        uint256 before = token.balanceOf(who);
        vm.prank(who);
        uint256 paid = escrow.withdraw();
        require(token.balanceOf(who) - before == paid, "handler: withdraw paid what it said");
        ghostWithdrawn += paid;
        ++withdrawals;
    }

    // --- time -----------------------------------------------------------------------------------------------------

    function warp(uint256 secs) external action(this.warp.selector) {
        // Mostly short steps inside lock windows; sometimes hours, past lease ends and settle windows.
        secs = secs % 4 == 0 ? bound(secs, 1, 6 hours) : bound(secs, 1, lockWindow);
        _advance(secs);
    }

    // --- roots ----------------------------------------------------------------------------------------------------

    /// @notice Posts a root committing 0-3 new leases and usage leaves for some running leases.
    function postBatch(uint256 seed) external action(this.postBatch.selector) {
        _postBatch(seed, seed % 4, false);
    }

    // --- leases ---------------------------------------------------------------------------------------------------

    function lockLeases(uint256 seed) external action(this.lockLeases.selector) {
        uint256 nb = _batches.length;
        for (uint256 k; k < nb; ++k) {
            BatchRec storage batch = _batches[(seed % nb + k) % nb];
            if (clock > batch.postedAt + lockWindow) continue;
            uint256[] memory picked = _lockable(batch, seed);
            if (picked.length == 0) continue;
            return _lockPicked(batch, picked);
        }
        // Nothing lockable: commit a fresh lease and lock it, so the action always exercises a lock.
        _postBatch(seed, 1, false);
        BatchRec storage fresh = _batches[_batches.length - 1];
        uint256[] memory only = _lockable(fresh, 1);
        if (only.length == 0) return _skip(this.lockLeases.selector);
        _lockPicked(fresh, only);
    }

    /// @notice Settles usage leaves of one usage batch for leases of one lease batch; on odd seeds only final ones,
    /// so every campaign closes leases as well as paying them.
    function settleLeases(uint256 seed) external action(this.settleLeases.selector) {
        if (_trySettle(seed)) return;
        // Nothing settleable: post usage for what runs now, and if nothing runs, commit a lease first.
        _postBatch(seed, 0, true);
        if (_trySettle(seed)) return;
        _postBatch(seed, 1, false);
        _postBatch(seed, 0, true);
        if (!_trySettle(seed)) _skip(this.settleLeases.selector);
    }

    function reclaimLeases(uint256 seed) external action(this.reclaimLeases.selector) {
        if (_tryReclaim(seed)) return;
        // Wait for the locked lease that becomes reclaimable first, if any, then reclaim.
        uint256 earliest = type(uint256).max;
        for (uint256 i; i < _recs.length; ++i) {
            LeaseRec storage r = _recs[i];
            if (r.status != Status.Locked) continue;
            uint256 reclaimableAt = uint256(r.startedAt) + r.lease.bid.duration + settleWindow;
            if (reclaimableAt < earliest) earliest = reclaimableAt;
        }
        if (earliest == type(uint256).max) {
            // Nothing locked: commit and lock a lease, then wait out its end and settle window.
            _postBatch(seed, 1, false);
            BatchRec storage fresh = _batches[_batches.length - 1];
            uint256[] memory only = _lockable(fresh, 1);
            if (only.length == 0) return _skip(this.reclaimLeases.selector);
            _lockPicked(fresh, only);
            LeaseRec storage r = _recs[fresh.leaseRecs[only[0]]];
            earliest = uint256(r.startedAt) + r.lease.bid.duration + settleWindow;
        }
        if (earliest > clock) _advance(earliest - clock);
        if (!_tryReclaim(seed)) revert("handler: a reclaimable lease was not reclaimed");
    }

    function invalidateNonces(uint256 buyerSeed, uint256 laneSeed) external action(this.invalidateNonces.selector) {
        uint256 b = buyerSeed % BUYERS;
        uint256 wordPos = (laneSeed >> 16) % 2;
        uint128 mask = uint128((1 << (laneSeed % 128)) | (1 << ((laneSeed >> 8) % 128)));
        vm.prank(buyers[b]);
        escrow.invalidateNonces(wordPos, mask);
        ++invalidations;
        // Committed leases of those nonces can no longer lock.
        for (uint256 i; i < _recs.length; ++i) {
            LeaseRec storage r = _recs[i];
            if (r.status != Status.Committed || r.lease.bid.buyer != buyers[b]) continue;
            uint256 nonce = r.lease.bid.nonce;
            if (nonce >> 7 == wordPos && (mask >> (nonce & 127)) & 1 == 1) r.status = Status.Closed;
        }
    }

    // --- providers ------------------------------------------------------------------------------------------------

    /// @notice One registry operation on one provider. Provider 0 never leaves nor drops below the minimum, so
    /// the market always has an active seller.
    function registryAction(uint256 op, uint256 providerSeed, uint256 amount)
        external
        action(this.registryAction.selector)
    {
        uint256 p = providerSeed % PROVIDERS;
        address who = providers[p];
        IProviderRegistry.Provider memory record = registry.providerOf(who);
        op %= 5;
        if (op == 0 && record.registeredAt == 0) {
            amount = bound(amount, minStake, 3 * minStake);
            _mintTo(who, address(registry), amount);
            vm.prank(who);
            registry.register(keccak256(abi.encode(who, clock)), amount);
            ghostStakeIn += amount;
        } else if (op == 1 && record.registeredAt != 0) {
            amount = bound(amount, 1, minStake);
            _mintTo(who, address(registry), amount);
            vm.prank(who);
            registry.addStake(amount);
            ghostStakeIn += amount;
        } else if (op == 2 && record.registeredAt != 0) {
            uint256 slashable = p == 0 ? record.stake - minStake : record.stake;
            if (slashable == 0) return _skip(this.registryAction.selector);
            amount = bound(amount, 1, slashable);
            vm.prank(arbiter);
            registry.slash(who, amount, arbiter, keccak256("evidence"));
            ghostStakeOut += amount;
        } else if (op == 3 && p != 0 && record.registeredAt != 0 && record.exitAvailableAt == 0) {
            vm.prank(who);
            registry.requestExit();
        } else if (op == 4 && record.exitAvailableAt != 0 && clock >= record.exitAvailableAt) {
            vm.prank(who);
            ghostStakeOut += registry.exit();
        } else {
            _skip(this.registryAction.selector);
        }
    }

    // --- internals: batches ---------------------------------------------------------------------------------------

    /// @param newLeases How many new leases to commit; when `usageForAll`, every running lease gets a usage leaf,
    /// final ones half the time and the first one always final. Leases a fallback path commits are always lockable.
    function _postBatch(uint256 seed, uint256 newLeases, bool usageForAll) internal {
        uint256 nb = _batches.length;
        uint64 id = (nb == 0 ? 0 : _batches[nb - 1].id) + 1 + uint64(seed % 3);
        _batches.push();
        BatchRec storage batch = _batches[nb];
        batch.id = id;
        batch.postedAt = uint64(clock);
        for (uint256 i; i < newLeases; ++i) {
            batch.leaseRecs.push(_newLease(id, uint256(keccak256(abi.encode(seed, i))), usageForAll || newLeases == 1));
        }
        // Usage leaves in ascending record order, the order every lease leaf is in too: a settle call's items are
        // then ascending in both trees.
        for (uint256 i; i < _recs.length; ++i) {
            LeaseRec storage r = _recs[i];
            if (r.batchId == id || !_running(r)) continue;
            uint256 draw = uint256(keccak256(abi.encode(seed, "usage", i)));
            if (!usageForAll && draw % 2 == 0) continue;
            uint256 elapsed = clock - r.startedAt;
            uint256 maxUsed = uint256(r.lease.bid.gpus) * (elapsed < r.lease.bid.duration ? elapsed : r.lease.bid.duration);
            batch.usageRecs.push(i);
            batch.usageUsed.push(uint64(bound(draw >> 8, r.paidGpuSeconds, maxUsed)));
            batch.usageFinal.push(usageForAll ? (batch.usageRecs.length == 1 || (draw >> 4) % 2 == 0) : (draw >> 4) % 3 == 0);
        }
        if (batch.leaseRecs.length + batch.usageRecs.length == 0) {
            batch.leaseRecs.push(_newLease(id, seed, true));
        }
        bytes32[] memory leaves = new bytes32[](batch.leaseRecs.length + batch.usageRecs.length);
        for (uint256 i; i < batch.leaseRecs.length; ++i) {
            leaves[i] = escrow.leaseLeaf(0, id, _recs[batch.leaseRecs[i]].lease, 0);
        }
        uint256 offset = batch.leaseRecs.length;
        for (uint256 j; j < batch.usageRecs.length; ++j) {
            LeaseRec storage r = _recs[batch.usageRecs[j]];
            leaves[offset + j] =
                escrow.leaseLeaf(batch.usageFinal[j] ? 2 : 1, r.batchId, r.lease, batch.usageUsed[j]);
        }
        batch.tree = MerkleBuilder.build(leaves);
        vm.prank(operator);
        escrow.postRoot(id, batch.tree[0]);
    }

    /// @dev A lease that may still be paid: locked, or committed with its lock window open.
    function _running(LeaseRec storage r) internal view returns (bool) {
        if (r.status == Status.Locked) return true;
        return r.status == Status.Committed && clock <= r.startedAt + lockWindow;
    }

    function _newLease(uint64 batchId, uint256 seed, bool lockable) internal returns (uint256 index) {
        uint256 b = seed % BUYERS;
        Bid memory bid = Bid({
            buyer: buyers[b],
            product: keccak256("nvidia-h100-sxm-80gb"),
            gpus: uint16(bound(seed >> 8, 1, 8)),
            duration: uint32(bound(seed >> 24, 60, 4 hours)),
            maxPricePerGpuHour: uint128(bound(seed >> 64, 1, 5e6)),
            jobSpecHash: keccak256(abi.encode(seed)),
            nonce: _freshNonce(b),
            // One bid in eight had expired before the root: it is committed but can never lock.
            expiry: !lockable && (seed >> 128) % 8 == 0 ? uint64(clock - 1) : uint64(clock + 1 days)
        });
        // Provider 0 two times in three; the others may be inactive, and then the lease cannot lock.
        address seller = lockable || (seed >> 136) % 3 != 0 ? providers[0] : providers[1 + (seed >> 140) % 2];
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_buyerKeys[b], escrow.bidDigest(bid));
        IEscrow.SignedLease memory lease = IEscrow.SignedLease({
            bid: bid,
            r: r,
            vs: bytes32(uint256(s) | (uint256(v - 27) << 255)),
            leaseId: uint64(_recs.length + 1),
            provider: seller,
            pricePerGpuHour: uint128(bound(seed >> 160, 0, bid.maxPricePerGpuHour))
        });
        index = _recs.length;
        _recs.push();
        LeaseRec storage rec_ = _recs[index];
        rec_.lease = lease;
        rec_.batchId = batchId;
        rec_.startedAt = uint64(clock);
        rec_.reservation = uint256(bid.gpus) * bid.duration * bid.maxPricePerGpuHour / 3600;
    }

    function _freshNonce(uint256 b) internal returns (uint256 nonce) {
        nonce = _nextNonce[b];
        while (escrow.bidState(buyers[b], nonce) != BidState.Open) {
            ++nonce;
        }
        _nextNonce[b] = nonce + 1;
    }

    // --- internals: lock ------------------------------------------------------------------------------------------

    /// @dev Whether a committed lease can lock now (the lock window is the caller's to check).
    function _canLock(LeaseRec storage r) internal view returns (bool) {
        return r.status == Status.Committed && r.lease.bid.expiry >= r.startedAt
            && registry.isActive(r.lease.provider);
    }

    function _lockable(BatchRec storage batch, uint256 seed) internal view returns (uint256[] memory picked) {
        uint256 n = batch.leaseRecs.length;
        picked = new uint256[](n);
        uint256 count;
        uint256 fallbackLeaf = type(uint256).max;
        for (uint256 i; i < n; ++i) {
            if (!_canLock(_recs[batch.leaseRecs[i]])) continue;
            if (fallbackLeaf == type(uint256).max) fallbackLeaf = i;
            if ((seed >> i) & 1 == 1) picked[count++] = i;
        }
        if (count == 0 && fallbackLeaf != type(uint256).max) picked[count++] = fallbackLeaf;
        assembly ("memory-safe") {
            mstore(picked, count)
        }
    }

    function _lockPicked(BatchRec storage batch, uint256[] memory leafIndices) internal {
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](leafIndices.length);
        uint256[BUYERS] memory needed;
        for (uint256 i; i < leafIndices.length; ++i) {
            LeaseRec storage r = _recs[batch.leaseRecs[leafIndices[i]]];
            leases[i] = r.lease;
            needed[_buyerIndex(r.lease.bid.buyer)] += r.reservation;
        }
        _cover(needed);
        (, IEscrow.MultiProof memory proof) = MerkleBuilder.multiProof(batch.tree, leafIndices);
        vm.recordLogs();
        escrow.lockLeases(batch.id, leases, proof);
        _readBack(false);
    }

    // --- internals: settle ----------------------------------------------------------------------------------------

    function _trySettle(uint256 seed) internal returns (bool) {
        uint256 nb = _batches.length;
        for (uint256 k; k < nb; ++k) {
            uint256 u = (seed % nb + k) % nb;
            (uint64 leaseBatchId, uint256[] memory usageIdx) = _settleable(_batches[u], seed);
            if (usageIdx.length == 0) continue;
            _settlePicked(u, leaseBatchId, usageIdx);
            return true;
        }
        return false;
    }

    function _usageValid(BatchRec storage batch, uint256 j, bool finalOnly) internal view returns (bool) {
        if (finalOnly && !batch.usageFinal[j]) return false;
        LeaseRec storage r = _recs[batch.usageRecs[j]];
        if (batch.usageUsed[j] < r.paidGpuSeconds) return false;
        if (r.status == Status.Locked) return true;
        return _canLock(r) && clock <= r.startedAt + lockWindow;
    }

    /// @dev The usage leaves of `batch` that can settle now, all for leases of one lease batch.
    function _settleable(BatchRec storage batch, uint256 seed)
        internal
        view
        returns (uint64 leaseBatchId, uint256[] memory picked)
    {
        uint256 n = batch.usageRecs.length;
        picked = new uint256[](n);
        uint256 count;
        for (uint256 j; j < n; ++j) {
            if (!_usageValid(batch, j, seed % 2 == 1)) continue;
            uint64 b = _recs[batch.usageRecs[j]].batchId;
            if (leaseBatchId == 0) leaseBatchId = b;
            if (b != leaseBatchId) continue;
            if (count == 0 || (seed >> (j % 200)) & 1 == 1) picked[count++] = j;
        }
        assembly ("memory-safe") {
            mstore(picked, count)
        }
    }

    function _settlePicked(uint256 u, uint64 leaseBatchId, uint256[] memory usageIdx) internal {
        BatchRec storage usageBatch = _batches[u];
        BatchRec storage leaseBatch = _batchById(leaseBatchId);
        uint256 n = usageIdx.length;
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](n);
        IEscrow.Usage[] memory usages = new IEscrow.Usage[](n);
        uint256[] memory leaseLeaves = new uint256[](n);
        uint256[] memory usageLeaves = new uint256[](n);
        uint256[BUYERS] memory needed;
        for (uint256 i; i < n; ++i) {
            uint256 j = usageIdx[i];
            uint256 recIndex = usageBatch.usageRecs[j];
            LeaseRec storage r = _recs[recIndex];
            leases[i] = r.lease;
            usages[i] = IEscrow.Usage(usageBatch.usageUsed[j], usageBatch.usageFinal[j]);
            leaseLeaves[i] = _leafOf(leaseBatch, recIndex);
            usageLeaves[i] = usageBatch.leaseRecs.length + j;
            if (r.status == Status.Committed) needed[_buyerIndex(r.lease.bid.buyer)] += r.reservation;
        }
        _cover(needed);
        (, IEscrow.MultiProof memory leaseProof) = MerkleBuilder.multiProof(leaseBatch.tree, leaseLeaves);
        (, IEscrow.MultiProof memory usageProof) = MerkleBuilder.multiProof(usageBatch.tree, usageLeaves);
        vm.recordLogs();
        escrow.settleLeases(leaseBatchId, usageBatch.id, leases, usages, leaseProof, usageProof);
        _readBack(true);
        ++settlements;
    }

    function _batchById(uint64 id) internal view returns (BatchRec storage) {
        for (uint256 i = _batches.length; i > 0; --i) {
            if (_batches[i - 1].id == id) return _batches[i - 1];
        }
        revert("handler: unknown batch");
    }

    function _leafOf(BatchRec storage batch, uint256 recIndex) internal view returns (uint256) {
        for (uint256 i; i < batch.leaseRecs.length; ++i) {
            if (batch.leaseRecs[i] == recIndex) return i;
        }
        revert("handler: lease not in batch");
    }

    // --- internals: reclaim ---------------------------------------------------------------------------------------

    function _tryReclaim(uint256 seed) internal returns (bool) {
        uint256 nb = _batches.length;
        for (uint256 k; k < nb; ++k) {
            BatchRec storage batch = _batches[(seed % nb + k) % nb];
            uint256 n = batch.leaseRecs.length;
            uint256[] memory picked = new uint256[](n);
            uint256 count;
            for (uint256 i; i < n; ++i) {
                LeaseRec storage r = _recs[batch.leaseRecs[i]];
                if (r.status != Status.Locked) continue;
                if (clock < uint256(r.startedAt) + r.lease.bid.duration + settleWindow) continue;
                if (count == 0 || (seed >> i) & 1 == 1) picked[count++] = i;
            }
            if (count == 0) continue;
            assembly ("memory-safe") {
                mstore(picked, count)
            }
            IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](count);
            for (uint256 i; i < count; ++i) {
                leases[i] = _recs[batch.leaseRecs[picked[i]]].lease;
            }
            (, IEscrow.MultiProof memory proof) = MerkleBuilder.multiProof(batch.tree, picked);
            vm.recordLogs();
            escrow.reclaimLeases(batch.id, leases, proof);
            _readBack(false);
            return true;
        }
        return false;
    }

    // --- internals: events, money, time ---------------------------------------------------------------------------

    /// @dev Updates the ghost records from what the escrow emitted in the last call.
    function _readBack(bool settling) internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(escrow)) continue;
            bytes32 topic = logs[i].topics[0];
            if (topic != IEscrow.LeaseLocked.selector && topic != IEscrow.LeaseSettled.selector
                && topic != IEscrow.LeaseReclaimed.selector) continue;
            LeaseRec storage r = _recs[uint256(logs[i].topics[1]) - 1];
            if (topic == IEscrow.LeaseLocked.selector) {
                ++r.locks;
                r.status = Status.Locked;
                ++lockedLeases;
                if (settling) ++lockAndSettles;
            } else if (topic == IEscrow.LeaseSettled.selector) {
                (uint64 used, uint256 paid,, bool closed) = abi.decode(logs[i].data, (uint64, uint256, uint256, bool));
                r.paid += paid;
                r.paidGpuSeconds = used;
                if (closed) {
                    ++r.closes;
                    r.status = Status.Closed;
                    ++finalSettlements;
                } else {
                    ++partialSettlements;
                }
            } else {
                ++r.closes;
                r.status = Status.Closed;
                ++reclaims;
            }
        }
    }

    /// @dev Tops every buyer up so that `needed[b]` more can be reserved from it in the next call.
    function _cover(uint256[BUYERS] memory needed) internal {
        for (uint256 b; b < BUYERS; ++b) {
            uint256 available = escrow.accountOf(buyers[b]).available;
            if (available < needed[b]) _fund(buyers[b], needed[b] - available);
        }
    }

    function _buyerIndex(address buyer) internal view returns (uint256) {
        for (uint256 b; b < BUYERS; ++b) {
            if (buyers[b] == buyer) return b;
        }
        revert("handler: unknown buyer");
    }

    function _fund(address who, uint256 amount) internal {
        _mintTo(who, address(escrow), amount);
        vm.prank(who);
        escrow.deposit(amount);
        ghostDeposited += amount;
    }

    function _mintTo(address who, address spender, uint256 amount) internal {
        token.mint(who, amount);
        vm.prank(who);
        token.approve(spender, amount);
    }

    function _advance(uint256 secs) internal {
        clock += secs;
        vm.warp(clock);
    }

    function _skip(bytes4 selector) internal {
        ++skips[selector];
    }
}
