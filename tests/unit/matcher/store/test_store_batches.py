"""Batches: recorded completely or not at all, the root-posting state machine and its constraints, leases,
leaves, explanations and pagination."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from store_market import BUYER, BUYER2, NOW, PRICE, PROVIDER, accepted, ask, bid, cleared_batch, event

from gpuspot.protocol import keccak256
from gpuspot.protocol.leaves import settlement_tree
from matcher.chain import ChainCursor, LeaseLocked, PostedRoot, SignedRootTx
from matcher.clearing import Reason
from matcher.store import (
    BatchAlreadyRecordedError,
    BatchStatus,
    InvalidBatchError,
    LeaseNotFoundError,
    NewBatch,
    OrderStatus,
    RootPostConflictError,
    RootTxConflictError,
    Store,
)
from matcher.store.schema import root_txs

OPERATOR = PROVIDER


def fill_book(store: Store) -> dict[str, bytes]:
    """One 8-GPU ask; two bids that fit it, one priced out, one too big for any host."""
    orders = {
        "ask": accepted(ask(min_price_per_gpu_hour=2_000_000)),
        "fits": accepted(bid(nonce=1, gpus=2)),
        "fits2": accepted(bid("buyer-2", nonce=1, gpus=4, max_price_per_gpu_hour=PRICE + 1)),
        "cheap": accepted(bid(nonce=2, gpus=1, max_price_per_gpu_hour=1_000_000)),
        "huge": accepted(bid(nonce=3, gpus=16)),
    }
    for order in orders.values():
        store.add_order(order, NOW)
    return {name: bytes(order.order_hash) for name, order in orders.items()}


def signed_tx(batch_id: int, root: bytes, nonce: int = 0, salt: bytes = b"") -> SignedRootTx:
    raw = b"raw tx %d %d " % (batch_id, nonce) + root + salt
    return SignedRootTx(batch_id, root, OPERATOR, nonce, keccak256(raw), raw)


def posted(batch_id: int, root: bytes, tx_hash: bytes) -> PostedRoot:
    return PostedRoot(batch_id, root, tx_hash, block_number=42, gas_used=51_000, posted_at=NOW + 30)


def test_record_batch_stores_leases_leaves_explanations_and_statuses(store: Store) -> None:
    hashes = fill_book(store)
    batch = cleared_batch(store)
    assert len(batch.leases) == 2 and batch.root is not None
    record = store.record_batch(batch)

    assert record.batch_id == 1 and record.status is BatchStatus.AWAITING_TX
    assert record.root == batch.root and record.commitment == batch.clearing.commitment
    assert record.seed == batch.clearing.batch_seed and record.rule == "uniform"
    assert record.lease_count == 2 and record.leaf_count == 2
    assert record.totals["leases"] == 2
    assert store.get_batch(1) == record
    assert store.next_batch_id() == 2 and store.next_lease_id() == 3

    for name in ("ask", "fits", "fits2"):
        order = store.get_order(hashes[name])
        assert order is not None and order.status is OrderStatus.MATCHED
        assert store.order_history(hashes[name])[-1].batch_id == 1
        assert store.explanation(hashes[name]) is None
    cheap = store.explanation(hashes["cheap"])
    assert cheap is not None and cheap.reason is Reason.BELOW_CLEARING_PRICE and cheap.batch_id == 1
    assert cheap.gap is not None and cheap.gap > 0 and "below the clearing price" in cheap.text()
    huge = store.explanation(hashes["huge"])
    assert huge is not None and huge.reason is Reason.NO_HOST_FITS
    assert {r.order_hash for r in store.open_orders()} == {hashes["cheap"], hashes["huge"]}
    assert store.reserved_for(BUYER) == sum(r.max_cost or 0 for r in store.open_orders() if r.signer == BUYER)

    leaves = store.batch_leaves(1).items
    assert [leaf.leaf for leaf in leaves] == sorted(batch.leaves, key=lambda leaf: leaf.lease_id)
    tree = settlement_tree(batch.leaves)
    assert [leaf.leaf_hash for leaf in leaves] == [leaf.hash() for leaf in batch.leaves]
    assert tree.root == record.root

    lease = store.get_lease(1)
    assert lease.batch_id == 1 and lease.status == "committed" and not lease.chain.locked
    assert {lease.bid_hash, store.get_lease(2).bid_hash} == {hashes["fits"], hashes["fits2"]}
    assert [item.lease_id for item in store.leases_of(PROVIDER).items] == [2, 1]
    assert len(store.leases_of(BUYER).items) == 1 and len(store.leases_of(BUYER2).items) == 1
    with pytest.raises(LeaseNotFoundError):
        store.get_lease(3)


def test_a_batch_that_fails_midway_leaves_nothing(store: Store) -> None:
    hashes = fill_book(store)
    batch = cleared_batch(store)
    # the order is cancelled between clearing and recording: the last step of record_batch refuses it
    store.cancel_order(hashes["fits2"], NOW + 1, "user")
    with pytest.raises(InvalidBatchError, match="no longer open"):
        store.record_batch(batch)
    assert store.get_batch(1) is None and store.list_batches().items == []
    assert store.next_batch_id() == 1 and store.next_lease_id() == 1
    assert store.explanation(hashes["cheap"]) is None
    assert store.get_order(hashes["fits"]).status is OrderStatus.OPEN  # type: ignore[union-attr]
    assert len(store.order_history(hashes["fits"])) == 1
    # a clean clearing of what is open now records fine
    assert store.record_batch(cleared_batch(store)).batch_id == 1


def test_a_leaf_that_does_not_match_its_lease_is_refused_whole(store: Store) -> None:
    fill_book(store)
    batch = cleared_batch(store)
    tampered = [replace(batch.leaves[0], price_per_gpu_hour=PRICE * 10), *batch.leaves[1:]]
    with pytest.raises(InvalidBatchError, match="does not match lease"):
        store.record_batch(replace(batch, leaves=tampered, root=settlement_tree(tampered).root))
    assert store.get_batch(1) is None and len(store.open_orders()) == 5


def test_batch_ids_strictly_increase(store: Store) -> None:
    fill_book(store)
    batch = cleared_batch(store)
    store.record_batch(batch)
    with pytest.raises(BatchAlreadyRecordedError, match="next_batch_id"):
        store.record_batch(batch)
    later = replace(cleared_batch(store), batch_id=5)
    store.record_batch(later)
    with pytest.raises(BatchAlreadyRecordedError):
        store.record_batch(replace(cleared_batch(store), batch_id=3))
    assert [b.batch_id for b in store.list_batches().items] == [5, 1]


def test_lease_ids_never_go_back(store: Store) -> None:
    fill_book(store)
    store.record_batch(cleared_batch(store))
    store.add_order(accepted(ask(nonce=9)), NOW)
    store.add_order(accepted(bid(nonce=9)), NOW)
    batch = cleared_batch(store)
    assert [lease.lease_id for lease in batch.leases] == [3]
    reused = NewBatch(
        batch.batch_id, batch.code_version, batch.clearing,
        [replace(lease, lease_id=1) for lease in batch.leases], [], None, NOW,
    )  # fmt: skip
    with pytest.raises(InvalidBatchError, match="lease ids only grow"):
        store.record_batch(reused)


def test_an_empty_batch_has_no_root_to_post(store: Store) -> None:
    store.add_order(accepted(bid(nonce=1)), NOW)
    batch = cleared_batch(store)
    assert batch.leaves == [] and batch.root is None
    record = store.record_batch(batch)
    assert record.status is BatchStatus.EMPTY
    assert store.batches_awaiting_root() == []
    with pytest.raises(RootTxConflictError, match="nothing to post"):
        store.record_root_tx(1, signed_tx(1, b"\x01" * 32), NOW)
    explanation = store.explanation(store.open_orders()[0].order_hash)
    assert explanation is not None and explanation.reason is Reason.NO_COUNTERPARTY


def test_root_tx_state_machine(open_store: Callable[[], Store]) -> None:
    store = open_store()
    fill_book(store)
    batch = cleared_batch(store)
    store.record_batch(batch)
    root = batch.root
    assert root is not None
    [pending] = store.batches_awaiting_root()
    assert (pending.batch_id, pending.root, pending.tx) == (1, root, None)

    tx = signed_tx(1, root)
    with pytest.raises(RootTxConflictError, match="prepare the transaction from the stored batch"):
        store.record_root_tx(1, signed_tx(1, b"\x09" * 32), NOW)
    assert store.record_root_tx(1, tx, NOW) is True
    assert store.record_root_tx(1, tx, NOW + 1) is False  # the same bytes again: idempotent
    with pytest.raises(RootTxConflictError, match="resume it"):
        store.record_root_tx(1, signed_tx(1, root, nonce=1), NOW)
    assert store.get_batch(1).status is BatchStatus.TX_STORED  # type: ignore[union-attr]

    store.close()  # restart: the stored transaction is what gets resumed
    store = open_store()
    [pending] = store.batches_awaiting_root()
    assert pending.tx == tx

    replacement = signed_tx(1, root, nonce=1)
    with pytest.raises(RootTxConflictError):
        store.record_root_tx(1, replacement, NOW, replaces=b"\x00" * 32)
    assert store.record_root_tx(1, replacement, NOW + 2, replaces=tx.tx_hash) is True
    assert store.batches_awaiting_root()[0].tx == replacement

    with pytest.raises(RootPostConflictError, match="not batch 1's root"):
        store.mark_root_posted(1, posted(1, b"\x09" * 32, replacement.tx_hash))
    post = posted(1, root, replacement.tx_hash)
    assert store.mark_root_posted(1, post) is True
    assert store.mark_root_posted(1, post) is False
    with pytest.raises(RootPostConflictError, match="a root is posted once"):
        store.mark_root_posted(1, replace(post, tx_hash=tx.tx_hash))
    with pytest.raises(RootTxConflictError, match="already posted"):
        store.record_root_tx(1, signed_tx(1, root, nonce=2), NOW, replaces=replacement.tx_hash)
    assert store.batches_awaiting_root() == []
    record = store.get_batch(1)
    assert record is not None and record.status is BatchStatus.POSTED
    assert (record.posted_tx_hash, record.posted_block, record.posted_at) == (post.tx_hash, 42, NOW + 30)
    assert store.get_lease(1).status == "posted"


def test_the_database_refuses_a_second_or_foreign_root_tx(store: Store) -> None:
    fill_book(store)
    batch = cleared_batch(store)
    store.record_batch(batch)
    assert batch.root is not None
    store.record_root_tx(1, signed_tx(1, batch.root), NOW)
    row = {"batch_id": 1, "root": batch.root, "sender": OPERATOR, "nonce": 5, "tx_hash": b"\x05" * 32,
           "raw": b"x", "stored_at": NOW}  # fmt: skip
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(root_txs), row)  # a second tx record for batch 1
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(root_txs), row | {"batch_id": 2})  # no such batch
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(root_txs.delete())
        connection.execute(insert(root_txs), row | {"root": b"\x07" * 32})  # not the batch's root


def test_usage_leaves_commit_earlier_leases(store: Store) -> None:
    fill_book(store)
    first = cleared_batch(store)
    store.record_batch(first)
    lease_leaf = next(leaf for leaf in first.leaves if leaf.lease_id == 1)
    usage = lease_leaf.usage(600, final=True)
    second = cleared_batch(store, NOW + 60, usage=[usage])
    assert second.leases == ()
    store.record_batch(second)
    [stored] = store.batch_leaves(2).items
    assert stored.leaf == usage and stored.leaf_index == 0
    wrong = replace(usage, provider=BUYER)
    with pytest.raises(InvalidBatchError, match="does not match lease"):
        store.record_batch(cleared_batch(store, NOW + 120, usage=[wrong]))


def test_lease_status_follows_the_chain(store: Store) -> None:
    fill_book(store)
    store.record_batch(cleared_batch(store))
    lease = store.get_lease(1)
    locked = event(
        LeaseLocked, 50, 0, lease_id=1, buyer=lease.buyer, provider=lease.provider, batch_id=1, nonce=1,
        bid_digest=bytes(lease.bid_hash), reserved=123,
    )  # fmt: skip
    store.apply_chain([locked], ChainCursor(51))
    assert store.get_lease(1).status == "locked"
    store.rewind_chain(50)
    assert store.get_lease(1).status == "committed"


def test_listings_page_through_everything(store: Store) -> None:
    for n in range(1, 8):
        store.add_order(accepted(bid(nonce=n, gpus=1)), NOW)
    store.add_order(accepted(ask(gpus=8)), NOW)
    store.record_batch(cleared_batch(store))
    for _ in range(4):
        store.record_batch(cleared_batch(store))  # empty batches: nothing open crosses any more

    def walk(fetch: Callable[[str | None], object]) -> list[object]:
        items: list[object] = []
        cursor = None
        while True:
            page = fetch(cursor)
            items += page.items  # type: ignore[attr-defined]
            cursor = page.next_cursor  # type: ignore[attr-defined]
            if cursor is None:
                return items

    batches = walk(lambda c: store.list_batches(limit=2, cursor=c))
    assert [b.batch_id for b in batches] == [5, 4, 3, 2, 1]  # type: ignore[attr-defined]
    leaves = walk(lambda c: store.batch_leaves(1, limit=3, cursor=c))
    assert [leaf.leaf_index for leaf in leaves] == list(range(7))  # type: ignore[attr-defined]
    leases = walk(lambda c: store.leases_of(PROVIDER, limit=4, cursor=c))
    assert [lease.lease_id for lease in leases] == list(range(7, 0, -1))  # type: ignore[attr-defined]


def test_batches_survive_a_restart(open_store: Callable[[], Store]) -> None:
    store = open_store()
    hashes = fill_book(store)
    store.record_batch(cleared_batch(store))
    before = (
        store.get_batch(1),
        store.batch_leaves(1),
        store.get_lease(2),
        store.explanation(hashes["huge"]),
    )
    store.close()
    again = open_store()
    assert (
        again.get_batch(1),
        again.batch_leaves(1),
        again.get_lease(2),
        again.explanation(hashes["huge"]),
    ) == before
