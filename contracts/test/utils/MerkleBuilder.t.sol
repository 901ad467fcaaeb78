// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {MerkleBuilder} from "./MerkleBuilder.sol";
import {vm, bound} from "./Vm.sol";

/// @notice The test tree builder agrees with OpenZeppelin's verifiers, so a proof failure in an escrow test is the
/// escrow's, not the builder's.
contract MerkleBuilderTest {
    function _leaves(uint256 n, uint256 salt) private pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(salt, i))));
        }
    }

    function test_build_placesLeafIAtTheEndOfTheArray() public pure {
        bytes32[] memory leaves = _leaves(3, 1);
        bytes32[] memory tree = MerkleBuilder.build(leaves);
        vm.assertEq(tree.length, 5, "2n - 1 nodes");
        vm.assertEq(tree[4], leaves[0], "leaf 0 last");
        vm.assertEq(tree[2], leaves[2], "leaf 2");
        vm.assertEq(tree[1], MerkleBuilder.hashPair(tree[3], tree[4]), "node 1");
        vm.assertEq(tree[0], MerkleBuilder.hashPair(tree[1], tree[2]), "root");
    }

    function test_build_singleLeafIsItsOwnRoot() public pure {
        bytes32[] memory leaves = _leaves(1, 2);
        vm.assertEq(MerkleBuilder.build(leaves)[0], leaves[0], "root");
    }

    function testFuzz_proof_verifiesEveryLeaf(uint256 n, uint256 salt, uint256 pick) public pure {
        n = bound(n, 1, 40);
        bytes32[] memory leaves = _leaves(n, salt);
        bytes32[] memory tree = MerkleBuilder.build(leaves);
        uint256 i = bound(pick, 0, n - 1);
        vm.assertTrue(MerkleProof.verify(MerkleBuilder.proof(tree, i), tree[0], leaves[i]), "single proof");
    }

    function testFuzz_multiProof_verifiesAnySubsetInAscendingLeafOrder(uint256 n, uint256 salt, uint256 mask)
        public
        pure
    {
        n = bound(n, 1, 40);
        bytes32[] memory leaves = _leaves(n, salt);
        bytes32[] memory tree = MerkleBuilder.build(leaves);
        uint256 count;
        uint256[] memory picked = new uint256[](n);
        // Ask in descending order: the builder must return the leaves ascending anyway.
        for (uint256 i = n; i > 0; --i) {
            if ((mask >> (i - 1)) & 1 == 1) picked[count++] = i - 1;
        }
        if (count == 0) picked[count++] = mask % n;
        assembly ("memory-safe") {
            mstore(picked, count)
        }
        (bytes32[] memory proved, IEscrow.MultiProof memory mp) = MerkleBuilder.multiProof(tree, picked);
        for (uint256 i = 1; i < proved.length; ++i) {
            vm.assertTrue(_leafIndex(leaves, proved[i - 1]) < _leafIndex(leaves, proved[i]), "ascending leaves");
        }
        vm.assertEq(proved.length + mp.proof.length, mp.flags.length + 1, "proof shape");
        vm.assertTrue(MerkleProof.multiProofVerify(mp.proof, mp.flags, tree[0], proved), "multiproof");
    }

    function _leafIndex(bytes32[] memory leaves, bytes32 leaf) private pure returns (uint256) {
        for (uint256 i; i < leaves.length; ++i) {
            if (leaves[i] == leaf) return i;
        }
        revert("not a leaf");
    }
}
