"""Signed orders, chain events and cleared batches for the store's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account import Account

from gpuspot.protocol import Ask, Bid, Eip712Domain, keccak256, product_id, sign
from gpuspot.protocol.leaves import LeafKind, SettlementLeaf, settlement_tree
from gpuspot.protocol.orders import digest
from matcher.chain.events import ChainEvent
from matcher.clearing import BookAsk, BookBid, ProductBook, clear_batch
from matcher.clearing.book import HostId, OrderHash, PricePerGpuHour, Seconds
from matcher.intake import AcceptedOrder, OrderKind
from matcher.store import NewBatch, NewLease, Store, assign_lease_ids

CHAIN_ID = 31337
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW)
NOW = 1_800_000_000
H100 = product_id("H100-80GB")
A100 = product_id("A100-80GB")
PRICE = 2_500_000


def key(label: str) -> bytes:
    return keccak256(b"gpuspot store test key " + label.encode())


def address(label: str) -> str:
    return str(Account.from_key(key(label)).address)


BUYER = address("buyer")
BUYER2 = address("buyer-2")
PROVIDER = address("provider")


def bid(label: str = "buyer", **changes: Any) -> Bid:
    fields: dict[str, Any] = {
        "buyer": address(label),
        "product": H100,
        "gpus": 2,
        "duration": 3600,
        "max_price_per_gpu_hour": PRICE,
        "job_spec_hash": keccak256(b"job"),
        "nonce": 1,
        "expiry": NOW + 600,
    }
    return Bid(**{**fields, **changes})


def ask(label: str = "provider", **changes: Any) -> Ask:
    fields: dict[str, Any] = {
        "provider": address(label),
        "product": H100,
        "host_id": keccak256(b"host-1"),
        "gpus": 8,
        "max_duration": 8 * 3600,
        "min_price_per_gpu_hour": 2_000_000,
        "nonce": 1,
        "expiry": NOW + 600,
    }
    return Ask(**{**fields, **changes})


def accepted(order: Bid | Ask, label: str | None = None) -> AcceptedOrder:
    """What intake would accept for `order`, signed by `label` (default: the label of the test key whose
    address is the order's account)."""
    signer = order.buyer if isinstance(order, Bid) else order.provider
    if label is None:
        label = next(
            name for name in ("buyer", "buyer-2", "provider", "provider-2") if address(name) == signer
        )
    is_bid = isinstance(order, Bid)
    return AcceptedOrder(
        kind=OrderKind.BID if is_bid else OrderKind.ASK,
        order=order,
        order_hash=OrderHash(digest(order, DOMAIN)),
        signer=signer,
        signature=sign(order, key(label), DOMAIN),
        max_cost=order.reservation if isinstance(order, Bid) else None,
        already_open=False,
    )


def position(block: int, index: int = 0) -> dict[str, Any]:
    """The position fields of a chain event in `block`."""
    return {
        "block_number": block,
        "block_hash": keccak256(b"block %d" % block),
        "tx_hash": keccak256(b"tx %d %d" % (block, index)),
        "log_index": index,
    }


def books(store: Store) -> dict[bytes, ProductBook]:
    """The open orders of the store as clearing books."""
    bids: dict[bytes, list[BookBid]] = {}
    asks: dict[bytes, list[BookAsk]] = {}
    for record in store.open_orders():
        if record.kind == "bid":
            bids.setdefault(record.product, []).append(
                BookBid(
                    record.order_hash,
                    record.signer,
                    record.gpus,
                    Seconds(record.duration),
                    PricePerGpuHour(record.price),
                )
            )
        else:
            assert record.host_id is not None
            asks.setdefault(record.product, []).append(
                BookAsk(
                    record.order_hash,
                    record.signer,
                    HostId(record.host_id),
                    record.gpus,
                    Seconds(record.duration),
                    PricePerGpuHour(record.price),
                )
            )
    products = set(bids) | set(asks)
    return {p: ProductBook(tuple(bids.get(p, ())), tuple(asks.get(p, ()))) for p in products}


def lease_leaves(batch_id: int, leases: Sequence[NewLease]) -> list[SettlementLeaf]:
    return [
        SettlementLeaf(
            LeafKind.LEASE,
            batch_id,
            lease.lease_id,
            bytes(lease.match.bid_hash),
            lease.match.buyer,
            lease.match.provider,
            lease.product,
            lease.match.gpus,
            lease.match.duration,
            lease.match.price_per_gpu_hour,
            0,
        )
        for lease in leases
    ]


def cleared_batch(store: Store, at: int = NOW, usage: Sequence[SettlementLeaf] = ()) -> NewBatch:
    """The next batch of the store's open orders, cleared under `uniform`, with its lease leaves (and the
    given usage leaves) and root: what the service would record."""
    batch_id = store.next_batch_id()
    clearing = clear_batch(books(store), keccak256(b"seed %d" % batch_id), "uniform")
    leases = assign_lease_ids(clearing, store.next_lease_id())
    leaves = lease_leaves(batch_id, leases) + list(usage)
    root = settlement_tree(leaves).root if leaves else None
    return NewBatch(batch_id, "test-1", clearing, leases, leaves, root, at)


def event(cls: type[ChainEvent], block: int, index: int = 0, **args: Any) -> ChainEvent:
    return cls(**position(block, index), **args)
