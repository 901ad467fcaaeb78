// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Bid} from "./Orders.sol";

/// @title LeaseLeaf
/// @notice Leaves of a batch's settlement tree, in OpenZeppelin's StandardMerkleTree convention: the ABI-encoded
/// values, hashed twice. One encoding for every leaf, told apart by `kind`:
/// (uint8 kind, uint64 batchId, uint64 leaseId, bytes32 bidDigest, address buyer, address provider,
///  bytes32 product, uint16 gpus, uint32 duration, uint128 pricePerGpuHour, uint64 usedGpuSeconds)
/// `batchId` is always the batch whose root committed the lease, so its post time is the lease's start.
library LeaseLeaf {
    /// @notice A new lease, committed in the root of batch `batchId`; `usedGpuSeconds` is 0.
    uint8 internal constant KIND_LEASE = 0;
    /// @notice Cumulative proven GPU-seconds of a running lease, committed in a later batch.
    uint8 internal constant KIND_USAGE = 1;
    /// @notice The last usage figure of a lease: settling it closes the lease and refunds the rest.
    uint8 internal constant KIND_FINAL_USAGE = 2;

    function hash(
        uint8 kind,
        uint64 batchId,
        uint64 leaseId,
        bytes32 bidDigest,
        Bid calldata bid,
        address provider,
        uint128 pricePerGpuHour,
        uint64 usedGpuSeconds
    ) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        kind,
                        batchId,
                        leaseId,
                        bidDigest,
                        bid.buyer,
                        provider,
                        bid.product,
                        bid.gpus,
                        bid.duration,
                        pricePerGpuHour,
                        usedGpuSeconds
                    )
                )
            )
        );
    }
}
