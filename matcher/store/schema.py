"""The store's tables (SQLAlchemy Core), one `MetaData`, and the schema version they make up.

Conventions (docs/store.md has the full description): big protocol integers are `Uint` (decimal text), bytes
are `Hex` (0x text), accounts are EIP-55 checksummed text, times are unix seconds in BIGINT. Whatever can be
enforced by the database is: primary keys for idempotence, foreign keys for references, CHECKs on
enumerations, a partial unique index so that one (account, nonce) has at most one open order, and composite
foreign keys so a root transaction or post can only name its own batch's root.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from matcher.store.columns import Hex, Uint

__all__ = [
    "SCHEMA_VERSION",
    "batch_orders",
    "batches",
    "blobs",
    "challenges",
    "chain_cursor",
    "chain_events",
    "evidence_ends",
    "lease_lapses",
    "leases",
    "leaves",
    "metadata",
    "order_status_changes",
    "orders",
    "product_clearings",
    "receipts",
    "root_posts",
    "root_txs",
    "schema_version",
    "stop_requests",
    "superseded_root_txs",
]

SCHEMA_VERSION = 2
"""Raise it with every change to the tables below, and teach `Store.open` to migrate from the old one.
Version 2 added the delivery-evidence tables (`EVIDENCE_TABLES`) and changed no version-1 table."""

ORDER_STATUSES = ("open", "matched", "cancelled", "expired")
CHALLENGE_OUTCOMES = ("passed", "late", "malformed", "wrong_commitment", "wrong_product")
EVIDENCE_END_REASONS = ("terminal", "rejected", "duration", "challenge_failed", "gap")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

# --- Orders

orders = Table(
    "orders",
    metadata,
    Column("order_hash", Hex, primary_key=True),
    Column("kind", String(3), nullable=False),
    Column("signer", String(42), nullable=False),
    Column("product", Hex, nullable=False),
    Column("nonce", Uint, nullable=False),
    Column("price", Uint, nullable=False),  # a bid's maxPricePerGpuHour, an ask's minPricePerGpuHour
    Column("gpus", Integer, nullable=False),
    Column("duration", BigInteger, nullable=False),  # a bid's duration, an ask's maxDuration
    Column("host_id", Hex),  # asks
    Column("job_spec_hash", Hex),  # bids
    Column("expiry", Uint, nullable=False),  # exact uint64
    Column("expiry_at", BigInteger, nullable=False),  # clamp64(expiry), for `expiry_at <= now`
    Column("max_cost", Uint),  # bids: gpus * duration * price // 3600
    Column("order_json", Text, nullable=False),  # gpuspot.protocol.to_json
    Column("signature", Hex, nullable=False),  # 65 bytes r || s || v
    Column("status", String(9), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("status_at", BigInteger, nullable=False),
    CheckConstraint("kind IN ('bid', 'ask')", name="kind"),
    CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="status"),
    CheckConstraint("(kind = 'bid') = (max_cost IS NOT NULL)", name="max_cost_iff_bid"),
)
Index("ix_orders_status_product", orders.c.status, orders.c.product)
Index("ix_orders_signer_received", orders.c.signer, orders.c.received_at, orders.c.order_hash)
Index("ix_orders_status_expiry", orders.c.status, orders.c.expiry_at)
# One (account, nonce) is held by at most one open order: intake checks it, the database guarantees it.
Index(
    "uq_orders_open_nonce",
    orders.c.signer,
    orders.c.nonce,
    unique=True,
    sqlite_where=text("status = 'open'"),
    postgresql_where=text("status = 'open'"),
)

order_status_changes = Table(
    "order_status_changes",
    metadata,
    Column("change_id", Integer, primary_key=True, autoincrement=True),
    Column("order_hash", Hex, ForeignKey("orders.order_hash"), nullable=False),
    Column("status", String(9), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("batch_id", BigInteger),
    Column("reason", Text),
    CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="status"),
)
Index("ix_order_status_changes_order", order_status_changes.c.order_hash, order_status_changes.c.change_id)

# --- Chain mirror: the raw decoded events; every view of them is a query, so a reorg is one DELETE.

chain_events = Table(
    "chain_events",
    metadata,
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("block_hash", Hex, nullable=False),
    Column("tx_hash", Hex, nullable=False),
    Column("name", String(32), nullable=False),  # the event's class name, e.g. "NoncesInvalidated"
    Column("account", String(42)),  # the account it is about (account, buyer or provider)
    Column("subject", Uint),  # word_pos, batch_id, ... (see matcher/store/chain_mirror.py)
    Column("lease_id", Uint),
    Column("args_json", Text, nullable=False),  # every argument: ints as decimal text, bytes as 0x hex
)
Index("ix_chain_events_name_account", chain_events.c.name, chain_events.c.account)
Index("ix_chain_events_lease", chain_events.c.lease_id)
Index("ix_chain_events_name_subject", chain_events.c.name, chain_events.c.subject)

chain_cursor = Table(
    "chain_cursor",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("cursor_json", Text, nullable=False),
    CheckConstraint("singleton = 1", name="one_row"),
)

# --- Batches

batches = Table(
    "batches",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seed", Hex, nullable=False),
    Column("rule", String(16), nullable=False),
    Column("code_version", Text, nullable=False),
    Column("commitment", Hex, nullable=False),  # BatchClearing.commitment: the inputs
    Column("root", Hex),  # the settlement root; NULL when the batch has no leaves (nothing to post)
    Column("lease_count", Integer, nullable=False),
    Column("leaf_count", Integer, nullable=False),
    Column("totals_json", Text, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    UniqueConstraint("batch_id", "root"),  # target of the root tx/post foreign keys
    CheckConstraint("batch_id > 0", name="positive_id"),
)

product_clearings = Table(
    "product_clearings",
    metadata,
    Column("batch_id", BigInteger, ForeignKey("batches.batch_id"), primary_key=True),
    Column("product", Hex, primary_key=True),
    Column("seed", Hex, nullable=False),
    Column("clearing_price", Uint),
    Column("lease_price", Uint),
    Column("commitment", Hex, nullable=False),
    Column("totals_json", Text, nullable=False),
)

batch_orders = Table(
    "batch_orders",
    metadata,
    Column("batch_id", BigInteger, ForeignKey("batches.batch_id"), primary_key=True),
    Column("order_hash", Hex, ForeignKey("orders.order_hash"), primary_key=True),
    Column("side", String(3), nullable=False),
    Column("outcome", String(24), nullable=False),  # "matched" or the clearing's Reason
    Column("gap", Uint),
)
Index("ix_batch_orders_order", batch_orders.c.order_hash, batch_orders.c.batch_id)

leases = Table(
    "leases",
    metadata,
    Column("lease_id", BigInteger, primary_key=True, autoincrement=False),
    Column("batch_id", BigInteger, ForeignKey("batches.batch_id"), nullable=False),
    Column("product", Hex, nullable=False),
    Column("bid_hash", Hex, ForeignKey("orders.order_hash"), nullable=False, unique=True),
    Column("ask_hash", Hex, ForeignKey("orders.order_hash"), nullable=False),
    Column("buyer", String(42), nullable=False),
    Column("provider", String(42), nullable=False),
    Column("host_id", Hex, nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("duration", BigInteger, nullable=False),
    Column("price", Uint, nullable=False),
    CheckConstraint("lease_id > 0", name="positive_id"),
)
Index("ix_leases_buyer", leases.c.buyer, leases.c.lease_id)
Index("ix_leases_provider", leases.c.provider, leases.c.lease_id)
Index("ix_leases_batch", leases.c.batch_id, leases.c.lease_id)

leaves = Table(
    "leaves",
    metadata,
    Column("batch_id", BigInteger, ForeignKey("batches.batch_id"), primary_key=True),
    Column("leaf_index", Integer, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("section", SmallInteger, nullable=False),  # 0: lease leaves, 1: usage leaves (kind 1 or 2)
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), nullable=False),
    Column("leaf_hash", Hex, nullable=False),
    Column("values_json", Text, nullable=False),  # SettlementLeaf.values(), ints as text, bytes as hex
    UniqueConstraint("batch_id", "section", "lease_id"),
    CheckConstraint("kind IN (0, 1, 2)", name="kind"),
    CheckConstraint("section = CASE WHEN kind = 0 THEN 0 ELSE 1 END", name="section"),
)

# --- Root posting: stored before sending, then the post as seen on-chain.

root_txs = Table(
    "root_txs",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("root", Hex, nullable=False),
    Column("sender", String(42), nullable=False),
    Column("nonce", Uint, nullable=False),
    Column("tx_hash", Hex, nullable=False, unique=True),
    Column("raw", Hex, nullable=False),
    Column("stored_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["batch_id", "root"], ["batches.batch_id", "batches.root"]),
)

superseded_root_txs = Table(
    "superseded_root_txs",
    metadata,
    Column("tx_hash", Hex, primary_key=True),
    Column("batch_id", BigInteger, ForeignKey("batches.batch_id"), nullable=False),
    Column("nonce", Uint, nullable=False),
    Column("raw", Hex, nullable=False),
    Column("superseded_at", BigInteger, nullable=False),
)

root_posts = Table(
    "root_posts",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("root", Hex, nullable=False),
    Column("tx_hash", Hex, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("gas_used", BigInteger, nullable=False),
    Column("posted_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["batch_id", "root"], ["batches.batch_id", "batches.root"]),
)

# --- Delivery evidence (schema version 2; docs/evidence.md): blobs, receipts, challenges, stops, ends.

blobs = Table(
    "blobs",
    metadata,
    Column("hash", Hex, primary_key=True),  # keccak256 of `data`: content-addressed, so immutable
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("stored_at", BigInteger, nullable=False),
)

receipts = Table(
    "receipts",
    metadata,
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("receipt_hash", Hex, nullable=False, unique=True),
    Column("time", BigInteger, nullable=False),  # the agent's clock, unix seconds
    Column("job_state", SmallInteger, nullable=False),
    Column("telemetry_json", Text, nullable=False),  # canonical JSON, exactly what was hashed
    Column("output_digest", Hex, nullable=False),
    Column("outputs_json", Text),  # canonical JSON of the outputs document, when the receipt carried it
    Column("previous", Hex, nullable=False),
    Column("signature", Hex, nullable=False),
    Column("received_at", BigInteger, nullable=False),  # the matcher's clock
    CheckConstraint("job_state BETWEEN 0 AND 6", name="job_state"),
)

challenges = Table(
    "challenges",
    metadata,
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("block_hash", Hex, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),
    Column("root", Hex),  # set by the commitment, with the four columns after it
    Column("commit_signature", Hex),
    Column("committed_at_ms", BigInteger),  # the matcher's clock when the root arrived
    Column("verifier_seed", Hex),  # drawn after the root arrived
    Column("rows_json", Text),  # the audit's rows, a JSON list
    Column("opening", LargeBinary),  # the RowOpening wire form, kept so anyone can re-verify
    Column("outcome", String(16)),  # NULL while open
    Column("reason", Text),
    Column("resolved_at_ms", BigInteger),
    CheckConstraint(f"outcome IN {CHALLENGE_OUTCOMES!r}", name="outcome"),
    CheckConstraint("(outcome IS NULL) = (resolved_at_ms IS NULL)", name="resolved"),
)
Index("ix_challenges_open", challenges.c.outcome, challenges.c.lease_id)

stop_requests = Table(
    "stop_requests",
    metadata,
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), primary_key=True),
    Column("signature", Hex, nullable=False),  # the buyer's personal_sign of `stop_message(lease_id)`
    Column("requested_at", BigInteger, nullable=False),
)

evidence_ends = Table(
    "evidence_ends",
    metadata,
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("proven_until", BigInteger),  # T; NULL when no receipt proved anything
    Column("proven_gpu_seconds", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=False),  # the matcher's clock when it recorded the end
    CheckConstraint(f"reason IN {EVIDENCE_END_REASONS!r}", name="reason"),
)

lease_lapses = Table(
    "lease_lapses",
    metadata,
    Column("lease_id", BigInteger, ForeignKey("leases.lease_id"), primary_key=True),
    Column("lapsed_at", BigInteger, nullable=False),  # the lock window passed with no lock: nobody owes
)

EVIDENCE_TABLES = (blobs, receipts, challenges, stop_requests, evidence_ends, lease_lapses)
"""The tables schema version 2 added; `Store.open` creates them in a version-1 database."""
