"""The order book's rows: accepted orders, their status and its history. Functions over one connection; the
`Store` wraps each in a transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from gpuspot.protocol import abi
from gpuspot.protocol.errors import AbiEncodingError
from gpuspot.protocol.orders import Bid, Signature, to_json
from matcher.clearing.book import OrderHash
from matcher.intake.validate import AcceptedOrder
from matcher.store.columns import INT63_MAX, clamp64, uint_text
from matcher.store.engine import chunks, insert_or_ignore
from matcher.store.errors import (
    InvalidStoredValueError,
    NonceInUseError,
    OrderNotFoundError,
    OrderNotOpenError,
    StoreError,
)
from matcher.store.pages import check_limit, pair_cursor
from matcher.store.records import OrderRecord, OrderStatus, Page, StatusChange
from matcher.store.schema import order_status_changes, orders

__all__ = [
    "account",
    "add_orders",
    "cancel_order",
    "close_orders",
    "expire_orders",
    "get_order",
    "open_bid_costs",
    "open_nonce_owner",
    "open_nonce_owners",
    "open_nonces_of",
    "open_orders",
    "order_history",
    "orders_of",
    "reserved_for",
]


def account(value: str) -> str:
    """`value` as the EIP-55 checksummed address every account column holds."""
    try:
        return abi.normalize_address(value, "account")
    except AbiEncodingError as exc:
        raise InvalidStoredValueError(str(exc)) from None


def _time(value: object, what: str) -> int:
    """A unix time in seconds, as the BIGINT columns hold it."""
    uint_text(value, what)
    assert isinstance(value, int)
    if value > INT63_MAX:
        raise InvalidStoredValueError(f"{what} = {value} is not a unix time in seconds: pass int(time())")
    return value


def _row(accepted: AcceptedOrder, received_at: int) -> dict[str, Any]:
    order = accepted.order
    common = {
        "order_hash": bytes(accepted.order_hash),
        "kind": accepted.kind.value,
        "signer": accepted.signer,
        "product": order.product,
        "nonce": order.nonce,
        "gpus": order.gpus,
        "expiry": order.expiry,
        "expiry_at": clamp64(order.expiry),
        "order_json": to_json(order),
        "signature": accepted.signature.value,
        "status": OrderStatus.OPEN.value,
        "received_at": received_at,
        "status_at": received_at,
    }
    if isinstance(order, Bid):
        if accepted.max_cost is None:
            raise InvalidStoredValueError(
                f"bid {accepted.order_hash.hex()} has no max_cost: pass intake's result"
            )
        return common | {
            "price": order.max_price_per_gpu_hour,
            "duration": order.duration,
            "job_spec_hash": order.job_spec_hash,
            "host_id": None,
            "max_cost": accepted.max_cost,
        }
    return common | {
        "price": order.min_price_per_gpu_hour,
        "duration": order.max_duration,
        "host_id": order.host_id,
        "job_spec_hash": None,
        "max_cost": None,
    }


def record_of(row: Row[Any]) -> OrderRecord:
    return _record(cast(Mapping[str, Any], row._mapping))


def _record(values: Mapping[str, Any]) -> OrderRecord:
    """An `OrderRecord` from an `orders` row, read back or about to be written (the same Python values)."""
    return OrderRecord(
        order_hash=OrderHash(values["order_hash"]),
        kind=values["kind"],
        signer=values["signer"],
        product=values["product"],
        nonce=values["nonce"],
        price=values["price"],
        gpus=values["gpus"],
        duration=values["duration"],
        host_id=values["host_id"],
        job_spec_hash=values["job_spec_hash"],
        expiry=values["expiry"],
        max_cost=values["max_cost"],
        order_json=values["order_json"],
        signature=Signature(values["signature"]),
        status=OrderStatus(values["status"]),
        received_at=values["received_at"],
        status_at=values["status_at"],
    )


def get_order(connection: Connection, order_hash: bytes) -> OrderRecord | None:
    row = connection.execute(select(orders).where(orders.c.order_hash == bytes(order_hash))).one_or_none()
    return None if row is None else record_of(row)


def _require(connection: Connection, order_hash: bytes) -> OrderRecord:
    record = get_order(connection, order_hash)
    if record is None:
        raise OrderNotFoundError(f"no order has hash 0x{bytes(order_hash).hex()}: check the hash")
    return record


def add_orders(
    connection: Connection, accepted: Sequence[AcceptedOrder], received_at: int
) -> list[tuple[OrderRecord, bool] | StoreError]:
    """Inserts each order as open unless an order with its hash exists: one result per item, (the stored
    order, whether this call created it), or the `NonceInUseError` of an order whose (signer, nonce) another
    open order holds (it is not stored; the others are). The same signed order twice, in one call or in two
    concurrent ones, is one row (the primary key).

    Set-based: one multi-row `INSERT ... ON CONFLICT (order_hash) DO NOTHING RETURNING` and one insert of
    the status history for the whole list. If the unique index on open (signer, nonce) fires, it falls back
    to one savepoint per order, which says which order holds the nonce."""
    _time(received_at, "received_at")
    by_hash: dict[bytes, AcceptedOrder] = {}
    for order in accepted:
        by_hash.setdefault(bytes(order.order_hash), order)
    rows = {h: _row(order, received_at) for h, order in by_hash.items()}
    outcome: dict[bytes, tuple[OrderRecord, bool] | StoreError] = {}
    try:
        with connection.begin_nested():
            created = insert_or_ignore(
                connection, orders, list(rows.values()), ["order_hash"], returning=True
            )
            if created:
                connection.execute(
                    order_status_changes.insert(),
                    [{"order_hash": h, "status": OrderStatus.OPEN.value, "at": received_at} for h in created],
                )
        outcome.update((h, (_record(rows[h]), True)) for h in created)
    except IntegrityError:  # an order's nonce is held by another open order: find out which, one by one
        for order_hash, row in rows.items():
            try:
                with connection.begin_nested():
                    outcome[order_hash] = _add_one(connection, by_hash[order_hash], row)
            except StoreError as exc:
                outcome[order_hash] = exc
    missing = [h for h in rows if h not in outcome]
    outcome.update((h, (record, False)) for h, record in _records(connection, missing).items())
    results: list[tuple[OrderRecord, bool] | StoreError] = []
    seen: set[bytes] = set()
    for order in accepted:
        order_hash = bytes(order.order_hash)
        result = outcome[order_hash]
        if order_hash in seen and not isinstance(result, StoreError):
            result = (result[0], False)  # the same order again in this call: created once
        seen.add(order_hash)
        results.append(result)
    return results


def _add_one(
    connection: Connection, accepted: AcceptedOrder, row: dict[str, Any]
) -> tuple[OrderRecord, bool]:
    """One order, checked and inserted on its own (the fallback of `add_orders`)."""
    holder = open_nonce_owner(connection, accepted.signer, accepted.order.nonce)
    if holder is not None and holder != bytes(accepted.order_hash):
        raise _nonce_in_use(accepted, holder)
    try:
        created = insert_or_ignore(connection, orders, row, ["order_hash"]) == 1
    except IntegrityError:  # another writer opened an order on this nonce since the check above
        holder = open_nonce_owner(connection, accepted.signer, accepted.order.nonce)
        raise _nonce_in_use(accepted, holder or b"") from None
    if created:
        connection.execute(
            order_status_changes.insert(),
            {"order_hash": row["order_hash"], "status": OrderStatus.OPEN.value, "at": row["received_at"]},
        )
    return _require(connection, accepted.order_hash), created


def _records(connection: Connection, hashes: Sequence[bytes]) -> dict[bytes, OrderRecord]:
    """The stored orders among `hashes`, by hash."""
    found: dict[bytes, OrderRecord] = {}
    for chunk in chunks(hashes):
        for row in connection.execute(select(orders).where(orders.c.order_hash.in_(chunk))):
            found[bytes(row.order_hash)] = record_of(row)
    return found


def _nonce_in_use(accepted: AcceptedOrder, holder: bytes) -> NonceInUseError:
    return NonceInUseError(
        f"nonce {accepted.order.nonce} of {accepted.signer} is held by open order 0x{holder.hex()}: "
        "cancel that order first, or sign this one with a fresh nonce"
    )


def _change(
    connection: Connection,
    hashes: Sequence[bytes],
    status: OrderStatus,
    at: int,
    batch_id: int | None,
    reason: str | None,
) -> None:
    connection.execute(
        order_status_changes.insert(),
        [
            {"order_hash": h, "status": status.value, "at": at, "batch_id": batch_id, "reason": reason}
            for h in hashes
        ],
    )


def cancel_order(connection: Connection, order_hash: bytes, at: int, reason: str) -> OrderRecord:
    """Open -> cancelled; `OrderNotOpenError` for an order in any other state."""
    _time(at, "at")
    result = connection.execute(
        update(orders)
        .where(orders.c.order_hash == bytes(order_hash), orders.c.status == OrderStatus.OPEN.value)
        .values(status=OrderStatus.CANCELLED.value, status_at=at)
    )
    if result.rowcount != 1:
        record = _require(connection, order_hash)
        raise OrderNotOpenError(
            f"order 0x{bytes(order_hash).hex()} is {record.status.value}, not open: only open orders can be "
            "cancelled (a matched bid is stopped through its lease instead)"
        )
    _change(connection, [bytes(order_hash)], OrderStatus.CANCELLED, at, None, reason)
    return _require(connection, order_hash)


def close_orders(
    connection: Connection,
    hashes: Iterable[bytes],
    status: OrderStatus,
    at: int,
    batch_id: int | None,
    reason: str | None = None,
) -> list[bytes]:
    """Moves the given open orders to `status` (the history records `reason`); the hashes of those that were
    not open (left unchanged)."""
    wanted = [bytes(h) for h in hashes]
    refused: list[bytes] = []
    changed: list[bytes] = []
    for order_hash in wanted:
        result = connection.execute(
            update(orders)
            .where(orders.c.order_hash == order_hash, orders.c.status == OrderStatus.OPEN.value)
            .values(status=status.value, status_at=at)
        )
        (changed if result.rowcount == 1 else refused).append(order_hash)
    if changed:
        _change(connection, changed, status, at, batch_id, reason)
    return refused


def expire_orders(connection: Connection, now: int) -> list[OrderHash]:
    """Open orders with `expiry <= now` -> expired (intake's rule: an order at its expiry is expired)."""
    now = _time(now, "now")
    due = connection.execute(
        select(orders.c.order_hash)
        .where(orders.c.status == OrderStatus.OPEN.value, orders.c.expiry_at <= now)
        .order_by(orders.c.order_hash)
    ).scalars()
    hashes = list(due)
    close_orders(connection, hashes, OrderStatus.EXPIRED, now, None)
    return [OrderHash(h) for h in hashes]


def open_nonces_of(connection: Connection, signer: str, kind: str | None = None) -> dict[bytes, int]:
    """The signer's open orders (of one kind, "bid" or "ask"): order hash -> nonce."""
    query = select(orders.c.order_hash, orders.c.nonce).where(
        orders.c.signer == account(signer), orders.c.status == OrderStatus.OPEN.value
    )
    if kind is not None:
        query = query.where(orders.c.kind == kind)
    return {bytes(row.order_hash): row.nonce for row in connection.execute(query)}


def open_orders(connection: Connection, product: bytes | None = None) -> list[OrderRecord]:
    query = select(orders).where(orders.c.status == OrderStatus.OPEN.value)
    if product is not None:
        query = query.where(orders.c.product == bytes(product))
    return [record_of(row) for row in connection.execute(query.order_by(orders.c.order_hash))]


def open_bid_costs(connection: Connection, buyers: Collection[str]) -> dict[str, int]:
    """The sum of `max_cost` over each buyer's open bids (summed here, exactly: the column is decimal text);
    buyers checksummed, those without open bids absent."""
    totals: dict[str, int] = {}
    for chunk in chunks(buyers):
        for signer, cost in connection.execute(
            select(orders.c.signer, orders.c.max_cost).where(
                orders.c.signer.in_(chunk),
                orders.c.kind == "bid",
                orders.c.status == OrderStatus.OPEN.value,
            )
        ):
            totals[signer] = totals.get(signer, 0) + cost
    return totals


def reserved_for(connection: Connection, buyer: str) -> int:
    """The sum of `max_cost` over the buyer's open bids."""
    return open_bid_costs(connection, [account(buyer)]).get(account(buyer), 0)


def open_nonce_owners(
    connection: Connection, pairs: Collection[tuple[str, int]]
) -> dict[tuple[str, int], OrderHash]:
    """The open order holding each `(signer, nonce)` among `pairs` (signers checksummed), where one does."""
    owners: dict[tuple[str, int], OrderHash] = {}
    for chunk in chunks(pairs):
        for row in connection.execute(
            select(orders.c.signer, orders.c.nonce, orders.c.order_hash).where(
                orders.c.status == OrderStatus.OPEN.value,
                tuple_(orders.c.signer, orders.c.nonce).in_(chunk),
            )
        ):
            owners[(row.signer, row.nonce)] = OrderHash(row.order_hash)
    return owners


def open_nonce_owner(connection: Connection, signer: str, nonce: int) -> OrderHash | None:
    key = (account(signer), nonce)
    return open_nonce_owners(connection, [key]).get(key)


def order_history(connection: Connection, order_hash: bytes) -> list[StatusChange]:
    _require(connection, order_hash)
    rows = connection.execute(
        select(order_status_changes)
        .where(order_status_changes.c.order_hash == bytes(order_hash))
        .order_by(order_status_changes.c.change_id)
    )
    return [StatusChange(OrderStatus(r.status), r.at, r.batch_id, r.reason) for r in rows]


def orders_of(connection: Connection, signer: str, limit: int, cursor: str | None) -> Page[OrderRecord]:
    """The account's orders, newest first (by arrival, then hash)."""
    limit = check_limit(limit)
    after = pair_cursor(cursor)
    query = select(orders).where(orders.c.signer == account(signer))
    if after is not None:
        at, key_bytes = after
        query = query.where(
            or_(
                orders.c.received_at < at,
                and_(orders.c.received_at == at, orders.c.order_hash < key_bytes),
            )
        )
    rows = connection.execute(
        query.order_by(orders.c.received_at.desc(), orders.c.order_hash.desc()).limit(limit + 1)
    ).all()
    items = [record_of(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = f"{last.received_at}:0x{bytes(last.order_hash).hex()}"
    return Page(items, next_cursor)
