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
    SettlementLeaf,
    SignedLease,
    StandardMerkleTree,
    lease_leaf,
    lock_call,
    product_id,
    reclaim_call,
    settle_call,
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


@dataclass(frozen=True)
class Lease(SignedLease):
    """A signed lease with the shorthands the tests read."""

    @property
    def price(self) -> int:
        return self.leaf.price_per_gpu_hour

    @property
    def provider(self) -> str:
        return self.leaf.provider

    def usage(self, used: int, *, final: bool = False) -> SettlementLeaf:
        return self.leaf.usage(used, final=final)


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
        return Lease(bid, signature, leaf)

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
        args = lock_call(self.trees[batch_id], leases)
        self._at(at)
        return self.escrow.lockLeases(batch_id, *args, sender=sender or self.provider)

    def settle(
        self,
        batch_id: int,
        usage_batch_id: int,
        usages: Sequence[tuple[Lease, SettlementLeaf]],
        *,
        at: int | None = None,
        sender: Any = None,
    ) -> Any:
        args = settle_call(self.trees[batch_id], self.trees[usage_batch_id], usages)
        self._at(at)
        return self.escrow.settleLeases(batch_id, usage_batch_id, *args, sender=sender or self.provider)

    def reclaim(self, batch_id: int, leases: Sequence[Lease], *, at: int | None = None, sender: Any) -> Any:
        args = reclaim_call(self.trees[batch_id], leases)
        self._at(at)
        return self.escrow.reclaimLeases(batch_id, *args, sender=sender)

    def _at(self, timestamp: int | None) -> None:
        """Makes the next block carry `timestamp` (a reverted transaction still mines its block)."""
        if timestamp is not None:
            self.chain.pending_timestamp = timestamp


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
