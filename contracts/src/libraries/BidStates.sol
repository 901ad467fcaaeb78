// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Where a bid stands on-chain, keyed by (buyer, nonce). A nonce leaves `Open` once and never returns.
enum BidState {
    Open, // never locked nor invalidated
    Locked, // filled by a lease whose reservation is held
    PartiallySettled, // locked, and some usage already paid (see the escrow's payment record)
    Closed // settled to the end, reclaimed, or invalidated by its owner before it was locked
}

/// @title BidStates
/// @notice Two bits per nonce, 128 nonces per storage word, so an account's nonces share slots (the first lock
/// in a word pays for a new slot, the next 127 only update it). The same space holds ask nonces: invalidating a
/// nonce closes it whatever order it was for.
library BidStates {
    uint256 private constant LOW_LANES = 0x5555555555555555555555555555555555555555555555555555555555555555;

    function get(mapping(uint256 => uint256) storage words, uint256 nonce) internal view returns (BidState) {
        return BidState((words[nonce >> 7] >> ((nonce & 127) << 1)) & 3);
    }

    function set(mapping(uint256 => uint256) storage words, uint256 nonce, BidState state) internal {
        uint256 shift = (nonce & 127) << 1;
        uint256 word = words[nonce >> 7];
        words[nonce >> 7] = (word & ~(uint256(3) << shift)) | (uint256(state) << shift);
    }

    /// @notice Closes every nonce of word `wordPos` whose bit is set in `mask` and that is still Open; locked
    /// ones keep their state, since a lock already committed the buyer's money to a provider.
    /// @return closed The lanes (one low bit per nonce) that this call closed.
    function closeOpen(mapping(uint256 => uint256) storage words, uint256 wordPos, uint128 mask)
        internal
        returns (uint256 closed)
    {
        uint256 word = words[wordPos];
        uint256 occupied = (word | (word >> 1)) & LOW_LANES;
        closed = spread(mask) & ~occupied;
        words[wordPos] = word | closed | (closed << 1);
    }

    /// @notice Moves bit i of `mask` to bit 2i (a Morton spread), so a nonce mask lines up with its state lanes.
    function spread(uint128 mask) internal pure returns (uint256 x) {
        x = mask;
        x = (x | (x << 64)) & 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff;
        x = (x | (x << 32)) & 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff;
        x = (x | (x << 16)) & 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff;
        x = (x | (x << 8)) & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff;
        x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f;
        x = (x | (x << 2)) & 0x3333333333333333333333333333333333333333333333333333333333333333;
        x = (x | (x << 1)) & LOW_LANES;
    }
}
