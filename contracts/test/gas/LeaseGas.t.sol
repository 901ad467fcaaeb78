// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm} from "../utils/Vm.sol";

/// @notice Gas of the lease lifecycle per call and per lease, written to `contracts/snapshots/LeaseGas.json`.
///
/// Every test runs isolated (`isolate = true`): each top-level call is its own transaction, so storage the
/// setup touched is cold again and refunds are applied, as on chain. In that mode `snapshotGasLastCall` reports
/// the whole transaction as Prague charges it: the 21,000 base, calldata (EIP-2028, with the EIP-7623 floor),
/// execution, less refunds. The calldata share is also reported on its own (group `LeaseGasCalldata`): bytes per
/// lease and EIP-2028 gas per lease (16 per non-zero byte, 4 per zero byte) of the exact `abi.encodeCall`.
///
/// Two buyer mixes: `distinct` (n leases from n different buyers whose nonce words were never used, the worst
/// case: every lock writes a fresh nonce word) and `steady` (leases spread over 10 buyers whose nonce word 0 is
/// already in use by a settled lease, the steady state of a running market).
contract LeaseGasTest is Base {
    event log_named_uint(string key, uint256 val);

    uint256 internal constant DISTINCT_KEYS = 0x1000;
    uint256 internal constant STEADY_KEYS = 0x2000;
    uint256 internal constant STEADY_BUYERS = 10;

    uint64 internal _batchId;

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < 100; ++i) {
            _fund(vm.addr(DISTINCT_KEYS + i), 10_000e6);
        }
        // Steady-state buyers: each already locked and settled one lease (nonce 0), so its nonce word, its account
        // and the provider's account are warm-in-storage (non-zero) before the measured calls.
        IEscrow.SignedLease[] memory warmup = new IEscrow.SignedLease[](STEADY_BUYERS);
        for (uint256 i; i < STEADY_BUYERS; ++i) {
            _fund(vm.addr(STEADY_KEYS + i), 100_000e6);
            warmup[i] = _lease(STEADY_KEYS + i, 0);
        }
        bytes32[] memory tree = _commit(++_batchId, warmup);
        _lock(_batchId, warmup, tree);
        vm.warp(block.timestamp + DURATION);
        IEscrow.Usage[] memory usages = new IEscrow.Usage[](STEADY_BUYERS);
        for (uint256 i; i < STEADY_BUYERS; ++i) {
            usages[i] = IEscrow.Usage(uint64(GPUS) * DURATION, true);
        }
        bytes32[] memory usageTree = _commitUsage(_batchId, ++_batchId, warmup, usages);
        _settle(_batchId - 1, _batchId, warmup, usages, tree, usageTree);
        vm.warp(block.timestamp + 1 hours);
    }

    // --- scenarios ------------------------------------------------------------------------------------------------

    function _leases(uint256 n, bool steady) internal returns (IEscrow.SignedLease[] memory leases) {
        leases = new IEscrow.SignedLease[](n);
        for (uint256 i; i < n; ++i) {
            leases[i] = steady
                ? _lease(STEADY_KEYS + i % STEADY_BUYERS, 1 + i / STEADY_BUYERS)
                : _lease(DISTINCT_KEYS + i, 1);
        }
    }

    function _finalUsages(uint256 n, uint64 used, bool isFinal) internal pure returns (IEscrow.Usage[] memory u) {
        u = new IEscrow.Usage[](n);
        for (uint256 i; i < n; ++i) {
            u[i] = IEscrow.Usage(used, isFinal);
        }
    }

    function _name(string memory what, uint256 n, bool steady) internal pure returns (string memory) {
        return string.concat(what, "_", vm.toString(n), steady ? "_steady" : "_distinct");
    }

    function _record(string memory name, uint256 gasUsed, uint256 n, bytes memory callData) internal {
        emit log_named_uint(string.concat(name, " gas/call"), gasUsed);
        emit log_named_uint(string.concat(name, " gas/lease"), gasUsed / n);
        uint256 zeros;
        for (uint256 i; i < callData.length; ++i) {
            if (callData[i] == 0) ++zeros;
        }
        uint256 calldataGas = 16 * (callData.length - zeros) + 4 * zeros;
        vm.snapshotValue("LeaseGasCalldata", string.concat(name, "_bytesPerLease"), callData.length / n);
        vm.snapshotValue("LeaseGasCalldata", string.concat(name, "_gasPerLease"), calldataGas / n);
        vm.snapshotValue("LeaseGasPerLease", name, gasUsed / n);
        emit log_named_uint(string.concat(name, " calldata bytes/lease"), callData.length / n);
        emit log_named_uint(string.concat(name, " calldata gas/lease"), calldataGas / n);
    }

    /// @dev Commits n leases, locks them in one call, then settles them with final usage in one call.
    function _lockThenSettle(uint256 n, bool steady) internal {
        IEscrow.SignedLease[] memory leases = _leases(n, steady);
        uint64 batchId = ++_batchId;
        bytes32[] memory tree = _commit(batchId, leases);
        IEscrow.MultiProof memory proof = _proofOfAll(tree, n);
        escrow.lockLeases(batchId, leases, proof);
        string memory name = _name("lock", n, steady);
        _record(name, vm.snapshotGasLastCall("LeaseGas", name), n, abi.encodeCall(IEscrow.lockLeases, (batchId, leases, proof)));

        vm.warp(block.timestamp + DURATION);
        IEscrow.Usage[] memory usages = _finalUsages(n, uint64(GPUS) * DURATION - 60, true);
        uint64 usageBatchId = ++_batchId;
        bytes32[] memory usageTree = _commitUsage(batchId, usageBatchId, leases, usages);
        IEscrow.MultiProof memory usageProof = _proofOfAll(usageTree, n);
        escrow.settleLeases(batchId, usageBatchId, leases, usages, proof, usageProof);
        name = _name("settleFinal", n, steady);
        _record(
            name,
            vm.snapshotGasLastCall("LeaseGas", name),
            n,
            abi.encodeCall(IEscrow.settleLeases, (batchId, usageBatchId, leases, usages, proof, usageProof))
        );
        vm.assertEq(_reserved(leases[0].bid.buyer), 0, "closed");
    }

    /// @dev Commits n leases and, within the lock window, locks and settles them in one settle call: partially
    /// (the leases stay open, so each records its locked leaf) or with a final usage leaf (the whole life of a
    /// short or early-stopped lease in one call, no record).
    function _lockAndSettle(uint256 n, bool steady, bool isFinal) internal {
        IEscrow.SignedLease[] memory leases = _leases(n, steady);
        uint64 batchId = ++_batchId;
        bytes32[] memory tree = _commit(batchId, leases);
        vm.warp(block.timestamp + 300);
        IEscrow.Usage[] memory usages = _finalUsages(n, uint64(GPUS) * 300, isFinal);
        uint64 usageBatchId = ++_batchId;
        bytes32[] memory usageTree = _commitUsage(batchId, usageBatchId, leases, usages);
        IEscrow.MultiProof memory proof = _proofOfAll(tree, n);
        IEscrow.MultiProof memory usageProof = _proofOfAll(usageTree, n);
        escrow.settleLeases(batchId, usageBatchId, leases, usages, proof, usageProof);
        string memory name = _name(isFinal ? "lockAndSettleFinal" : "lockAndSettle", n, steady);
        _record(
            name,
            vm.snapshotGasLastCall("LeaseGas", name),
            n,
            abi.encodeCall(IEscrow.settleLeases, (batchId, usageBatchId, leases, usages, proof, usageProof))
        );
        vm.assertGt(_available(provider), 0, "paid");
    }

    /// @dev Commits and locks n leases, lets them lapse unsettled, and reclaims them in one call.
    function _reclaimAll(uint256 n, bool steady) internal {
        IEscrow.SignedLease[] memory leases = _leases(n, steady);
        uint64 batchId = ++_batchId;
        bytes32[] memory tree = _commit(batchId, leases);
        IEscrow.MultiProof memory proof = _proofOfAll(tree, n);
        escrow.lockLeases(batchId, leases, proof);
        vm.warp(block.timestamp + DURATION + SETTLE_WINDOW);
        escrow.reclaimLeases(batchId, leases, proof);
        string memory name = _name("reclaim", n, steady);
        _record(name, vm.snapshotGasLastCall("LeaseGas", name), n, abi.encodeCall(IEscrow.reclaimLeases, (batchId, leases, proof)));
        vm.assertEq(_reserved(leases[0].bid.buyer), 0, "refunded");
    }

    // --- measurements ---------------------------------------------------------------------------------------------

    /// forge-config: default.isolate = true
    function test_gas_postRoot() public {
        uint64 batchId = ++_batchId;
        vm.prank(operator);
        escrow.postRoot(batchId, keccak256("root"));
        uint256 used = vm.snapshotGasLastCall("LeaseGas", "postRoot");
        emit log_named_uint("postRoot gas/call", used);
        vm.snapshotValue(
            "LeaseGasCalldata", "postRoot_bytes", abi.encodeCall(IEscrow.postRoot, (batchId, keccak256("root"))).length
        );
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_1_distinct() public {
        _lockThenSettle(1, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_10_distinct() public {
        _lockThenSettle(10, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_100_distinct() public {
        _lockThenSettle(100, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_1_steady() public {
        _lockThenSettle(1, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_10_steady() public {
        _lockThenSettle(10, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockThenSettleFinal_100_steady() public {
        _lockThenSettle(100, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_1_distinct() public {
        _lockAndSettle(1, false, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_10_distinct() public {
        _lockAndSettle(10, false, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_100_distinct() public {
        _lockAndSettle(100, false, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_1_steady() public {
        _lockAndSettle(1, true, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_10_steady() public {
        _lockAndSettle(10, true, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettle_100_steady() public {
        _lockAndSettle(100, true, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_1_distinct() public {
        _lockAndSettle(1, false, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_1_steady() public {
        _lockAndSettle(1, true, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_10_distinct() public {
        _lockAndSettle(10, false, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_10_steady() public {
        _lockAndSettle(10, true, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_100_distinct() public {
        _lockAndSettle(100, false, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_lockAndSettleFinal_100_steady() public {
        _lockAndSettle(100, true, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_1_distinct() public {
        _reclaimAll(1, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_10_distinct() public {
        _reclaimAll(10, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_100_distinct() public {
        _reclaimAll(100, false);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_1_steady() public {
        _reclaimAll(1, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_10_steady() public {
        _reclaimAll(10, true);
    }

    /// forge-config: default.isolate = true
    function test_gas_reclaim_100_steady() public {
        _reclaimAll(100, true);
    }
}
