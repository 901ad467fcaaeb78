// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A buyer's order: `gpus` GPUs of `product` on one host for `duration` seconds, paying at most
/// `maxPricePerGpuHour` token base units per GPU-hour. All-or-none. Signed as EIP-712 typed data.
struct Bid {
    address buyer;
    bytes32 product;
    uint16 gpus;
    uint32 duration;
    uint128 maxPricePerGpuHour;
    bytes32 jobSpecHash;
    uint256 nonce;
    uint64 expiry;
}

/// @notice A provider's order: up to `gpus` GPUs of `product` on host `hostId`, for leases of at most
/// `maxDuration` seconds, at no less than `minPricePerGpuHour`. Divisible. Verified by the matcher; on-chain
/// only its nonce matters (see {IEscrow-invalidateNonces}).
struct Ask {
    address provider;
    bytes32 product;
    bytes32 hostId;
    uint16 gpus;
    uint32 maxDuration;
    uint128 minPricePerGpuHour;
    uint256 nonce;
    uint64 expiry;
}

/// @title OrderHashes
/// @notice EIP-712 struct hashes of bids and asks. The type strings are the single source of the order types;
/// the matcher, the provider agent and the SDK publish the same strings.
library OrderHashes {
    string internal constant BID_TYPE =
        "Bid(address buyer,bytes32 product,uint16 gpus,uint32 duration,uint128 maxPricePerGpuHour,bytes32 jobSpecHash,uint256 nonce,uint64 expiry)";
    bytes32 internal constant BID_TYPEHASH = keccak256(bytes(BID_TYPE));

    string internal constant ASK_TYPE =
        "Ask(address provider,bytes32 product,bytes32 hostId,uint16 gpus,uint32 maxDuration,uint128 minPricePerGpuHour,uint256 nonce,uint64 expiry)";
    bytes32 internal constant ASK_TYPEHASH = keccak256(bytes(ASK_TYPE));

    /// @dev Every field is static, so `abi.encode` lays the struct out word by word exactly as EIP-712's
    /// encodeData does.
    function hash(Bid calldata bid) internal pure returns (bytes32) {
        return keccak256(abi.encode(BID_TYPEHASH, bid));
    }

    function hash(Ask calldata ask) internal pure returns (bytes32) {
        return keccak256(abi.encode(ASK_TYPEHASH, ask));
    }
}
