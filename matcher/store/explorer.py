"""Read queries for the explorer's pages (matcher/explorer/): market totals, price history, a batch's
matches and orders, an order's batches and lease, a lease's chain events, transactions by hash, providers.

`ExplorerReads` wraps each in one read transaction (one snapshot), like `Store`'s methods. Every query is
keyed by an indexed column or a primary-key range, except the few noted (search by transaction hash, the
providers' hosts), which scan one table and run only when a user asks for that page, never on the home page.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.engine import Connection, Engine

from matcher.store import batches as batch_ops
from matcher.store import chain_mirror
from matcher.store import evidence as evidence_ops
from matcher.store import orders as order_ops
from matcher.store.engine import chunks, reading
from matcher.store.errors import InvalidPageError
from matcher.store.orders import account, record_of
from matcher.store.pages import check_limit, int_cursor
from matcher.store.records import LeaseRecord, OrderRecord, Page, ReceiptRecord
from matcher.store.schema import (
    batch_orders,
    batches,
    chain_cursor,
    chain_events,
    challenges,
    evidence_ends,
    lease_lapses,
    leases,
    leaves,
    orders,
    product_clearings,
    receipts,
    root_posts,
    root_txs,
    superseded_root_txs,
)

__all__ = [
    "BookDepth",
    "ChainEventRow",
    "ClearingRow",
    "ConsideredOrder",
    "ExplorerReads",
    "MarketTotals",
    "PricePoint",
    "ProviderRow",
    "RootPostRow",
    "TxFinding",
]

FAILED_ENDS = ("challenge_failed", "gap")


@dataclass(frozen=True, slots=True)
class BookDepth:
    """Open orders of one product and side: how many, and their GPU-seconds (gpus x duration)."""

    product: bytes
    kind: str
    orders: int
    gpu_seconds: int


@dataclass(frozen=True, slots=True)
class RootPostRow:
    batch_id: int
    root: bytes
    tx_hash: bytes
    block_number: int
    gas_used: int
    posted_at: int


@dataclass(frozen=True, slots=True)
class MarketTotals:
    """The home page's figures. Volume is leased GPU-seconds (gpus x duration of every lease)."""

    batches: int
    leases: int
    volume_gpu_seconds: int
    volume_24h_gpu_seconds: int
    active_leases: int
    providers_online: int
    depth: tuple[BookDepth, ...]
    last_post: RootPostRow | None
    cursor_block: int | None


@dataclass(frozen=True, slots=True)
class PricePoint:
    batch_id: int
    product: bytes
    price: int
    recorded_at: int


@dataclass(frozen=True, slots=True)
class ClearingRow:
    product: bytes
    clearing_price: int | None
    lease_price: int | None
    totals: dict[str, int]


@dataclass(frozen=True, slots=True)
class ConsideredOrder:
    batch_id: int
    order_hash: bytes
    side: str
    outcome: str
    gap: int | None


@dataclass(frozen=True, slots=True)
class ChainEventRow:
    block_number: int
    log_index: int
    tx_hash: bytes
    name: str
    account: str | None
    lease_id: int | None
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TxFinding:
    """What the store knows of a transaction hash: the batch whose root it posted (or was signed to post, or
    was replaced), and the mirrored events it emitted."""

    tx_hash: bytes
    root_batch_id: int | None
    root_state: str | None  # "posted", "signed" or "superseded"
    events: tuple[ChainEventRow, ...]

    @property
    def found(self) -> bool:
        return self.root_batch_id is not None or bool(self.events)


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """A provider as the market knows it: its registry state from the mirrored events, its hosts (from its
    asks: host id -> product -> most GPUs offered), and its delivery record."""

    address: str
    registered: bool
    stake: int
    exiting: bool
    hosts: dict[bytes, dict[bytes, int]]
    open_asks: int
    leases: int
    leases_completed: int
    leases_failed: int
    challenges_passed: int
    challenges_failed: int


def _event_row(row: Any) -> ChainEventRow:
    return ChainEventRow(
        block_number=row.block_number,
        log_index=row.log_index,
        tx_hash=row.tx_hash,
        name=row.name,
        account=row.account,
        lease_id=None if row.lease_id is None else int(row.lease_id),
        args=json.loads(row.args_json),
    )


class ExplorerReads:
    """The explorer's read queries over the store's engine; each method is one read transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with reading(self._engine) as connection:
            yield connection

    # --- Home

    def totals(self, now: int) -> MarketTotals:
        with self._reading() as c:
            batch_count = c.execute(select(func.count()).select_from(batches)).scalar_one()
            since = (
                select(func.min(batches.c.batch_id))
                .where(batches.c.recorded_at >= now - 86_400)
                .scalar_subquery()
            )
            gpu_seconds = leases.c.gpus * leases.c.duration
            lease_count, volume, volume_24h, longest = c.execute(  # one pass over the leases
                select(
                    func.count(),
                    func.coalesce(func.sum(gpu_seconds), 0),
                    func.coalesce(func.sum(case((leases.c.batch_id >= since, gpu_seconds), else_=0)), 0),
                    func.max(leases.c.duration),
                )
            ).one()
            active_count, active_providers = _active_leases(c, now, longest)
            online = set(
                c.execute(
                    select(orders.c.signer)
                    .where(orders.c.status == "open", orders.c.kind == "ask")
                    .distinct()
                ).scalars()
            )
            online.update(active_providers)
            depth = tuple(
                BookDepth(row.product, row.kind, int(row.n), int(row.gpu_seconds))
                for row in c.execute(
                    select(
                        orders.c.product,
                        orders.c.kind,
                        func.count().label("n"),
                        func.sum(orders.c.gpus * orders.c.duration).label("gpu_seconds"),
                    )
                    .where(orders.c.status == "open")
                    .group_by(orders.c.product, orders.c.kind)
                    .order_by(orders.c.product, orders.c.kind)
                )
            )
            post = c.execute(select(root_posts).order_by(root_posts.c.batch_id.desc()).limit(1)).one_or_none()
            cursor = c.execute(select(chain_cursor.c.cursor_json)).scalar_one_or_none()
            return MarketTotals(
                batches=int(batch_count),
                leases=int(lease_count),
                volume_gpu_seconds=int(volume),
                volume_24h_gpu_seconds=int(volume_24h),
                active_leases=active_count,
                providers_online=len(online),
                depth=depth,
                last_post=None if post is None else _post_row(post),
                cursor_block=None if cursor is None else int(json.loads(cursor)["next_block"]) - 1,
            )

    def price_history(self, last_batches: int) -> list[PricePoint]:
        """Clearing prices of the last `last_batches` batch ids (a primary-key range), oldest first."""
        with self._reading() as c:
            newest = c.execute(select(func.max(batches.c.batch_id))).scalar_one()
            if newest is None:
                return []
            rows = c.execute(
                select(
                    product_clearings.c.batch_id,
                    product_clearings.c.product,
                    product_clearings.c.clearing_price,
                    batches.c.recorded_at,
                )
                .select_from(
                    product_clearings.join(batches, batches.c.batch_id == product_clearings.c.batch_id)
                )
                .where(
                    product_clearings.c.batch_id > newest - last_batches,
                    product_clearings.c.clearing_price.is_not(None),
                )
                .order_by(product_clearings.c.batch_id)
            )
            return [PricePoint(r.batch_id, r.product, int(r.clearing_price), r.recorded_at) for r in rows]

    def latest_price(self, product: bytes) -> PricePoint | None:
        """The product's newest clearing price (walks the primary key backwards to the first)."""
        with self._reading() as c:
            row = c.execute(
                select(
                    product_clearings.c.batch_id,
                    product_clearings.c.clearing_price,
                    batches.c.recorded_at,
                )
                .select_from(
                    product_clearings.join(batches, batches.c.batch_id == product_clearings.c.batch_id)
                )
                .where(
                    product_clearings.c.product == product, product_clearings.c.clearing_price.is_not(None)
                )
                .order_by(product_clearings.c.batch_id.desc())
                .limit(1)
            ).one_or_none()
            return (
                None
                if row is None
                else PricePoint(row.batch_id, product, int(row.clearing_price), row.recorded_at)
            )

    # --- Batches

    def clearings(self, batch_id: int) -> list[ClearingRow]:
        with self._reading() as c:
            return [
                ClearingRow(
                    r.product,
                    None if r.clearing_price is None else int(r.clearing_price),
                    None if r.lease_price is None else int(r.lease_price),
                    {k: int(v) for k, v in json.loads(r.totals_json).items()},
                )
                for r in c.execute(
                    select(product_clearings)
                    .where(product_clearings.c.batch_id == batch_id)
                    .order_by(product_clearings.c.product)
                )
            ]

    def batch_leases(self, batch_id: int, limit: int, cursor: str | None) -> Page[LeaseRecord]:
        """The batch's leases (its matches), by lease id."""
        limit = check_limit(limit)
        after = int_cursor(cursor)
        with self._reading() as c:
            query = batch_ops.lease_query().where(leases.c.batch_id == batch_id)
            if after is not None:
                query = query.where(leases.c.lease_id > after)
            rows = c.execute(query.order_by(leases.c.lease_id).limit(limit + 1)).all()
            items = [batch_ops.lease_record(c, row) for row in rows[:limit]]
            return Page(items, str(items[-1].lease_id) if len(rows) > limit else None)

    def considered_orders(self, batch_id: int, limit: int, cursor: str | None) -> Page[ConsideredOrder]:
        """Every order the batch considered with its outcome, by order hash."""
        limit = check_limit(limit)
        if cursor is not None and not (cursor.startswith("0x") and len(cursor) == 66):
            raise InvalidPageError(f"cursor {cursor!r} is not one this listing returned")
        with self._reading() as c:
            query = select(batch_orders).where(batch_orders.c.batch_id == batch_id)
            if cursor is not None:
                query = query.where(batch_orders.c.order_hash > bytes.fromhex(cursor[2:]))
            rows = c.execute(query.order_by(batch_orders.c.order_hash).limit(limit + 1)).all()
            items = [
                ConsideredOrder(
                    r.batch_id, r.order_hash, r.side, r.outcome, None if r.gap is None else int(r.gap)
                )
                for r in rows[:limit]
            ]
            return Page(items, "0x" + items[-1].order_hash.hex() if len(rows) > limit else None)

    def batch_of_root(self, root: bytes) -> int | None:
        with self._reading() as c:
            return c.execute(
                select(batches.c.batch_id).where(batches.c.root == root).limit(1)
            ).scalar_one_or_none()

    def batch_exists(self, batch_id: int) -> bool:
        with self._reading() as c:
            return (
                c.execute(select(batches.c.batch_id).where(batches.c.batch_id == batch_id)).first()
                is not None
            )

    def lease_exists(self, lease_id: int) -> bool:
        with self._reading() as c:
            return (
                c.execute(select(leases.c.lease_id).where(leases.c.lease_id == lease_id)).first() is not None
            )

    # --- Orders

    def order_batches(self, order_hash: bytes) -> list[ConsideredOrder]:
        """Every batch that considered the order, oldest first, with the outcome there."""
        with self._reading() as c:
            return [
                ConsideredOrder(
                    r.batch_id, r.order_hash, r.side, r.outcome, None if r.gap is None else int(r.gap)
                )
                for r in c.execute(
                    select(batch_orders)
                    .where(batch_orders.c.order_hash == bytes(order_hash))
                    .order_by(batch_orders.c.batch_id)
                )
            ]

    def order_leases(self, order_hash: bytes) -> list[int]:
        """The leases the order is in: the one a bid filled, or those an ask hosts (found through the batches
        that matched it, so the lookup stays on indexes)."""
        with self._reading() as c:
            by_bid = (
                c.execute(select(leases.c.lease_id).where(leases.c.bid_hash == bytes(order_hash)))
                .scalars()
                .all()
            )
            if by_bid:
                return list(by_bid)
            matched_in = select(batch_orders.c.batch_id).where(
                batch_orders.c.order_hash == bytes(order_hash), batch_orders.c.outcome == "matched"
            )
            return list(
                c.execute(
                    select(leases.c.lease_id)
                    .where(leases.c.batch_id.in_(matched_in), leases.c.ask_hash == bytes(order_hash))
                    .order_by(leases.c.lease_id)
                ).scalars()
            )

    # --- Leases

    def lease_events(self, lease_id: int) -> list[ChainEventRow]:
        with self._reading() as c:
            return [
                _event_row(r)
                for r in c.execute(
                    select(chain_events)
                    .where(chain_events.c.lease_id == lease_id)
                    .order_by(chain_events.c.block_number, chain_events.c.log_index)
                )
            ]

    def receipts(self, lease_id: int, limit: int, cursor: str | None) -> Page[ReceiptRecord]:
        with self._reading() as c:
            return evidence_ops.receipts_of(c, lease_id, limit, cursor)

    def root_post(self, batch_id: int) -> RootPostRow | None:
        with self._reading() as c:
            row = c.execute(select(root_posts).where(root_posts.c.batch_id == batch_id)).one_or_none()
            return None if row is None else _post_row(row)

    # --- Accounts and providers

    def account_events(self, address: str, limit: int = 50) -> list[ChainEventRow]:
        """The account's mirrored events (deposits, withdrawals, registry changes, locks as buyer), newest
        first."""
        who = account(address)
        with self._reading() as c:
            return [
                _event_row(r)
                for r in c.execute(
                    select(chain_events)
                    .where(chain_events.c.account == who)
                    .order_by(chain_events.c.block_number.desc(), chain_events.c.log_index.desc())
                    .limit(limit)
                )
            ]

    def settled_totals(self, address: str) -> tuple[int, int, int]:
        """(paid to the account as a provider, paid by it as a buyer, refunded to it as a buyer), summed
        over the mirrored settle and reclaim events of its leases."""
        who = account(address)
        earned = spent = refunded = 0
        with self._reading() as c:
            rows = c.execute(
                select(leases.c.lease_id, leases.c.buyer, leases.c.provider).where(
                    or_(leases.c.buyer == who, leases.c.provider == who)
                )
            ).all()
            roles = {row.lease_id: (row.buyer == who, row.provider == who) for row in rows}
            for chunk in chunks(list(roles)):
                for r in c.execute(
                    select(chain_events.c.name, chain_events.c.lease_id, chain_events.c.args_json).where(
                        chain_events.c.lease_id.in_(chunk),
                        chain_events.c.name.in_(("LeaseSettled", "LeaseReclaimed")),
                    )
                ):
                    args = json.loads(r.args_json)
                    is_buyer, is_provider = roles[int(r.lease_id)]
                    paid = int(args.get("paid", 0))
                    if is_provider:
                        earned += paid
                    if is_buyer:
                        spent += paid
                        refunded += int(args["refunded"])
        return earned, spent, refunded

    def is_known_account(self, address: str) -> bool:
        who = account(address)
        with self._reading() as c:
            return any(
                c.execute(query.limit(1)).first() is not None
                for query in (
                    select(orders.c.order_hash).where(orders.c.signer == who),
                    select(leases.c.lease_id).where(or_(leases.c.buyer == who, leases.c.provider == who)),
                    select(chain_events.c.block_number).where(chain_events.c.account == who),
                )
            )

    def orders_of(self, signer: str, limit: int, cursor: str | None) -> Page[OrderRecord]:
        with self._reading() as c:
            return order_ops.orders_of(c, signer, limit, cursor)

    def providers(self, limit: int, cursor: str | None) -> Page[ProviderRow]:
        """Providers (registered on-chain, or that ever signed an ask), by address."""
        limit = check_limit(limit)
        with self._reading() as c:
            names = ("ProviderRegistered", "ExitRequested", "ProviderExited")
            addresses = set(
                c.execute(
                    select(chain_events.c.account).where(chain_events.c.name.in_(names)).distinct()
                ).scalars()
            )
            addresses.update(
                c.execute(select(orders.c.signer).where(orders.c.kind == "ask").distinct()).scalars()
            )
            ordered = sorted(a for a in addresses if a is not None and (cursor is None or a > cursor))
            page = ordered[:limit]
            rows = [_provider_row(c, address) for address in page]
            return Page(rows, page[-1] if len(ordered) > limit else None)

    def provider(self, address: str) -> ProviderRow:
        with self._reading() as c:
            return _provider_row(c, account(address))

    # --- Search

    def find_tx(self, tx_hash: bytes) -> TxFinding:
        """What the store knows of a transaction (the event lookup scans the mirror: search only)."""
        with self._reading() as c:
            batch_id: int | None = None
            state: str | None = None
            for table, name in (
                (root_posts, "posted"),
                (root_txs, "signed"),
                (superseded_root_txs, "superseded"),
            ):
                found = c.execute(
                    select(table.c.batch_id).where(table.c.tx_hash == tx_hash).limit(1)
                ).scalar()
                if found is not None:
                    batch_id, state = int(found), name
                    break
            events = tuple(
                _event_row(r)
                for r in c.execute(
                    select(chain_events)
                    .where(chain_events.c.tx_hash == tx_hash)
                    .order_by(chain_events.c.block_number, chain_events.c.log_index)
                )
            )
            return TxFinding(tx_hash, batch_id, state, events)

    def lease_of_receipt(self, receipt_hash: bytes) -> int | None:
        with self._reading() as c:
            return c.execute(
                select(receipts.c.lease_id).where(receipts.c.receipt_hash == receipt_hash)
            ).scalar_one_or_none()


def _post_row(row: Any) -> RootPostRow:
    return RootPostRow(row.batch_id, row.root, row.tx_hash, row.block_number, row.gas_used, row.posted_at)


def _active_leases(c: Connection, now: int, longest: int | None) -> tuple[int, set[str]]:
    """How many leases run now, and their providers: root posted, within their duration, evidence not
    ended, not lapsed, no final usage leaf. Only batches posted within the longest lease duration can hold
    one, so the candidates come from the batches from then on (a primary-key range), and the final-leaf check
    reads only those batches' leaves: the cost follows the recent leases, not the whole history."""
    if longest is None:
        return 0, set()
    first = c.execute(
        select(func.min(root_posts.c.batch_id)).where(root_posts.c.posted_at > now - longest)
    ).scalar_one()
    if first is None:
        return 0, set()
    finals = select(leaves.c.lease_id).where(leaves.c.batch_id >= first, leaves.c.kind == 2)
    providers = (
        c.execute(  # no GROUP BY: SQLite would then walk the provider index over every lease
            select(leases.c.provider)
            .select_from(leases.join(root_posts, root_posts.c.batch_id == leases.c.batch_id))
            .where(
                leases.c.batch_id >= first,
                root_posts.c.posted_at + leases.c.duration > now,
                leases.c.lease_id.not_in(finals),
                leases.c.lease_id.not_in(select(evidence_ends.c.lease_id)),
                leases.c.lease_id.not_in(select(lease_lapses.c.lease_id)),
            )
        )
        .scalars()
        .all()
    )
    return len(providers), set(providers)


def _provider_row(c: Connection, address: str) -> ProviderRow:
    stake = 0
    registered = exiting = False
    for name, args in chain_mirror._args(c, chain_events.c.account == address):  # noqa: SLF001
        if name == "ProviderRegistered":
            registered, exiting, stake = True, False, int(args["stake"])
        elif name == "StakeAdded":
            stake = int(args["stake"])
        elif name == "ProviderSlashed":
            stake = int(args["stake_left"])
        elif name == "ExitRequested":
            exiting = True
        elif name == "ProviderExited":
            registered, exiting, stake = False, False, 0
    hosts: dict[bytes, dict[bytes, int]] = {}
    open_asks = 0
    for r in c.execute(
        select(
            orders.c.host_id,
            orders.c.product,
            func.max(orders.c.gpus),
            func.sum(case((orders.c.status == "open", 1), else_=0)),
        )
        .where(orders.c.signer == address, orders.c.kind == "ask")
        .group_by(orders.c.host_id, orders.c.product)
    ):
        hosts.setdefault(r[0], {})[r[1]] = int(r[2])
        open_asks += int(r[3] or 0)
    of_provider = select(leases.c.lease_id).where(leases.c.provider == address)
    lease_total = c.execute(select(func.count()).select_from(of_provider.subquery())).scalar_one()
    failed_ids = select(evidence_ends.c.lease_id).where(
        evidence_ends.c.lease_id.in_(of_provider), evidence_ends.c.reason.in_(FAILED_ENDS)
    )
    completed = c.execute(  # a final usage leaf, and not a failure's
        select(func.count(func.distinct(leaves.c.lease_id))).where(
            leaves.c.lease_id.in_(of_provider), leaves.c.kind == 2, leaves.c.lease_id.not_in(failed_ids)
        )
    ).scalar_one()
    failed = c.execute(
        select(func.count()).where(
            evidence_ends.c.lease_id.in_(of_provider), evidence_ends.c.reason.in_(FAILED_ENDS)
        )
    ).scalar_one()
    verdicts: dict[str | None, int] = {}
    for outcome, count in c.execute(
        select(challenges.c.outcome, func.count())
        .where(challenges.c.lease_id.in_(of_provider))
        .group_by(challenges.c.outcome)
    ):
        verdicts[outcome] = int(count)
    return ProviderRow(
        address=address,
        registered=registered,
        stake=stake,
        exiting=exiting,
        hosts=hosts,
        open_asks=open_asks,
        leases=int(lease_total),
        leases_completed=int(completed),
        leases_failed=int(failed),
        challenges_passed=verdicts.get("passed", 0),
        challenges_failed=sum(n for k, n in verdicts.items() if k not in (None, "passed")),
    )


def order_records(c: Connection, hashes: Collection[bytes]) -> dict[bytes, OrderRecord]:
    found: dict[bytes, OrderRecord] = {}
    for chunk in chunks(list(hashes)):
        for row in c.execute(select(orders).where(orders.c.order_hash.in_(chunk))):
            found[bytes(row.order_hash)] = record_of(row)
    return found
