"""Batches: the cleared batch recorded whole (leases, explanations, leaves, order statuses), the root-posting
state machine, and the batch, lease and leaf reads. Functions over one connection; the `Store` wraps each in a
transaction, so a batch is recorded completely or not at all."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection, Row

from gpuspot.protocol.leaves import LeafKind, SettlementLeaf
from matcher.chain.poster import PostedRoot, SignedRootTx
from matcher.clearing.book import OrderHash
from matcher.clearing.outcome import BatchClearing, Reason, Side, Totals
from matcher.store import chain_mirror
from matcher.store.columns import INT63_MAX
from matcher.store.engine import chunks
from matcher.store.errors import (
    BatchAlreadyRecordedError,
    BatchNotFoundError,
    InvalidBatchError,
    InvalidStoredValueError,
    LeaseNotFoundError,
    RootPostConflictError,
    RootTxConflictError,
)
from matcher.store.orders import account, close_orders
from matcher.store.pages import check_limit, int_cursor
from matcher.store.records import (
    BatchRecord,
    BatchStatus,
    Explanation,
    LeafRecord,
    LeaseRecord,
    NewBatch,
    NewLease,
    OrderStatus,
    Page,
    PendingRoot,
)
from matcher.store.schema import (
    batch_orders,
    batches,
    leases,
    leaves,
    orders,
    product_clearings,
    root_posts,
    root_txs,
    superseded_root_txs,
)

__all__ = [
    "assign_lease_ids",
    "batch_leaves",
    "batches_awaiting_root",
    "explanation",
    "get_batch",
    "get_lease",
    "leases_of",
    "list_batches",
    "lockable_lease_costs",
    "mark_root_posted",
    "next_batch_id",
    "next_lease_id",
    "record_batch",
    "record_root_tx",
]

MATCHED = "matched"


def assign_lease_ids(clearing: BatchClearing, first_lease_id: int) -> tuple[NewLease, ...]:
    """The batch's matches as leases with consecutive ids from `first_lease_id` (products by id, matches in
    their clearing order): pure, so the leaves can be built with the same ids before anything is stored."""
    matches = [(product.product, match) for product in clearing.products for match in product.matches]
    return tuple(
        NewLease(first_lease_id + i, bytes(product), match) for i, (product, match) in enumerate(matches)
    )


def next_batch_id(connection: Connection) -> int:
    last = connection.execute(select(func.max(batches.c.batch_id))).scalar_one()
    return 1 if last is None else int(last) + 1


def next_lease_id(connection: Connection) -> int:
    last = connection.execute(select(func.max(leases.c.lease_id))).scalar_one()
    return 1 if last is None else int(last) + 1


def _totals_json(totals: Totals) -> str:
    return json.dumps({k: str(v) for k, v in asdict(totals).items()}, separators=(",", ":"))


def _leaf_json(leaf: SettlementLeaf) -> str:
    values = [
        ("0x" + v.hex()) if isinstance(v, bytes) else (v if isinstance(v, str) else str(v))
        for v in leaf.values()
    ]
    return json.dumps(values, separators=(",", ":"))


def leaf_of(text: str) -> SettlementLeaf:
    raw = json.loads(text)
    kind, batch_id, lease_id, digest, buyer, provider, product, gpus, duration, price, used = raw
    return SettlementLeaf(
        int(kind),
        int(batch_id),
        int(lease_id),
        bytes.fromhex(digest[2:]),
        buyer,
        provider,
        bytes.fromhex(product[2:]),
        int(gpus),
        int(duration),
        int(price),
        int(used),
    )


def _check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT63_MAX:
        raise InvalidStoredValueError(f"{what} must be an integer from 1 to 2**63-1, got {value!r}")
    return value


def _lease_row(batch_id: int, lease: NewLease) -> dict[str, Any]:
    match = lease.match
    return {
        "lease_id": lease.lease_id,
        "batch_id": batch_id,
        "product": lease.product,
        "bid_hash": bytes(match.bid_hash),
        "ask_hash": bytes(match.ask_hash),
        "buyer": account(match.buyer),
        "provider": account(match.provider),
        "host_id": bytes(match.host_id),
        "gpus": match.gpus,
        "duration": match.duration,
        "price": match.price_per_gpu_hour,
    }


def _expected_leaf(row: dict[str, Any] | Row[Any], kind: int, used: int) -> SettlementLeaf:
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return SettlementLeaf(
        kind,
        get("batch_id"),
        get("lease_id"),
        get("bid_hash"),
        get("buyer"),
        get("provider"),
        get("product"),
        get("gpus"),
        get("duration"),
        get("price"),
        used,
    )


def _check_leases(batch: NewBatch) -> None:
    ids = [lease.lease_id for lease in batch.leases]
    for lease_id in ids:
        _check_id(lease_id, "lease id")
    if len(set(ids)) != len(ids):
        raise InvalidBatchError(
            f"batch {batch.batch_id} gives one lease id to two leases: use assign_lease_ids"
        )
    matches = [lease.match for lease in batch.leases]
    if sorted(map(repr, matches)) != sorted(map(repr, batch.clearing.matches)):
        raise InvalidBatchError(
            f"batch {batch.batch_id}'s leases are not its clearing's matches: "
            "build them with assign_lease_ids"
        )


def _leaf_rows(
    connection: Connection, batch: NewBatch, new_leases: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The leaves in canonical tree order (lease leaves by lease id, then usage leaves by lease id), each
    checked against the lease it names."""
    ordered = sorted(batch.leaves, key=lambda leaf: (leaf.kind != LeafKind.LEASE, leaf.lease_id))
    rows: list[dict[str, Any]] = []
    seen: set[tuple[bool, int]] = set()
    for index, leaf in enumerate(ordered):
        usage = leaf.kind != LeafKind.LEASE
        if (usage, leaf.lease_id) in seen:
            raise InvalidBatchError(
                f"lease {leaf.lease_id} has two {'usage' if usage else 'lease'} leaves in batch "
                f"{batch.batch_id}: keep one"
            )
        seen.add((usage, leaf.lease_id))
        if not usage:
            lease = new_leases.get(leaf.lease_id)
            if lease is None:
                raise InvalidBatchError(
                    f"lease leaf of lease {leaf.lease_id} names no lease of batch {batch.batch_id}: a lease "
                    "leaf commits a lease of its own batch"
                )
            expected = _expected_leaf(lease, LeafKind.LEASE, 0)
        else:
            stored = connection.execute(
                select(leases).where(leases.c.lease_id == leaf.lease_id)
            ).one_or_none()
            if stored is None or stored.batch_id >= batch.batch_id:
                raise InvalidBatchError(
                    f"usage leaf of lease {leaf.lease_id} names no lease of an earlier batch: usage is "
                    "committed in a batch after the lease's"
                )
            expected = _expected_leaf(stored, leaf.kind, leaf.used_gpu_seconds)
        if leaf != expected:
            raise InvalidBatchError(
                f"leaf {leaf} of batch {batch.batch_id} does not match lease {leaf.lease_id} ({expected}): "
                "build leaves from the recorded leases"
            )
        rows.append(
            {
                "batch_id": batch.batch_id,
                "leaf_index": index,
                "kind": int(leaf.kind),
                "section": int(usage),
                "lease_id": leaf.lease_id,
                "leaf_hash": leaf.hash(),
                "values_json": _leaf_json(leaf),
            }
        )
    return rows


def record_batch(connection: Connection, batch: NewBatch) -> BatchRecord:
    """Records the batch whole: its row, per-product clearings, every considered order with its outcome, the
    leases, the leaves, and the matched orders' new status. Raises (and, the transaction rolling back, leaves
    nothing) if any part is inconsistent."""
    batch_id = _check_id(batch.batch_id, "batch id")
    _check_id(batch.recorded_at, "recorded_at")
    last = connection.execute(select(func.max(batches.c.batch_id))).scalar_one()
    if last is not None and last >= batch_id:
        raise BatchAlreadyRecordedError(
            f"batch {batch_id} cannot be recorded: batch {last} is already recorded and ids strictly "
            "increase; "
            f"clear again as batch {last + 1} (next_batch_id())"
        )
    if (batch.root is None) != (not batch.leaves):
        raise InvalidBatchError(
            f"batch {batch_id} must have a root exactly when it has leaves: pass settlement_tree(leaves).root"
        )
    _check_leases(batch)
    first = next_lease_id(connection)
    if batch.leases and min(lease.lease_id for lease in batch.leases) < first:
        raise InvalidBatchError(
            f"batch {batch_id} reuses lease ids below {first}: lease ids only grow, start at next_lease_id()"
        )
    clearing = batch.clearing
    connection.execute(
        batches.insert(),
        {
            "batch_id": batch_id,
            "seed": clearing.batch_seed,
            "rule": clearing.rule.value,
            "code_version": batch.code_version,
            "commitment": clearing.commitment,
            "root": batch.root,
            "lease_count": len(batch.leases),
            "leaf_count": len(batch.leaves),
            "totals_json": _totals_json(clearing.totals),
            "recorded_at": batch.recorded_at,
        },
    )
    if clearing.products:
        connection.execute(
            product_clearings.insert(),
            [
                {
                    "batch_id": batch_id,
                    "product": bytes(p.product),
                    "seed": p.seed,
                    "clearing_price": p.clearing_price,
                    "lease_price": p.lease_price,
                    "commitment": p.commitment,
                    "totals_json": _totals_json(p.totals),
                }
                for p in clearing.products
            ],
        )
    considered: dict[bytes, dict[str, Any]] = {}
    for match in clearing.matches:
        for order_hash, side in ((match.bid_hash, Side.BID), (match.ask_hash, Side.ASK)):
            considered[bytes(order_hash)] = {"side": side.value, "outcome": MATCHED, "gap": None}
    for product in clearing.products:
        for unmatched in product.unmatched:
            considered[bytes(unmatched.order_hash)] = {
                "side": unmatched.side.value,
                "outcome": unmatched.reason.value,
                "gap": unmatched.gap,
            }
    known: set[bytes] = set()
    for chunk in chunks(list(considered)):
        known.update(
            connection.execute(select(orders.c.order_hash).where(orders.c.order_hash.in_(chunk))).scalars()
        )
    missing = [h for h in considered if h not in known]
    if missing:
        raise InvalidBatchError(
            f"batch {batch_id} considers {len(missing)} order(s) the store does not hold, e.g. "
            f"0x{missing[0].hex()}: "
            "clear only orders read from the store"
        )
    if considered:
        connection.execute(
            batch_orders.insert(),
            [{"batch_id": batch_id, "order_hash": h} | v for h, v in considered.items()],
        )
    lease_rows = {lease.lease_id: _lease_row(batch_id, lease) for lease in batch.leases}
    if lease_rows:
        connection.execute(leases.insert(), list(lease_rows.values()))
    leaf_rows = _leaf_rows(connection, batch, lease_rows)
    if leaf_rows:
        connection.execute(leaves.insert(), leaf_rows)
    matched = [h for h, v in considered.items() if v["outcome"] == MATCHED]
    refused = close_orders(connection, matched, OrderStatus.MATCHED, batch.recorded_at, batch_id)
    if refused:
        raise InvalidBatchError(
            f"batch {batch_id} matches {len(refused)} order(s) that are no longer open (cancelled or expired "
            f"since clearing), e.g. 0x{refused[0].hex()}: clear the batch again from the open orders"
        )
    record = get_batch(connection, batch_id)
    assert record is not None
    return record


# --- Root posting


def _batch_row(connection: Connection, batch_id: int) -> Row[Any]:
    row = connection.execute(select(batches).where(batches.c.batch_id == batch_id)).one_or_none()
    if row is None:
        raise BatchNotFoundError(f"no batch {batch_id} is recorded: record the batch before posting its root")
    return row


def record_root_tx(
    connection: Connection, batch_id: int, signed: SignedRootTx, at: int, replaces: bytes | None = None
) -> bool:
    """Stores the signed `postRoot` transaction of the batch, before it is sent; whether it was new (the same
    transaction stored again is a no-op). A different transaction is refused unless `replaces` names the
    stored one (after `RootTxReplacedError`: the stored one can never be mined), which is then kept aside."""
    _check_id(at, "at")
    batch = _batch_row(connection, batch_id)
    if batch.root is None:
        raise RootTxConflictError(f"batch {batch_id} has no leaves and so no root: there is nothing to post")
    if signed.batch_id != batch_id or signed.root != batch.root:
        raise RootTxConflictError(
            f"the transaction posts root 0x{signed.root.hex()} for batch {signed.batch_id}, but batch "
            f"{batch_id}'s "
            f"root is 0x{batch.root.hex()}: prepare the transaction from the stored batch"
        )
    if connection.execute(select(root_posts.c.batch_id).where(root_posts.c.batch_id == batch_id)).first():
        raise RootTxConflictError(f"batch {batch_id}'s root is already posted: send nothing more for it")
    stored = connection.execute(select(root_txs).where(root_txs.c.batch_id == batch_id)).one_or_none()
    row = {
        "batch_id": batch_id,
        "root": signed.root,
        "sender": signed.sender,
        "nonce": signed.nonce,
        "tx_hash": signed.tx_hash,
        "raw": signed.raw,
        "stored_at": at,
    }
    if stored is None:
        if replaces is not None:
            raise RootTxConflictError(
                f"batch {batch_id} has no stored transaction to replace: store this one without `replaces`"
            )
        connection.execute(root_txs.insert(), row)
        return True
    if stored.tx_hash == signed.tx_hash and stored.raw == signed.raw:
        return False
    if replaces is None or bytes(replaces) != stored.tx_hash:
        raise RootTxConflictError(
            f"batch {batch_id} already has transaction 0x{stored.tx_hash.hex()} stored: resume it "
            "(RootPoster.resume); store another only when the chain shows the stored one replaced, passing "
            "replaces=<its hash>"
        )
    connection.execute(
        superseded_root_txs.insert(),
        {
            "tx_hash": stored.tx_hash,
            "batch_id": batch_id,
            "nonce": stored.nonce,
            "raw": stored.raw,
            "superseded_at": at,
        },
    )
    connection.execute(root_txs.update().where(root_txs.c.batch_id == batch_id).values(**row))
    return True


def mark_root_posted(connection: Connection, batch_id: int, posted: PostedRoot) -> bool:
    """Records the batch's root as posted on-chain; whether this was new (the same post again is a no-op)."""
    batch = _batch_row(connection, batch_id)
    if posted.batch_id != batch_id or batch.root is None or posted.root != batch.root:
        stored = "none" if batch.root is None else "0x" + batch.root.hex()
        raise RootPostConflictError(
            f"root 0x{posted.root.hex()} posted for batch {posted.batch_id} is not batch {batch_id}'s root "
            f"({stored}): the chain holds a different clearing; stop posting and investigate"
        )
    stored_post = connection.execute(
        select(root_posts).where(root_posts.c.batch_id == batch_id)
    ).one_or_none()
    row = {
        "batch_id": batch_id,
        "root": posted.root,
        "tx_hash": posted.tx_hash,
        "block_number": posted.block_number,
        "gas_used": posted.gas_used,
        "posted_at": posted.posted_at,
    }
    if stored_post is None:
        connection.execute(root_posts.insert(), row)
        return True
    if dict(stored_post._mapping) == row:
        return False
    raise RootPostConflictError(
        f"batch {batch_id} is already marked posted by 0x{stored_post.tx_hash.hex()} in block "
        f"{stored_post.block_number}: a root is posted once"
    )


def batches_awaiting_root(connection: Connection) -> list[PendingRoot]:
    """Batches with a root not yet marked posted, oldest first, with their stored transaction if any: what a
    restarted matcher resumes."""
    rows = connection.execute(
        select(batches.c.batch_id, batches.c.root, root_txs)
        .select_from(batches.outerjoin(root_txs, root_txs.c.batch_id == batches.c.batch_id))
        .outerjoin(root_posts, root_posts.c.batch_id == batches.c.batch_id)
        .where(batches.c.root.is_not(None), root_posts.c.batch_id.is_(None))
        .order_by(batches.c.batch_id)
    ).all()
    pending = []
    for row in rows:
        m = row._mapping
        tx = None
        if m[root_txs.c.tx_hash] is not None:
            tx = SignedRootTx(
                batch_id=m[batches.c.batch_id],
                root=m[root_txs.c.root],
                sender=m[root_txs.c.sender],
                nonce=m[root_txs.c.nonce],
                tx_hash=m[root_txs.c.tx_hash],
                raw=m[root_txs.c.raw],
            )
        pending.append(PendingRoot(m[batches.c.batch_id], m[batches.c.root], tx))
    return pending


# --- Reads


def _batch_query() -> Any:
    return select(
        batches,
        root_txs.c.tx_hash.label("root_tx_hash"),
        root_posts.c.tx_hash.label("posted_tx_hash"),
        root_posts.c.block_number.label("posted_block"),
        root_posts.c.posted_at.label("posted_at"),
    ).select_from(
        batches.outerjoin(root_txs, root_txs.c.batch_id == batches.c.batch_id).outerjoin(
            root_posts, root_posts.c.batch_id == batches.c.batch_id
        )
    )


def _batch_record(row: Row[Any]) -> BatchRecord:
    if row.root is None:
        status = BatchStatus.EMPTY
    elif row.posted_tx_hash is not None:
        status = BatchStatus.POSTED
    elif row.root_tx_hash is not None:
        status = BatchStatus.TX_STORED
    else:
        status = BatchStatus.AWAITING_TX
    return BatchRecord(
        batch_id=row.batch_id,
        seed=row.seed,
        rule=row.rule,
        code_version=row.code_version,
        commitment=row.commitment,
        root=row.root,
        lease_count=row.lease_count,
        leaf_count=row.leaf_count,
        totals={k: int(v) for k, v in json.loads(row.totals_json).items()},
        recorded_at=row.recorded_at,
        status=status,
        root_tx_hash=row.root_tx_hash,
        posted_tx_hash=row.posted_tx_hash,
        posted_block=row.posted_block,
        posted_at=row.posted_at,
    )


def get_batch(connection: Connection, batch_id: int) -> BatchRecord | None:
    row = connection.execute(_batch_query().where(batches.c.batch_id == batch_id)).one_or_none()
    return None if row is None else _batch_record(row)


def list_batches(connection: Connection, limit: int, cursor: str | None) -> Page[BatchRecord]:
    """Batches, newest first."""
    limit = check_limit(limit)
    before = int_cursor(cursor)
    query = _batch_query()
    if before is not None:
        query = query.where(batches.c.batch_id < before)
    rows = connection.execute(query.order_by(batches.c.batch_id.desc()).limit(limit + 1)).all()
    items = [_batch_record(row) for row in rows[:limit]]
    return Page(items, str(items[-1].batch_id) if len(rows) > limit else None)


def batch_leaves(connection: Connection, batch_id: int, limit: int, cursor: str | None) -> Page[LeafRecord]:
    """The batch's leaves in tree order (leaf index ascending)."""
    limit = check_limit(limit)
    after = int_cursor(cursor)
    _batch_row(connection, batch_id)
    query = select(leaves).where(leaves.c.batch_id == batch_id)
    if after is not None:
        query = query.where(leaves.c.leaf_index > after)
    rows = connection.execute(query.order_by(leaves.c.leaf_index).limit(limit + 1)).all()
    items = [LeafRecord(r.batch_id, r.leaf_index, r.leaf_hash, leaf_of(r.values_json)) for r in rows[:limit]]
    return Page(items, str(items[-1].leaf_index) if len(rows) > limit else None)


def lease_record(connection: Connection, row: Row[Any]) -> LeaseRecord:
    chain = chain_mirror.lease_state(connection, row.lease_id)
    if chain.reclaimed:
        status = "reclaimed"
    elif chain.closed:
        status = "closed"
    elif chain.paid or chain.used_gpu_seconds:
        status = "settling"
    elif chain.locked:
        status = "locked"
    elif row.posted_tx_hash is not None or chain_mirror.posted_root(connection, row.batch_id) is not None:
        status = "posted"
    else:
        status = "committed"
    return LeaseRecord(
        lease_id=row.lease_id,
        batch_id=row.batch_id,
        product=row.product,
        bid_hash=OrderHash(row.bid_hash),
        ask_hash=OrderHash(row.ask_hash),
        buyer=row.buyer,
        provider=row.provider,
        host_id=row.host_id,
        gpus=row.gpus,
        duration=row.duration,
        price_per_gpu_hour=row.price,
        status=status,
        chain=chain,
    )


def lease_query() -> Any:
    return select(leases, root_posts.c.tx_hash.label("posted_tx_hash")).select_from(
        leases.outerjoin(root_posts, root_posts.c.batch_id == leases.c.batch_id)
    )


def get_lease(connection: Connection, lease_id: int) -> LeaseRecord:
    row = connection.execute(lease_query().where(leases.c.lease_id == lease_id)).one_or_none()
    if row is None:
        raise LeaseNotFoundError(f"no lease has id {lease_id}: lease ids come from recorded batches")
    return lease_record(connection, row)


def leases_of(connection: Connection, who: str, limit: int, cursor: str | None) -> Page[LeaseRecord]:
    """The account's leases as buyer or provider, newest first."""
    limit = check_limit(limit)
    before = int_cursor(cursor)
    checksummed = account(who)
    query = lease_query().where(or_(leases.c.buyer == checksummed, leases.c.provider == checksummed))
    if before is not None:
        query = query.where(leases.c.lease_id < before)
    rows = connection.execute(query.order_by(leases.c.lease_id.desc()).limit(limit + 1)).all()
    items = [lease_record(connection, row) for row in rows[:limit]]
    return Page(items, str(items[-1].lease_id) if len(rows) > limit else None)


def lockable_lease_costs(
    connection: Connection, buyers: Collection[str], lock_window: int, now: int
) -> dict[str, int]:
    """For each buyer (checksummed), the summed max cost of its leases that are committed or posted but not
    locked, and can still be locked (root unposted, or posted at most `lock_window` seconds ago). The escrow's
    `available` only drops when a lease is locked, so intake must hold this back too. Buyers with none are
    absent."""
    totals: dict[str, int] = {}
    for chunk in chunks(buyers):
        rows = connection.execute(
            select(leases.c.lease_id, leases.c.buyer, orders.c.max_cost)
            .select_from(
                leases.join(orders, orders.c.order_hash == leases.c.bid_hash).outerjoin(
                    root_posts, root_posts.c.batch_id == leases.c.batch_id
                )
            )
            .where(
                leases.c.buyer.in_(chunk),
                or_(root_posts.c.posted_at.is_(None), root_posts.c.posted_at >= now - lock_window),
            )
        ).all()
        locked = chain_mirror.locked_lease_ids(connection, [row.lease_id for row in rows])
        for row in rows:
            if row.lease_id not in locked:
                totals[row.buyer] = totals.get(row.buyer, 0) + row.max_cost
    return totals


def explanation(connection: Connection, order_hash: bytes) -> Explanation | None:
    """Why the order did not trade in the last batch that considered it; None if no batch considered it or
    that batch matched it."""
    row = connection.execute(
        select(batch_orders)
        .where(batch_orders.c.order_hash == bytes(order_hash))
        .order_by(batch_orders.c.batch_id.desc())
        .limit(1)
    ).one_or_none()
    if row is None or row.outcome == MATCHED:
        return None
    return Explanation(OrderHash(row.order_hash), row.batch_id, Side(row.side), Reason(row.outcome), row.gap)
