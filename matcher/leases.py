"""From a batch's orders to its settlement leaves: the steps the service runs and `verify-batch` re-runs.

One copy, so the verifier recomputes exactly what the service computed. Where the book entries come from
differs on purpose (the service reads its stored orders, the verifier re-derives them from the signed
ones), so each builds its entries and hands them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gpuspot.protocol import Bid, Eip712Domain, SettlementLeaf, keccak256, lease_leaf
from matcher.clearing import BookAsk, BookBid, ProductBook
from matcher.store import NewLease

__all__ = ["considered_orders_hash", "lease_leaves", "product_books"]


def considered_orders_hash(order_hashes: Iterable[bytes]) -> bytes:
    """keccak256 of the considered orders' hashes (32 bytes each) in ascending order: the identity of a
    batch's order set, which the batch publishes and the verifier recomputes."""
    return keccak256(b"".join(sorted(bytes(h) for h in order_hashes)))


def product_books(entries: Iterable[tuple[bytes, BookBid | BookAsk]]) -> dict[bytes, ProductBook]:
    """`(product, entry)` pairs grouped into one book per product, bids and asks in the order given."""
    bids: dict[bytes, list[BookBid]] = {}
    asks: dict[bytes, list[BookAsk]] = {}
    for product, entry in entries:
        if isinstance(entry, BookBid):
            bids.setdefault(product, []).append(entry)
        else:
            asks.setdefault(product, []).append(entry)
    return {p: ProductBook(tuple(bids.get(p, ())), tuple(asks.get(p, ()))) for p in set(bids) | set(asks)}


def lease_leaves(
    leases: Sequence[NewLease], bids: Mapping[bytes, Bid], domain: Eip712Domain, batch_id: int
) -> list[SettlementLeaf]:
    """The lease leaf (kind 0) of each lease of batch `batch_id`; `bids` maps each lease's bid hash to the
    bid as signed."""
    return [
        lease_leaf(
            bids[bytes(lease.match.bid_hash)],
            domain,
            batch_id=batch_id,
            lease_id=lease.lease_id,
            provider=lease.match.provider,
            price_per_gpu_hour=lease.match.price_per_gpu_hour,
        )
        for lease in leases
    ]
