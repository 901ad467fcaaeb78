"""Orders: idempotent adds (also concurrent), status transitions and history, reservations, nonces, exact big
integers, pagination and a restart."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from store_market import A100, BUYER, BUYER2, NOW, PRICE, PROVIDER, accepted, ask, bid

from matcher.store import (
    InvalidPageError,
    NonceInUseError,
    OrderNotFoundError,
    OrderNotOpenError,
    OrderStatus,
    Store,
)


def test_add_order_is_idempotent_by_hash(store: Store) -> None:
    order = accepted(bid())
    first, created = store.add_order(order, received_at=NOW)
    again, created_again = store.add_order(order, received_at=NOW + 5)
    assert created and not created_again
    assert again == first
    assert first.status is OrderStatus.OPEN and first.received_at == NOW
    assert first.order() == order.order
    assert first.signature == order.signature
    assert first.max_cost == order.max_cost == 2 * 3600 * PRICE // 3600
    assert len(store.open_orders()) == 1
    assert [c.status for c in store.order_history(order.order_hash)] == [OrderStatus.OPEN]


def test_add_order_from_two_threads_at_once_yields_one_row(store: Store) -> None:
    order = accepted(bid())
    start = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def add() -> None:
        start.wait()
        try:
            results.append(store.add_order(order, received_at=NOW)[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [False] * 7 + [True]
    assert len(store.open_orders()) == 1
    assert len(store.order_history(order.order_hash)) == 1


def test_a_second_open_order_on_a_nonce_is_refused(store: Store) -> None:
    first = accepted(bid(nonce=7))
    store.add_order(first, NOW)
    assert store.open_nonce_owner(BUYER, 7) == first.order_hash
    assert store.open_nonce_owner(BUYER.lower(), 7) == first.order_hash  # any hex form of the account
    assert store.open_nonce_owner(BUYER, 8) is None
    other = accepted(ask("buyer", nonce=7))  # nonces are shared by an account's bids and asks
    with pytest.raises(NonceInUseError, match="cancel that order first"):
        store.add_order(other, NOW)
    store.cancel_order(first.order_hash, NOW + 1, "user")
    assert store.open_nonce_owner(BUYER, 7) is None
    assert store.add_order(other, NOW + 2)[1]


def test_cancel_moves_open_to_cancelled_once(store: Store) -> None:
    order = accepted(bid())
    store.add_order(order, NOW)
    cancelled = store.cancel_order(order.order_hash, NOW + 10, "signed cancel")
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.status_at == NOW + 10
    with pytest.raises(OrderNotOpenError, match="is cancelled, not open"):
        store.cancel_order(order.order_hash, NOW + 11, "again")
    with pytest.raises(OrderNotFoundError):
        store.cancel_order(b"\x01" * 32, NOW, "nothing")
    history = store.order_history(order.order_hash)
    assert [(c.status, c.at, c.reason) for c in history] == [
        (OrderStatus.OPEN, NOW, None),
        (OrderStatus.CANCELLED, NOW + 10, "signed cancel"),
    ]
    assert store.open_orders() == []


def test_expire_orders_closes_those_at_or_past_their_expiry(store: Store) -> None:
    soon = accepted(bid(nonce=1, expiry=NOW + 10))
    later = accepted(bid(nonce=2, expiry=NOW + 20))
    forever = accepted(ask(nonce=3, expiry=2**64 - 1))  # uint64 max: beyond BIGINT, still ordered right
    for order in (soon, later, forever):
        store.add_order(order, NOW)
    assert store.expire_orders(NOW + 9) == []
    assert store.expire_orders(NOW + 10) == [soon.order_hash]
    assert store.expire_orders(NOW + 10) == []
    assert {r.order_hash for r in store.open_orders()} == {later.order_hash, forever.order_hash}
    assert store.get_order(forever.order_hash).expiry == 2**64 - 1  # type: ignore[union-attr]
    expired = store.get_order(soon.order_hash)
    assert expired is not None and expired.status is OrderStatus.EXPIRED
    assert [c.status for c in store.order_history(soon.order_hash)] == [OrderStatus.OPEN, OrderStatus.EXPIRED]
    with pytest.raises(OrderNotOpenError):
        store.cancel_order(soon.order_hash, NOW + 11, "too late")


def test_reserved_for_sums_max_cost_over_open_bids_only(store: Store) -> None:
    one = accepted(bid(nonce=1, gpus=1, duration=1800))
    two = accepted(bid(nonce=2, gpus=4, duration=7200))
    gone = accepted(bid(nonce=3))
    others = accepted(bid("buyer-2", nonce=1))
    for order in (one, two, gone, others, accepted(ask())):
        store.add_order(order, NOW)
    store.cancel_order(gone.order_hash, NOW, "user")
    assert one.max_cost is not None and two.max_cost is not None
    assert store.reserved_for(BUYER) == one.max_cost + two.max_cost
    assert store.reserved_for(BUYER2) == others.max_cost
    assert store.reserved_for(PROVIDER) == 0


def test_big_integers_round_trip_exactly(store: Store) -> None:
    huge_price = 2**128 - 1
    huge_nonce = 2**256 - 1
    order = accepted(bid(max_price_per_gpu_hour=huge_price, nonce=huge_nonce, gpus=65535, duration=2**32 - 1))
    record, _ = store.add_order(order, NOW)
    again = store.get_order(order.order_hash)
    assert record == again
    assert again is not None
    assert again.price == huge_price and again.nonce == huge_nonce
    assert again.max_cost == 65535 * (2**32 - 1) * huge_price // 3600
    assert store.reserved_for(BUYER) == again.max_cost
    assert store.open_nonce_owner(BUYER, huge_nonce) == order.order_hash
    assert store.open_nonce_owner(BUYER, huge_nonce - 1) is None


def test_open_orders_filters_by_product(store: Store) -> None:
    h100 = accepted(bid(nonce=1))
    a100 = accepted(bid(nonce=2, product=A100))
    store.add_order(h100, NOW)
    store.add_order(a100, NOW)
    assert [r.order_hash for r in store.open_orders(A100)] == [a100.order_hash]
    assert len(store.open_orders()) == 2


def test_orders_of_pages_newest_first_without_gaps(store: Store) -> None:
    placed = [accepted(bid(nonce=n)) for n in range(7)]
    for n, order in enumerate(placed):
        store.add_order(order, NOW + n // 2)  # pairs share a second: ties broken by hash
    store.add_order(accepted(ask()), NOW)
    seen = []
    cursor = None
    while True:
        page = store.orders_of(BUYER, limit=3, cursor=cursor)
        seen += [r.order_hash for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(o.order_hash for o in placed) and len(seen) == 7
    times = [store.get_order(h).received_at for h in seen]  # type: ignore[union-attr]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("limit", [0, -1, 501, True, 2.5])
def test_pagination_refuses_bad_limits(store: Store, limit: object) -> None:
    with pytest.raises(InvalidPageError, match="limit must be"):
        store.orders_of(BUYER, limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("cursor", ["x", "12", "1:0x12", "1:0x" + "zz" * 32])
def test_pagination_refuses_foreign_cursors(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidPageError, match="pass next_cursor as given"):
        store.orders_of(BUYER, cursor=cursor)


def test_a_reopened_store_sees_every_order_and_state(open_store: Callable[[], Store]) -> None:
    store = open_store()
    kept = accepted(bid(nonce=1))
    cancelled = accepted(bid(nonce=2))
    store.add_order(kept, NOW)
    store.add_order(cancelled, NOW)
    store.cancel_order(cancelled.order_hash, NOW + 1, "user")
    store.close()
    reopened = open_store()
    assert [r.order_hash for r in reopened.open_orders()] == [kept.order_hash]
    assert reopened.get_order(cancelled.order_hash).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert len(reopened.order_history(cancelled.order_hash)) == 2
    assert reopened.add_order(kept, NOW + 5)[1] is False


def test_add_orders_stores_a_batch_in_one_call_and_isolates_a_failing_order(store: Store) -> None:
    first = accepted(bid(nonce=7, gpus=1))
    other_on_the_same_nonce = accepted(bid(nonce=7, gpus=2))
    third = accepted(bid(nonce=8))
    results = store.add_orders([first, other_on_the_same_nonce, third], NOW)
    assert isinstance(results[1], NonceInUseError)
    assert [r[1] for r in (results[0], results[2]) if not isinstance(r, Exception)] == [True, True]
    assert {bytes(o.order_hash) for o in store.open_orders()} == {
        bytes(first.order_hash),
        bytes(third.order_hash),
    }
    again = store.add_orders([first, third], NOW)
    assert [r[1] for r in again if not isinstance(r, Exception)] == [False, False]
