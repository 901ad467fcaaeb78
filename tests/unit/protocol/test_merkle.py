"""The StandardMerkleTree port: properties, and answers identical to the real @openzeppelin/merkle-tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import LEAF_ENCODING, MerkleTreeError, MultiProof, StandardMerkleTree
from gpuspot.protocol.merkle import _to_json_value as json_value
from gpuspot.protocol.merkle import (
    get_multiproof,
    make_merkle_tree,
    node_hash,
    process_multiproof,
    standard_leaf_hash,
    verify_multiproof,
    verify_proof,
)

ROOT = Path(__file__).parents[3]
NODE_MODULES = ROOT / "contracts" / "node_modules"
OZ_SCRIPT = ROOT / "tests" / "support" / "oz_merkle.js"
ENCODING = ["address", "uint256"]


def address(i: int) -> str:
    return "0x" + i.to_bytes(20, "big").hex()


values_lists = st.lists(
    st.tuples(st.integers(0, 2**160 - 1).map(address), st.integers(0, 2**256 - 1)),
    min_size=1,
    max_size=40,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(values=values_lists, sort_leaves=st.booleans())
def test_every_proof_verifies_and_a_tampered_leaf_fails(values: list[tuple[str, int]], sort_leaves: bool):
    tree = StandardMerkleTree.of(values, ENCODING, sort_leaves=sort_leaves)
    for i, value in enumerate(values):
        proof = tree.get_proof(i)
        assert tree.get_proof(value) == proof
        assert tree.verify(i, proof) and tree.verify(value, proof)
        assert verify_proof(tree.root, ENCODING, value, proof)
        tampered = (value[0], (value[1] + 1) % 2**256)
        if tampered not in values:
            assert not verify_proof(tree.root, ENCODING, tampered, proof)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), sort_leaves=st.booleans())
def test_random_multiproofs_verify_and_a_tampered_leaf_fails(data: st.DataObject, sort_leaves: bool):
    values = data.draw(values_lists)
    tree = StandardMerkleTree.of(values, ENCODING, sort_leaves=sort_leaves)
    indices = data.draw(st.lists(st.integers(0, len(values) - 1), unique=True))
    multiproof = tree.get_multiproof(indices)
    assert sorted(map(tuple, multiproof.leaves)) == sorted(tuple(values[i]) for i in indices)
    assert tree.verify_multiproof(multiproof)
    assert verify_multiproof(tree.root, ENCODING, multiproof)
    if multiproof.leaves:
        first = multiproof.leaves[0]
        tampered = [(first[0], (first[1] + 1) % 2**256), *multiproof.leaves[1:]]
        assert not verify_multiproof(
            tree.root, ENCODING, MultiProof(tampered, multiproof.proof, multiproof.proof_flags)
        )


@settings(max_examples=30, deadline=None)
@given(values=values_lists)
def test_unsorted_multiproof_leaves_come_in_ascending_input_order(values: list[tuple[str, int]]):
    tree = StandardMerkleTree.of(values, ENCODING, sort_leaves=False)
    indices = list(range(len(values)))[::-1]
    assert [tuple(v) for v in tree.get_multiproof(indices).leaves] == [tuple(v) for v in values]


@settings(max_examples=30, deadline=None)
@given(values=values_lists, sort_leaves=st.booleans())
def test_dump_and_load_round_trip(values: list[tuple[str, int]], sort_leaves: bool):
    tree = StandardMerkleTree.of(values, ENCODING, sort_leaves=sort_leaves)
    dumped = json.loads(json.dumps(tree.dump()))
    loaded = StandardMerkleTree.load(dumped)
    assert loaded.root == tree.root and loaded.tree == tree.tree
    assert [loaded.at(i) for i in range(len(loaded))] == [tuple(v) for v in values]


def test_tree_layout_puts_leaf_i_at_the_end_of_the_array():
    leaves = [bytes([i]) * 32 for i in range(5)]
    tree = make_merkle_tree(leaves)
    assert len(tree) == 9
    assert [tree[len(tree) - 1 - i] for i in range(5)] == leaves
    assert tree[0] == node_hash(tree[1], tree[2])
    assert node_hash(leaves[0], leaves[1]) == node_hash(leaves[1], leaves[0])


def test_load_refuses_a_corrupt_dump():
    tree = StandardMerkleTree.of([(address(1), 1), (address(2), 2)], ENCODING)
    dumped = tree.dump()
    with pytest.raises(MerkleTreeError, match="format"):
        StandardMerkleTree.load({**dumped, "format": "simple-v1"})
    bad_value = json.loads(json.dumps(dumped))
    bad_value["values"][0]["value"][1] = "3"
    with pytest.raises(MerkleTreeError, match="does not contain value 0"):
        StandardMerkleTree.load(bad_value)
    bad_node = json.loads(json.dumps(dumped))
    bad_node["tree"][0] = "0x" + "00" * 32
    with pytest.raises(MerkleTreeError, match="invalid"):
        StandardMerkleTree.load(bad_node)


def test_errors_say_what_went_wrong():
    tree = StandardMerkleTree.of([(address(1), 1), (address(2), 2)], ENCODING)
    with pytest.raises(MerkleTreeError, match="at least one leaf"):
        StandardMerkleTree.of([], ENCODING)
    with pytest.raises(MerkleTreeError, match="out of bounds"):
        tree.get_proof(2)
    with pytest.raises(MerkleTreeError, match="not in the tree"):
        tree.get_proof((address(3), 3))
    with pytest.raises(MerkleTreeError, match="duplicated"):
        tree.get_multiproof([0, 0])
    with pytest.raises(MerkleTreeError, match="does not fit"):
        StandardMerkleTree.of([(address(1), -1)], ENCODING)
    with pytest.raises(MerkleTreeError, match="not compatible"):
        process_multiproof(MultiProof([tree.tree[1], tree.tree[2]], [], []))


def test_empty_multiproof_proves_the_root_itself():
    tree = StandardMerkleTree.of([(address(1), 1), (address(2), 2)], ENCODING)
    multiproof = get_multiproof(tree.tree, [])
    assert multiproof.proof == [tree.root] and multiproof.proof_flags == []
    assert process_multiproof(multiproof) == tree.root


def test_ten_thousand_leaf_settlement_tree_is_fast():
    import time

    values = [
        (1, 5, i, i.to_bytes(32, "big"), address(i + 1), address(7), b"\x11" * 32, 8, 3600, 2_500_000, i)
        for i in range(10_000)
    ]
    started = time.perf_counter()
    tree = StandardMerkleTree.of(values, LEAF_ENCODING, sort_leaves=False)
    multiproof = tree.get_multiproof(list(range(0, 10_000, 7)))
    elapsed = time.perf_counter() - started
    assert tree.verify_multiproof(multiproof)
    assert elapsed < 5, f"10k-leaf tree and a 1.4k-leaf multiproof took {elapsed:.2f}s"


# --- cross-check against the real JS library ---------------------------------------------------------


def run_openzeppelin(request: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@openzeppelin" / "merkle-tree").is_dir():
        pytest.skip(
            "node or contracts/node_modules/@openzeppelin/merkle-tree missing: run ./scripts/bootstrap"
        )
    result = subprocess.run(
        [node, str(OZ_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        timeout=60,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def hexes(nodes: list[bytes]) -> list[str]:
    return ["0x" + n.hex() for n in nodes]


def settlement_values(count: int, seed: int) -> list[tuple[Any, ...]]:
    import random

    rng = random.Random(seed)
    return [
        (
            rng.choice([0, 1, 2]),
            rng.randrange(2**64),
            rng.randrange(2**64),
            rng.randbytes(32),
            address(rng.randrange(1, 2**160)),
            address(rng.randrange(1, 2**160)),
            rng.randbytes(32),
            rng.randrange(2**16),
            rng.randrange(2**32),
            rng.randrange(2**128),
            rng.randrange(2**64),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("sort_leaves", [True, False])
@pytest.mark.parametrize(("count", "seed"), [(1, 1), (2, 2), (7, 3), (33, 4)])
def test_matches_openzeppelin_merkle_tree(count: int, seed: int, sort_leaves: bool):
    import random

    values = settlement_values(count, seed)
    rng = random.Random(seed)
    subsets = [[], list(range(count)), [count - 1]] + [
        rng.sample(range(count), rng.randint(1, count)) for _ in range(6)
    ]
    tree = StandardMerkleTree.of(values, LEAF_ENCODING, sort_leaves=sort_leaves)
    dumped = tree.dump()
    js = run_openzeppelin(
        {
            "encoding": LEAF_ENCODING,
            "values": [entry["value"] for entry in dumped["values"]],
            "sortLeaves": sort_leaves,
            "proofs": list(range(count)),
            "multiproofs": subsets,
        }
    )
    assert js["root"] == "0x" + tree.root.hex()
    assert js["dump"] == dumped
    assert js["leafHashes"] == ["0x" + standard_leaf_hash(LEAF_ENCODING, v).hex() for v in values]
    assert js["proofs"] == [hexes(tree.get_proof(i)) for i in range(count)]
    for indices, expected in zip(subsets, js["multiproofs"], strict=True):
        ours = tree.get_multiproof(indices)
        assert expected["proof"] == hexes(ours.proof)
        assert expected["proofFlags"] == ours.proof_flags
        assert expected["leaves"] == [json_value(list(v)) for v in ours.leaves]
    assert StandardMerkleTree.load(js["dump"]).root == tree.root


def test_matches_openzeppelin_for_dynamic_and_signed_types():
    encoding = ["string", "bool", "int256", "bytes", "bytes4"]
    values = [
        ("gpu", True, -5, b"\x01\x02\x03", b"\xde\xad\xbe\xef"),
        ("", False, 2**255 - 1, b"", b"\x00\x00\x00\x01"),
        ("H100-80GB", True, -(2**255), b"\xff" * 70, b"\x12\x34\x56\x78"),
    ]
    tree = StandardMerkleTree.of(values, encoding)
    js = run_openzeppelin(
        {
            "encoding": encoding,
            "values": [json_value(list(v)) for v in values],
            "sortLeaves": True,
            "multiproofs": [[0, 2]],
        }
    )
    assert js["root"] == "0x" + tree.root.hex()
    assert js["dump"] == tree.dump()
    assert js["multiproofs"][0]["proof"] == hexes(tree.get_multiproof([0, 2]).proof)
