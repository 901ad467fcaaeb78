"""`Store`: the matcher's durable state behind one object, each method one transaction.

Open it once per process with `Store.open(url)`; it is safe to share between threads (a connection pool; on
SQLite writers queue on the file lock). When a write method returns, its transaction is committed and, on
SQLite with synchronous=FULL (or PostgreSQL's default fsync), on disk: anything acknowledged to a client after
the call survives `kill -9` and a power cut.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import inspect, select, update
from sqlalchemy.engine import Connection, Engine

from gpuspot.protocol.evidence import Receipt
from gpuspot.protocol.leaves import SettlementLeaf
from gpuspot.protocol.orders import Signature
from matcher.chain.poster import PostedRoot, SignedRootTx
from matcher.chain.watcher import ChainCursor, WatcherItem
from matcher.clearing.book import OrderHash
from matcher.intake.validate import AcceptedOrder
from matcher.store import batches as batch_ops
from matcher.store import chain_mirror
from matcher.store import evidence as evidence_ops
from matcher.store import orders as order_ops
from matcher.store.engine import connect, reading, writing
from matcher.store.errors import OrderNotFoundError, SchemaVersionError, StoreError
from matcher.store.records import (
    BatchRecord,
    ChainLeaseState,
    ChallengeRecord,
    EvidenceEnd,
    EvidenceRecord,
    EvidenceSummary,
    Explanation,
    IntakeState,
    LeafRecord,
    LeaseRecord,
    NewBatch,
    OrderRecord,
    Page,
    PendingRoot,
    ReceiptRecord,
    StatusChange,
    UsageRecord,
)
from matcher.store.schema import EVIDENCE_TABLES, SCHEMA_VERSION, metadata, schema_version

__all__ = ["Store"]


def _ensure_schema(connection: Connection, url: str) -> None:
    if not inspect(connection).has_table(schema_version.name):
        metadata.create_all(connection)
        connection.execute(schema_version.insert(), {"version": SCHEMA_VERSION})
        return
    found = connection.execute(select(schema_version.c.version)).scalars().all()
    if len(found) != 1:
        raise SchemaVersionError(
            f"the store at {url} has {len(found)} schema version rows, not 1: it is damaged or not a gpuspot "
            "matcher database; point the matcher at another database"
        )
    version = found[0]
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store at {url} has schema version {version}, newer than this matcher's {SCHEMA_VERSION}: "
            "run the matcher version that wrote it (or a later one); never downgrade a store"
        )
    if version < SCHEMA_VERSION:
        _migrate(connection, version, url)


def _migrate(connection: Connection, version: int, url: str) -> None:
    """Brings an older schema up to `SCHEMA_VERSION` inside the opening transaction (all or nothing).
    1 -> 2 only adds the delivery-evidence tables; no version-1 table changed."""
    if version != 1:
        raise SchemaVersionError(
            f"the store at {url} has schema version {version} and this matcher has no migration from it to "
            f"{SCHEMA_VERSION}: run the matcher version that wrote it"
        )
    metadata.create_all(connection, tables=list(EVIDENCE_TABLES))
    connection.execute(update(schema_version).values(version=SCHEMA_VERSION))


class Store:
    """The matcher's data layer over SQLite (default) or PostgreSQL, with SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Opens the store at `url` (`sqlite:///path/to/matcher.db`, parent directories created, or
        `postgresql://user:password@host/db`), creating the schema in an empty database and refusing one of
        another schema version (`SchemaVersionError`)."""
        engine = connect(url)
        try:
            with writing(engine) as connection:
                _ensure_schema(connection, engine.url.render_as_string(hide_password=True))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- Orders

    def add_order(self, accepted: AcceptedOrder, received_at: int) -> tuple[OrderRecord, bool]:
        """Stores an accepted order as open; (the stored order, whether this call created it). Idempotent by
        order hash: the same signed order again, even from two threads at once, is one order.
        `NonceInUseError` if another open order of the signer holds its nonce."""
        result = self.add_orders([accepted], received_at)[0]
        if isinstance(result, StoreError):
            raise result
        return result

    def add_orders(
        self, accepted: Sequence[AcceptedOrder], received_at: int
    ) -> list[tuple[OrderRecord, bool] | StoreError]:
        """`add_order` for many orders in one transaction (one commit, one fsync): one result per item, an
        order that cannot be stored (its `StoreError` takes its place) leaving the others stored."""
        with writing(self._engine) as connection:
            return order_ops.add_orders(connection, accepted, received_at)

    def get_order(self, order_hash: bytes) -> OrderRecord | None:
        with reading(self._engine) as connection:
            return order_ops.get_order(connection, order_hash)

    def cancel_order(self, order_hash: bytes, at: int, reason: str) -> OrderRecord:
        """Open -> cancelled. `OrderNotOpenError` if it is matched, cancelled or expired,
        `OrderNotFoundError` if there is no such order."""
        with writing(self._engine) as connection:
            return order_ops.cancel_order(connection, order_hash, at, reason)

    def expire_orders(self, now: int) -> list[OrderHash]:
        """Open orders whose expiry is `<= now` become expired; their hashes."""
        with writing(self._engine) as connection:
            return order_ops.expire_orders(connection, now)

    def open_orders(self, product: bytes | None = None) -> list[OrderRecord]:
        """Open orders (of one product), by order hash."""
        with reading(self._engine) as connection:
            return order_ops.open_orders(connection, product)

    def order_history(self, order_hash: bytes) -> list[StatusChange]:
        with reading(self._engine) as connection:
            return order_ops.order_history(connection, order_hash)

    def reserved_for(self, buyer: str) -> int:
        """Sum of `max_cost` over the buyer's open bids (intake's `MarketView.reserved`)."""
        with reading(self._engine) as connection:
            return order_ops.reserved_for(connection, buyer)

    def open_nonce_owner(self, signer: str, nonce: int) -> OrderHash | None:
        """The open order holding `(signer, nonce)`, if any (`MarketView.open_order_with_nonce`)."""
        with reading(self._engine) as connection:
            return order_ops.open_nonce_owner(connection, signer, nonce)

    def intake_state(
        self,
        *,
        buyers: Collection[str],
        providers: Collection[str],
        nonces: Collection[tuple[str, int]],
        min_stake: int,
        lock_window: int,
        now: int,
    ) -> IntakeState:
        """Everything intake reads about these buyers, providers and (account, nonce) pairs (all checksummed),
        in one consistent read: a round of submissions costs a handful of queries, not a few per order."""
        with reading(self._engine) as connection:
            reservations = order_ops.open_bid_costs(connection, buyers)
            for buyer, cost in batch_ops.lockable_lease_costs(connection, buyers, lock_window, now).items():
                reservations[buyer] = reservations.get(buyer, 0) + cost
            return IntakeState(
                reservations=reservations,
                closed_nonces=frozenset(chain_mirror.closed_nonces(connection, nonces)),
                open_nonces=order_ops.open_nonce_owners(connection, nonces),
                pending_withdrawals=frozenset(chain_mirror.pending_withdrawals(connection, buyers)),
                active_providers=frozenset(chain_mirror.active_providers(connection, providers, min_stake)),
            )

    def orders_of(self, signer: str, limit: int = 50, cursor: str | None = None) -> Page[OrderRecord]:
        with reading(self._engine) as connection:
            return order_ops.orders_of(connection, signer, limit, cursor)

    # --- Chain mirror

    def apply_chain(
        self, items: Iterable[WatcherItem], cursor: ChainCursor, at: int | None = None, min_stake: int = 0
    ) -> int:
        """One watcher poll, atomically with its new cursor: events stored, a `Reorg` marker rewinding first,
        and the open orders the events make unfillable cancelled at `at` (default: now), e.g. on an on-chain
        nonce invalidation. Returns the number of events stored."""
        at = int(time.time()) if at is None else at
        with writing(self._engine) as connection:
            return chain_mirror.apply_chain(connection, items, cursor, at, min_stake)

    def rewind_chain(self, from_block: int) -> int:
        """Forgets the events of blocks >= `from_block` (a reorg) and moves the cursor back to it."""
        with writing(self._engine) as connection:
            return chain_mirror.rewind_chain(connection, from_block)

    def chain_cursor(self) -> ChainCursor | None:
        """The saved watcher cursor; None before the first poll (start from the deployment block)."""
        with reading(self._engine) as connection:
            return chain_mirror.chain_cursor_of(connection)

    def is_nonce_closed(self, signer: str, nonce: int) -> bool:
        with reading(self._engine) as connection:
            return chain_mirror.is_nonce_closed(connection, signer, nonce)

    def withdrawal_pending(self, signer: str) -> bool:
        with reading(self._engine) as connection:
            return chain_mirror.withdrawal_pending(connection, signer)

    def provider_active(self, provider: str, min_stake: int = 0) -> bool:
        with reading(self._engine) as connection:
            return chain_mirror.provider_active(connection, provider, min_stake)

    def posted_root(self, batch_id: int) -> tuple[bytes, int] | None:
        """(root, posted_at) from the batch's `RootPosted` event, if the mirror has one."""
        with reading(self._engine) as connection:
            return chain_mirror.posted_root(connection, batch_id)

    def chain_lease(self, lease_id: int) -> ChainLeaseState:
        with reading(self._engine) as connection:
            return chain_mirror.lease_state(connection, lease_id)

    # --- Batches

    def next_batch_id(self) -> int:
        with reading(self._engine) as connection:
            return batch_ops.next_batch_id(connection)

    def next_lease_id(self) -> int:
        with reading(self._engine) as connection:
            return batch_ops.next_lease_id(connection)

    def record_batch(self, batch: NewBatch) -> BatchRecord:
        """Records a cleared batch completely or not at all (see `batches.record_batch`)."""
        with writing(self._engine) as connection:
            return batch_ops.record_batch(connection, batch)

    def record_root_tx(
        self, batch_id: int, signed: SignedRootTx, at: int, replaces: bytes | None = None
    ) -> bool:
        """Stores the batch's signed root transaction; call it BEFORE sending. Same tx again: no-op."""
        with writing(self._engine) as connection:
            return batch_ops.record_root_tx(connection, batch_id, signed, at, replaces)

    def mark_root_posted(self, batch_id: int, posted: PostedRoot) -> bool:
        with writing(self._engine) as connection:
            return batch_ops.mark_root_posted(connection, batch_id, posted)

    def batches_awaiting_root(self) -> list[PendingRoot]:
        with reading(self._engine) as connection:
            return batch_ops.batches_awaiting_root(connection)

    def get_batch(self, batch_id: int) -> BatchRecord | None:
        with reading(self._engine) as connection:
            return batch_ops.get_batch(connection, batch_id)

    def list_batches(self, limit: int = 50, cursor: str | None = None) -> Page[BatchRecord]:
        with reading(self._engine) as connection:
            return batch_ops.list_batches(connection, limit, cursor)

    def batch_leaves(self, batch_id: int, limit: int = 100, cursor: str | None = None) -> Page[LeafRecord]:
        with reading(self._engine) as connection:
            return batch_ops.batch_leaves(connection, batch_id, limit, cursor)

    def settlement_leaves(self, batch_id: int) -> list[SettlementLeaf]:
        """Every leaf of the batch's settlement tree, in leaf order (none: empty); what rebuilds the tree."""
        leaves: list[SettlementLeaf] = []
        cursor: str | None = None
        with reading(self._engine) as connection:
            while True:
                page = batch_ops.batch_leaves(connection, batch_id, 500, cursor)
                leaves.extend(record.leaf for record in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return leaves

    def get_lease(self, lease_id: int) -> LeaseRecord:
        with reading(self._engine) as connection:
            return batch_ops.get_lease(connection, lease_id)

    def leases_of(self, who: str, limit: int = 50, cursor: str | None = None) -> Page[LeaseRecord]:
        with reading(self._engine) as connection:
            return batch_ops.leases_of(connection, who, limit, cursor)

    def explanation(self, order_hash: bytes) -> Explanation | None:
        """Why the order did not trade in the last batch that considered it (None: none did, or it traded)."""
        with reading(self._engine) as connection:
            if order_ops.get_order(connection, order_hash) is None:
                raise OrderNotFoundError(f"no order has hash 0x{bytes(order_hash).hex()}: check the hash")
            return batch_ops.explanation(connection, order_hash)

    # --- Delivery evidence (docs/evidence.md)

    def put_blob(self, blob_hash: bytes, data: bytes, at: int) -> bool:
        """Stores a blob under its keccak256 (checked by the caller); whether it was new."""
        with writing(self._engine) as connection:
            return evidence_ops.put_blob(connection, blob_hash, data, at)

    def get_blob(self, blob_hash: bytes) -> bytes | None:
        with reading(self._engine) as connection:
            return evidence_ops.get_blob(connection, blob_hash)

    def blob_totals(self) -> tuple[int, int]:
        """(number of blobs, total bytes)."""
        with reading(self._engine) as connection:
            return evidence_ops.blob_totals(connection)

    def add_receipt(
        self, receipt: Receipt, receipt_hash: bytes, signature: Signature, received_at: int
    ) -> bool:
        """Stores an accepted receipt; False (nothing written) when its (lease, sequence) is stored."""
        with writing(self._engine) as connection:
            return evidence_ops.add_receipt(connection, receipt, receipt_hash, signature, received_at)

    def get_receipt(self, lease_id: int, sequence: int) -> ReceiptRecord | None:
        with reading(self._engine) as connection:
            return evidence_ops.get_receipt(connection, lease_id, sequence)

    def receipts_of(self, lease_id: int, limit: int = 100, cursor: str | None = None) -> Page[ReceiptRecord]:
        """The lease's receipts in sequence order (`LeaseNotFoundError` for an unknown lease)."""
        with reading(self._engine) as connection:
            evidence_ops.check_lease(connection, lease_id)
            return evidence_ops.receipts_of(connection, lease_id, limit, cursor)

    def evidence_of(self, lease_id: int) -> EvidenceRecord:
        """The lease, its start, receipts, challenges, end, lapse, usage and stop request: one snapshot."""
        with reading(self._engine) as connection:
            return evidence_ops.evidence_of(connection, lease_id)

    def evidence_candidates(self) -> list[int]:
        """Posted leases that are neither lapsed nor finally settled in a usage leaf."""
        with reading(self._engine) as connection:
            return evidence_ops.evidence_candidates(connection)

    def running_leases(self) -> list[int]:
        """Leases whose newest receipt is `running` and whose evidence has no recorded end."""
        with reading(self._engine) as connection:
            return evidence_ops.running_leases(connection)

    def add_challenge(self, record: ChallengeRecord) -> bool:
        with writing(self._engine) as connection:
            return evidence_ops.add_challenge(connection, record)

    def get_challenge(self, lease_id: int, sequence: int) -> ChallengeRecord | None:
        with reading(self._engine) as connection:
            return evidence_ops.get_challenge(connection, lease_id, sequence)

    def lease_challenges(self, lease_id: int) -> list[ChallengeRecord]:
        with reading(self._engine) as connection:
            evidence_ops.check_lease(connection, lease_id)
            return evidence_ops.lease_challenges(connection, lease_id)

    def open_challenges(self, provider: str | None = None) -> list[ChallengeRecord]:
        with reading(self._engine) as connection:
            return evidence_ops.open_challenges(connection, provider)

    def commit_challenge(
        self,
        lease_id: int,
        sequence: int,
        *,
        root: bytes,
        signature: Signature,
        committed_at_ms: int,
        verifier_seed: bytes,
        rows: tuple[int, ...],
    ) -> bool:
        """Records a challenge's root and audit, once (False: already committed or resolved)."""
        with writing(self._engine) as connection:
            return evidence_ops.commit_challenge(
                connection,
                lease_id,
                sequence,
                root=root,
                signature=signature,
                committed_at_ms=committed_at_ms,
                verifier_seed=verifier_seed,
                rows=rows,
            )

    def resolve_challenge(
        self,
        lease_id: int,
        sequence: int,
        *,
        outcome: str,
        reason: str,
        resolved_at_ms: int,
        opening: bytes | None = None,
    ) -> bool:
        """Records a challenge's verdict, once (False: already resolved)."""
        with writing(self._engine) as connection:
            return evidence_ops.resolve_challenge(
                connection,
                lease_id,
                sequence,
                outcome=outcome,
                reason=reason,
                resolved_at_ms=resolved_at_ms,
                opening=opening,
            )

    def challenge_opening(self, lease_id: int, sequence: int) -> bytes | None:
        with reading(self._engine) as connection:
            return evidence_ops.challenge_opening(connection, lease_id, sequence)

    def request_stop(self, lease_id: int, signature: bytes, at: int) -> tuple[int, bool]:
        """Records the buyer's stop request (the first stands): (its time, whether this call made it)."""
        with writing(self._engine) as connection:
            return evidence_ops.request_stop(connection, lease_id, signature, at)

    def record_evidence_end(self, end: EvidenceEnd) -> bool:
        with writing(self._engine) as connection:
            return evidence_ops.record_evidence_end(connection, end)

    def record_lapse(self, lease_id: int, at: int) -> bool:
        with writing(self._engine) as connection:
            return evidence_ops.record_lapse(connection, lease_id, at)

    def posted_usage(self, lease_ids: Collection[int]) -> dict[int, UsageRecord]:
        """Each lease's newest usage leaf in a posted batch."""
        with reading(self._engine) as connection:
            return evidence_ops.posted_usage(connection, lease_ids)

    def provider_leases(
        self, provider: str, *, active: bool = False, limit: int = 50, cursor: str | None = None
    ) -> Page[LeaseRecord]:
        with reading(self._engine) as connection:
            return evidence_ops.provider_leases(connection, provider, active, limit, cursor)

    def provider_summary(self, provider: str) -> EvidenceSummary:
        with reading(self._engine) as connection:
            return evidence_ops.provider_summary(connection, provider)
