// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";

/// @title MerkleBuilder
/// @notice The settlement tree exactly as OpenZeppelin's JS `StandardMerkleTree` builds it with `sortLeaves: false`
/// (what the matcher publishes): a flat array of `2n - 1` nodes, leaf `i` at `tree[length - 1 - i]`, each inner
/// node the commutative (sorted-pair) keccak of its two children, the root at `tree[0]`. Proof builders port
/// `getProof` and `getMultiProof` from OpenZeppelin merkle-tree `src/core.ts`.
library MerkleBuilder {
    /// @notice The flat tree over `leaves`, in leaf order (leaf i is `leaves[i]`).
    function build(bytes32[] memory leaves) internal pure returns (bytes32[] memory tree) {
        uint256 n = leaves.length;
        require(n > 0, "MerkleBuilder: no leaves");
        tree = new bytes32[](2 * n - 1);
        for (uint256 i; i < n; ++i) {
            tree[tree.length - 1 - i] = leaves[i];
        }
        for (uint256 k = tree.length - n; k > 0; --k) {
            tree[k - 1] = hashPair(tree[2 * (k - 1) + 1], tree[2 * (k - 1) + 2]);
        }
    }

    function root(bytes32[] memory tree) internal pure returns (bytes32) {
        return tree[0];
    }

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @notice Tree index of leaf `leafIndex`.
    function treeIndex(bytes32[] memory tree, uint256 leafIndex) internal pure returns (uint256) {
        return tree.length - 1 - leafIndex;
    }

    /// @notice The single-leaf proof of leaf `leafIndex` (OZ `getProof`).
    function proof(bytes32[] memory tree, uint256 leafIndex) internal pure returns (bytes32[] memory siblings) {
        uint256 i = treeIndex(tree, leafIndex);
        uint256 depth;
        for (uint256 j = i; j > 0; j = (j - 1) / 2) {
            ++depth;
        }
        siblings = new bytes32[](depth);
        for (uint256 d; i > 0; ++d) {
            siblings[d] = tree[_sibling(i)];
            i = (i - 1) / 2;
        }
    }

    /// @notice The multiproof of the leaves at `leafIndices` (OZ `getMultiProof`). The leaves come back in the order
    /// the verifier consumes them: descending tree index, i.e. ascending leaf index, whatever order was asked.
    function multiProof(bytes32[] memory tree, uint256[] memory leafIndices)
        internal
        pure
        returns (bytes32[] memory leaves, IEscrow.MultiProof memory mp)
    {
        uint256 m = leafIndices.length;
        uint256[] memory indices = new uint256[](m);
        for (uint256 i; i < m; ++i) {
            indices[i] = treeIndex(tree, leafIndices[i]);
        }
        _sortDescending(indices);
        for (uint256 i = 1; i < m; ++i) {
            require(indices[i] != indices[i - 1], "MerkleBuilder: duplicated index");
        }
        // A FIFO queue: `stack.shift()` is `queue[head++]`, `stack.push(p)` is `queue[tail++] = p`. Each step
        // consumes at least one entry and pushes one, so m + tree.length slots are plenty.
        uint256[] memory queue = new uint256[](m + tree.length);
        uint256 head;
        uint256 tail;
        for (uint256 i; i < m; ++i) {
            queue[tail++] = indices[i];
        }
        bytes32[] memory siblings = new bytes32[](tree.length);
        bool[] memory flags = new bool[](tree.length);
        uint256 proofLen;
        uint256 flagsLen;
        while (head < tail && queue[head] > 0) {
            uint256 j = queue[head++];
            uint256 s = _sibling(j);
            uint256 p = (j - 1) / 2;
            if (head < tail && s == queue[head]) {
                flags[flagsLen++] = true;
                ++head;
            } else {
                flags[flagsLen++] = false;
                siblings[proofLen++] = tree[s];
            }
            queue[tail++] = p;
        }
        if (m == 0) siblings[proofLen++] = tree[0];
        // Trim the scratch arrays to their used length.
        assembly ("memory-safe") {
            mstore(siblings, proofLen)
            mstore(flags, flagsLen)
        }
        leaves = new bytes32[](m);
        for (uint256 i; i < m; ++i) {
            leaves[i] = tree[indices[i]];
        }
        mp = IEscrow.MultiProof(siblings, flags);
    }

    /// @notice The multiproof of leaves `0 .. count - 1`.
    function multiProofOfFirst(bytes32[] memory tree, uint256 count)
        internal
        pure
        returns (IEscrow.MultiProof memory mp)
    {
        uint256[] memory indices = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            indices[i] = i;
        }
        (, mp) = multiProof(tree, indices);
    }

    function _sibling(uint256 i) private pure returns (uint256) {
        return i % 2 == 1 ? i + 1 : i - 1;
    }

    function _sortDescending(uint256[] memory a) private pure {
        for (uint256 i = 1; i < a.length; ++i) {
            uint256 x = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] < x) {
                a[j] = a[j - 1];
                --j;
            }
            a[j] = x;
        }
    }
}
