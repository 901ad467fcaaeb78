"""Settlement leaves, the canonical settlement tree and the multiproofs the escrow takes."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import (
    FINAL_USAGE,
    LEAF_ENCODING,
    LEASE,
    USAGE,
    Bid,
    Eip712Domain,
    InvalidLeafError,
    MerkleTreeError,
    SettlementLeaf,
    StandardMerkleTree,
    digest,
    lease_leaf,
    product_id,
    settle_multiproofs,
    settlement_multiproof,
    settlement_tree,
)
from gpuspot.protocol.merkle import standard_leaf_hash, verify_multiproof

DOMAIN = Eip712Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
PROVIDERS = [Account.from_key(bytes([i]) * 32).address for i in (1, 2, 3)]
BUYER = Account.from_key(b"\x09" * 32).address


def bid(nonce: int) -> Bid:
    return Bid(
        buyer=BUYER,
        product=product_id("H100-80GB"),
        gpus=1 + nonce % 8,
        duration=600 + nonce,
        max_price_per_gpu_hour=2_000_000,
        job_spec_hash=bytes(32),
        nonce=nonce,
        expiry=2**40,
    )


def leases(batch_id: int, lease_ids: list[int]) -> list[SettlementLeaf]:
    return [
        lease_leaf(
            bid(lease_id),
            DOMAIN,
            batch_id=batch_id,
            lease_id=lease_id,
            provider=PROVIDERS[lease_id % 3],
            price_per_gpu_hour=1_500_000,
        )
        for lease_id in lease_ids
    ]


def test_lease_leaf_carries_the_bid_and_terms():
    leaf = leases(4, [11])[0]
    assert leaf.kind == LEASE and leaf.batch_id == 4 and leaf.lease_id == 11
    assert leaf.bid_digest == digest(bid(11), DOMAIN)
    assert leaf.values()[4:9] == (BUYER, PROVIDERS[2], product_id("H100-80GB"), 4, 611)
    assert leaf.hash() == standard_leaf_hash(LEAF_ENCODING, leaf.values())
    usage = leaf.usage(100)
    assert usage.kind == USAGE and usage.used_gpu_seconds == 100 and usage.batch_id == 4
    assert leaf.usage(200, final=True).kind == FINAL_USAGE
    assert usage.lease_leaf() == leaf
    assert SettlementLeaf.from_values(usage.values()) == usage


def test_leaf_validation_explains_the_problem():
    leaf = leases(1, [1])[0]
    with pytest.raises(InvalidLeafError, match="kind must be"):
        SettlementLeaf.from_values((3, *leaf.values()[1:]))
    with pytest.raises(InvalidLeafError, match="commits no usage"):
        SettlementLeaf.from_values((0, *leaf.values()[1:10], 5))
    with pytest.raises(InvalidLeafError, match="uint64"):
        leaf.usage(2**64)
    with pytest.raises(InvalidLeafError, match="11 values"):
        SettlementLeaf.from_values(leaf.values()[:3])


def test_settlement_tree_orders_leases_then_usage_by_lease_id():
    lease_leaves = leases(7, [30, 10, 20])
    usage_leaves = [leaf.usage(5) for leaf in leases(3, [9, 2])]
    tree = settlement_tree([*usage_leaves, *lease_leaves])
    assert [(v[0], v[2]) for _, v in tree.entries()] == [(0, 10), (0, 20), (0, 30), (1, 2), (1, 9)]
    same = settlement_tree(reversed([*usage_leaves, *lease_leaves]))
    assert same.root == tree.root


def test_settlement_tree_refuses_two_figures_for_one_lease():
    leaf = leases(3, [5])[0]
    with pytest.raises(InvalidLeafError, match="two usage leaves"):
        settlement_tree([leaf.usage(1), leaf.usage(2, final=True)])
    with pytest.raises(InvalidLeafError, match="at least one leaf"):
        settlement_tree([])
    assert len(settlement_tree([leaf, leaf.usage(1)])) == 2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_settle_multiproofs_share_one_lease_order(seed: int):
    rng = random.Random(seed)
    ids = rng.sample(range(1, 1000), rng.randint(1, 25))
    lease_leaves = leases(5, ids)
    lease_tree = settlement_tree(lease_leaves + [leaf.usage(3) for leaf in leases(2, [1001, 1002])])
    usage_leaves = [leaf.usage(rng.randrange(100), final=rng.random() < 0.5) for leaf in lease_leaves]
    other_usage = [leaf.usage(1) for leaf in leases(4, [2000, 2001])]
    usage_tree = settlement_tree(usage_leaves + other_usage + leases(6, [3000]))
    chosen = rng.sample(usage_leaves, rng.randint(1, len(usage_leaves)))

    lease_proof, usage_proof = settle_multiproofs(lease_tree, usage_tree, chosen)

    order = [leaf.lease_id for leaf in usage_proof.leaves]
    assert order == sorted(leaf.lease_id for leaf in chosen)
    assert [leaf.lease_id for leaf in lease_proof.leaves] == order
    for tree, proof in ((lease_tree, lease_proof), (usage_tree, usage_proof)):
        values = [leaf.values() for leaf in proof.leaves]
        assert verify_multiproof(
            tree.root, LEAF_ENCODING, type(proof)(values, proof.proof, proof.proof_flags)
        )


def test_settlement_multiproof_rejects_a_leaf_not_in_the_tree():
    tree = settlement_tree(leases(1, [1, 2]))
    with pytest.raises(MerkleTreeError, match="not in the tree"):
        settlement_multiproof(tree, leases(1, [3]))
    with pytest.raises(InvalidLeafError, match="takes usage leaves"):
        settle_multiproofs(tree, tree, leases(1, [1]))


def test_settlement_tree_is_a_plain_standard_tree_with_unsorted_leaves():
    lease_leaves = leases(9, [3, 1, 2])
    tree = settlement_tree(lease_leaves)
    by_id = sorted(lease_leaves, key=lambda leaf: leaf.lease_id)
    reference = StandardMerkleTree.of([leaf.values() for leaf in by_id], LEAF_ENCODING, sort_leaves=False)
    assert tree.root == reference.root
    assert StandardMerkleTree.load(tree.dump()).root == tree.root
