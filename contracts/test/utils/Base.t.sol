// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Escrow} from "../../src/Escrow.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {TestStablecoin} from "../../src/TestStablecoin.sol";
import {Bid} from "../../src/libraries/Orders.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {MerkleBuilder} from "./MerkleBuilder.sol";
import {vm} from "./Vm.sol";

/// @notice Shared deployment and the lease plumbing every escrow test needs: signed bids, batch trees, posted roots
/// and multiproofs. Parameters are the deployment defaults (gpuspot/deployment.py).
abstract contract Base {
    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant MIN_STAKE = 100e6;
    uint64 internal constant EXIT_DELAY = 7 days;
    uint64 internal constant WITHDRAWAL_NOTICE = 3600;
    uint64 internal constant LOCK_WINDOW = 600;
    uint64 internal constant SETTLE_WINDOW = 3600;

    bytes32 internal constant PRODUCT = keccak256("nvidia-h100-sxm-80gb");
    uint16 internal constant GPUS = 8;
    uint32 internal constant DURATION = 3600;
    uint128 internal constant MAX_PRICE = 2_500_000; // $2.50 per GPU-hour, 6 decimals
    uint128 internal constant PRICE = 2_000_000;
    uint256 internal constant FUNDING = 1_000_000e6;

    uint256 internal constant BUYER_KEY = 0xB0B;
    uint256 internal constant BUYER2_KEY = 0xCA401;
    uint256 internal constant PROVIDER_KEY = 0x9A0B1DE;
    uint256 internal constant PROVIDER2_KEY = 0x9A0B1DE2;
    uint256 internal constant OPERATOR_KEY = 0x0BE4;
    uint256 internal constant OWNER_KEY = 0x0D0E;
    uint256 internal constant ARBITER_KEY = 0xA4B;
    uint256 internal constant STRANGER_KEY = 0x5743;

    /// @dev secp256k1's group order, for building malleable signatures.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    address internal buyer;
    address internal buyer2;
    address internal provider;
    address internal provider2;
    address internal operator;
    address internal owner;
    address internal arbiter;
    address internal stranger;

    TestStablecoin internal token;
    ProviderRegistry internal registry;
    Escrow internal escrow;

    uint64 private _nextLeaseId = 1;

    function setUp() public virtual {
        vm.warp(START);
        buyer = _account(BUYER_KEY, "buyer");
        buyer2 = _account(BUYER2_KEY, "buyer2");
        provider = _account(PROVIDER_KEY, "provider");
        provider2 = _account(PROVIDER2_KEY, "provider2");
        operator = _account(OPERATOR_KEY, "operator");
        owner = _account(OWNER_KEY, "owner");
        arbiter = _account(ARBITER_KEY, "arbiter");
        stranger = _account(STRANGER_KEY, "stranger");

        token = new TestStablecoin();
        registry = new ProviderRegistry(token, MIN_STAKE, EXIT_DELAY, owner, arbiter);
        escrow = new Escrow(token, registry, owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW);
        vm.label(address(token), "token");
        vm.label(address(registry), "registry");
        vm.label(address(escrow), "escrow");

        _register(provider, MIN_STAKE);
        _fund(buyer, FUNDING);
        _fund(buyer2, FUNDING);
    }

    // --- accounts -----------------------------------------------------------------------------------------------

    function _account(uint256 key, string memory name) internal returns (address account) {
        account = vm.addr(key);
        vm.label(account, name);
    }

    /// @notice Mints `amount` to `account` and deposits it into the escrow.
    function _fund(address account, uint256 amount) internal {
        token.mint(account, amount);
        vm.startPrank(account);
        token.approve(address(escrow), amount);
        escrow.deposit(amount);
        vm.stopPrank();
    }

    function _register(address who, uint256 stake) internal {
        token.mint(who, stake);
        vm.startPrank(who);
        token.approve(address(registry), stake);
        registry.register(keccak256(abi.encode("host", who)), stake);
        vm.stopPrank();
    }

    function _available(address account) internal view returns (uint256) {
        return escrow.accountOf(account).available;
    }

    function _reserved(address account) internal view returns (uint256) {
        return escrow.accountOf(account).reserved;
    }

    // --- bids and leases ----------------------------------------------------------------------------------------

    function _bid(address buyer_, uint256 nonce) internal view returns (Bid memory) {
        return Bid({
            buyer: buyer_,
            product: PRODUCT,
            gpus: GPUS,
            duration: DURATION,
            maxPricePerGpuHour: MAX_PRICE,
            jobSpecHash: keccak256(abi.encode("job", buyer_, nonce)),
            nonce: nonce,
            expiry: uint64(block.timestamp + 1 days)
        });
    }

    /// @notice EIP-2098 compact signature of `digest` by `key`.
    function _signDigest(uint256 key, bytes32 digest) internal pure returns (bytes32 r, bytes32 vs) {
        (uint8 v, bytes32 r_, bytes32 s) = vm.sign(key, digest);
        return (r_, _compact(v, s));
    }

    function _compact(uint8 v, bytes32 s) internal pure returns (bytes32) {
        return bytes32(uint256(s) | (uint256(v - 27) << 255));
    }

    function _signedLease(uint256 key, Bid memory bid, address provider_, uint128 price)
        internal
        returns (IEscrow.SignedLease memory lease)
    {
        (bytes32 r, bytes32 vs) = _signDigest(key, escrow.bidDigest(bid));
        lease = IEscrow.SignedLease({
            bid: bid, r: r, vs: vs, leaseId: _nextLeaseId++, provider: provider_, pricePerGpuHour: price
        });
    }

    /// @notice A lease of the default bid of `key`'s account with nonce `nonce`, sold by `provider` at `PRICE`.
    function _lease(uint256 key, uint256 nonce) internal returns (IEscrow.SignedLease memory) {
        return _signedLease(key, _bid(vm.addr(key), nonce), provider, PRICE);
    }

    function _one(IEscrow.SignedLease memory lease) internal pure returns (IEscrow.SignedLease[] memory leases) {
        leases = new IEscrow.SignedLease[](1);
        leases[0] = lease;
    }

    function _usages(uint64 used, bool isFinal) internal pure returns (IEscrow.Usage[] memory usages) {
        usages = new IEscrow.Usage[](1);
        usages[0] = IEscrow.Usage(used, isFinal);
    }

    function _reservation(Bid memory bid) internal pure returns (uint256) {
        return uint256(bid.gpus) * bid.duration * bid.maxPricePerGpuHour / 3600;
    }

    function _cost(uint256 gpuSeconds, uint256 price) internal pure returns (uint256) {
        return gpuSeconds * price / 3600;
    }

    // --- batches ------------------------------------------------------------------------------------------------

    function _leaseLeaves(uint64 batchId, IEscrow.SignedLease[] memory leases)
        internal
        view
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](leases.length);
        for (uint256 i; i < leases.length; ++i) {
            leaves[i] = escrow.leaseLeaf(0, batchId, leases[i], 0);
        }
    }

    function _usageLeaves(uint64 batchId, IEscrow.SignedLease[] memory leases, IEscrow.Usage[] memory usages)
        internal
        view
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](leases.length);
        for (uint256 i; i < leases.length; ++i) {
            uint8 kind = usages[i].isFinal ? 2 : 1;
            leaves[i] = escrow.leaseLeaf(kind, batchId, leases[i], usages[i].usedGpuSeconds);
        }
    }

    /// @notice Builds the tree over `leaves` and posts its root as batch `batchId`.
    function _post(uint64 batchId, bytes32[] memory leaves) internal returns (bytes32[] memory tree) {
        tree = MerkleBuilder.build(leaves);
        vm.prank(operator);
        escrow.postRoot(batchId, tree[0]);
    }

    /// @notice Commits `leases` (leaf i = lease i) in batch `batchId`.
    function _commit(uint64 batchId, IEscrow.SignedLease[] memory leases) internal returns (bytes32[] memory) {
        return _post(batchId, _leaseLeaves(batchId, leases));
    }

    /// @notice Commits the usages of `leases` of batch `batchId` (leaf i = usage i) in batch `usageBatchId`.
    function _commitUsage(
        uint64 batchId,
        uint64 usageBatchId,
        IEscrow.SignedLease[] memory leases,
        IEscrow.Usage[] memory usages
    ) internal returns (bytes32[] memory) {
        return _post(usageBatchId, _usageLeaves(batchId, leases, usages));
    }

    function _proofOfAll(bytes32[] memory tree, uint256 count) internal pure returns (IEscrow.MultiProof memory) {
        return MerkleBuilder.multiProofOfFirst(tree, count);
    }

    /// @notice Locks every lease of a tree built by {_commit}.
    function _lock(uint64 batchId, IEscrow.SignedLease[] memory leases, bytes32[] memory tree) internal {
        escrow.lockLeases(batchId, leases, _proofOfAll(tree, leases.length));
    }

    /// @notice Settles every lease of trees built by {_commit} and {_commitUsage}.
    function _settle(
        uint64 batchId,
        uint64 usageBatchId,
        IEscrow.SignedLease[] memory leases,
        IEscrow.Usage[] memory usages,
        bytes32[] memory leaseTree,
        bytes32[] memory usageTree
    ) internal {
        escrow.settleLeases(
            batchId,
            usageBatchId,
            leases,
            usages,
            _proofOfAll(leaseTree, leases.length),
            _proofOfAll(usageTree, leases.length)
        );
    }

    function _reclaim(uint64 batchId, IEscrow.SignedLease[] memory leases, bytes32[] memory tree) internal {
        escrow.reclaimLeases(batchId, leases, _proofOfAll(tree, leases.length));
    }

    /// @notice Commits one default lease of `buyer` (nonce `nonce`) in batch `batchId` and locks it.
    function _commitAndLock(uint64 batchId, uint256 nonce)
        internal
        returns (IEscrow.SignedLease[] memory leases, bytes32[] memory tree)
    {
        leases = _one(_lease(BUYER_KEY, nonce));
        tree = _commit(batchId, leases);
        _lock(batchId, leases, tree);
    }

    function _state(address account, uint256 nonce) internal view returns (uint256) {
        return uint256(escrow.bidState(account, nonce));
    }

    function _digest(IEscrow.SignedLease memory lease) internal view returns (bytes32) {
        return escrow.bidDigest(lease.bid);
    }
}
