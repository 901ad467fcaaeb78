"""Drives the escrow the way the matcher and a provider do, with gpuspot.protocol: signs bids (real EIP-712
signatures), commits leases in settlement trees, posts roots and builds the multiproofs the escrow takes.
Also `reverts_with`, a strict custom-error assertion. Shared by the integration tests and their conftest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ape

from gpuspot.protocol import (
    Bid,
    Eip712Domain,
    MultiProof,
    SettlementLeaf,
    StandardMerkleTree,
    lease_leaf,
    product_id,
    settle_multiproofs,
    settlement_multiproof,
    settlement_tree,
    sign,
)

MIN_STAKE = 10_000_000  # 10 tUSD
EXIT_DELAY = 7 * 86_400
WITHDRAWAL_NOTICE = 3_600
LOCK_WINDOW = 600
SETTLE_WINDOW = 1_800
DEPOSIT = 1_000_000_000  # 1,000 tUSD
H100 = product_id("H100-80GB")


@dataclass
class Lease:
    """A lease as the matcher commits it: the signed bid plus its terms, and its lease leaf."""

    bid: Bid
    signature: tuple[bytes, bytes]
    lease_id: int
    provider: str
    price: int
    leaf: SettlementLeaf

    def abi(self) -> tuple[Any, ...]:
        """The `IEscrow.SignedLease` tuple."""
        r, vs = self.signature
        return (self.bid.abi_values(), r, vs, self.lease_id, self.provider, self.price)

    def usage(self, used: int, *, final: bool = False) -> SettlementLeaf:
        return self.leaf.usage(used, final=final)


def proof_abi(proof: MultiProof) -> tuple[list[bytes], list[bool]]:
    """The `IEscrow.MultiProof` tuple."""
    return (proof.proof, proof.proof_flags)


@dataclass
class Market:
    """Drives the escrow like the matcher and a provider would: signs bids, posts roots, builds proofs."""

    escrow: Any
    chain: Any
    operator: Any
    provider: Any
    domain: Eip712Domain
    trees: dict[int, StandardMerkleTree] = field(default_factory=dict)
    next_nonce: dict[str, int] = field(default_factory=dict)

    def bid(self, buyer: Any, **overrides: Any) -> Bid:
        nonce = self.next_nonce.get(buyer.address, 1)
        self.next_nonce[buyer.address] = nonce + 1
        fields: dict[str, Any] = {
            "buyer": buyer.address,
            "product": H100,
            "gpus": 2,
            "duration": 3_600,
            "max_price_per_gpu_hour": 3_000_000,
            "job_spec_hash": b"\x42" * 32,
            "nonce": nonce,
            "expiry": self.chain.pending_timestamp + 86_400,
        }
        fields.update(overrides)
        return Bid(**fields)

    def lease(
        self,
        bid: Bid,
        signer: Any,
        *,
        batch_id: int,
        lease_id: int,
        price: int = 2_500_001,
        provider: str | None = None,
        domain: Eip712Domain | None = None,
    ) -> Lease:
        signature = sign(bid, signer.private_key, domain or self.domain).compact()
        provider_address = provider or self.provider.address
        leaf = lease_leaf(
            bid,
            self.domain,
            batch_id=batch_id,
            lease_id=lease_id,
            provider=provider_address,
            price_per_gpu_hour=price,
        )
        return Lease(bid, signature, lease_id, provider_address, price, leaf)

    def post(self, batch_id: int, leaves: Sequence[SettlementLeaf], *, at: int | None = None) -> int:
        """Posts the settlement tree of `leaves` as batch `batch_id`; returns its on-chain post time."""
        tree = settlement_tree(leaves)
        self.trees[batch_id] = tree
        if at is not None:
            self.chain.pending_timestamp = at
        self.escrow.postRoot(batch_id, tree.root, sender=self.operator)
        posted_at = int(self.escrow.batchRoot(batch_id).postedAt)
        if at is not None:
            assert posted_at == at
        return posted_at

    def lock(
        self, batch_id: int, leases: Sequence[Lease], *, at: int | None = None, sender: Any = None
    ) -> Any:
        proof = settlement_multiproof(self.trees[batch_id], [lease.leaf for lease in leases])
        ordered = self._in_proof_order(leases, proof)
        if at is not None:
            self.chain.pending_timestamp = at
        return self.escrow.lockLeases(
            batch_id, [lease.abi() for lease in ordered], proof_abi(proof), sender=sender or self.provider
        )

    def settle(
        self,
        batch_id: int,
        usage_batch_id: int,
        usages: Sequence[tuple[Lease, SettlementLeaf]],
        *,
        at: int | None = None,
        sender: Any = None,
    ) -> Any:
        lease_proof, usage_proof = settle_multiproofs(
            self.trees[batch_id], self.trees[usage_batch_id], [usage for _, usage in usages]
        )
        by_id = {lease.lease_id: lease for lease, _ in usages}
        ordered = [by_id[leaf.lease_id] for leaf in usage_proof.leaves]
        if at is not None:
            self.chain.pending_timestamp = at
        return self.escrow.settleLeases(
            batch_id,
            usage_batch_id,
            [lease.abi() for lease in ordered],
            [(leaf.used_gpu_seconds, leaf.kind == 2) for leaf in usage_proof.leaves],
            proof_abi(lease_proof),
            proof_abi(usage_proof),
            sender=sender or self.provider,
        )

    def reclaim(self, batch_id: int, leases: Sequence[Lease], *, at: int | None = None, sender: Any) -> Any:
        proof = settlement_multiproof(self.trees[batch_id], [lease.leaf for lease in leases])
        ordered = self._in_proof_order(leases, proof)
        if at is not None:
            self.chain.pending_timestamp = at
        return self.escrow.reclaimLeases(
            batch_id, [lease.abi() for lease in ordered], proof_abi(proof), sender=sender
        )

    @staticmethod
    def _in_proof_order(leases: Sequence[Lease], proof: MultiProof) -> list[Lease]:
        by_id = {lease.lease_id: lease for lease in leases}
        return [by_id[leaf.lease_id] for leaf in proof.leaves]


@contextmanager
def reverts_with(error: Any, **inputs: Any) -> Iterator[None]:
    """Asserts the block reverts with the custom error `error` (e.g. `escrow.BidExpired`) and, when given,
    exactly these error arguments.

    Stricter than `ape.reverts(error, **inputs)` alone: in ape 0.8 that passes a revert that decodes to no
    custom error at all, and silently skips expected inputs whose names the error does not have.
    """
    with ape.reverts(error) as info:
        yield
    raised = info.value
    assert isinstance(raised, error), f"expected {error.__name__}, got {type(raised).__name__}: {raised}"
    for name, expected in inputs.items():
        assert name in raised.inputs, f"{error.__name__} has no argument {name!r}: {raised.inputs}"
        actual = raised.inputs[name]
        assert actual == expected, f"{error.__name__}.{name}: expected {expected!r}, got {actual!r}"
