"""The agent's local state: one SQLite file that makes a `kill -9` harmless.

Everything the agent promised or sent is written here before it acts on it, and every write is one committed
transaction (WAL, `synchronous=FULL`):
- the ask it has out (so it never offers a GPU twice, even across restarts), and its nonce counter;
- its leases, the devices each holds, and where each job runs (the supervisor outlives the agent: jobs.py);
- every receipt, signed and stored *before* it is sent, then marked sent: a restart resends what the matcher
  may not have, and the hash chain continues from the stored last receipt;
- every transaction, signed and stored before it is broadcast, so a restart finds it and waits for it instead
  of sending a second one;
- every settlement: the usage leaf (lease, usage batch, figure) a transaction presents, so no leaf is ever
  presented twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "AgentState",
    "AskRow",
    "LeaseRow",
    "LeaseStatus",
    "ReceiptRow",
    "TxRow",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS asks (
    ask_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    price TEXT NOT NULL,
    expiry INTEGER NOT NULL,
    submission TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'open', 'closed')),
    created_at INTEGER NOT NULL,
    closed_reason TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    lease_id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL,
    buyer TEXT NOT NULL,
    bid_hash TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    price TEXT NOT NULL,
    job_spec_hash TEXT NOT NULL,
    devices TEXT NOT NULL,
    status TEXT NOT NULL,
    start INTEGER,
    workdir TEXT,
    job_state INTEGER,
    note TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    lease_id INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    receipt_hash TEXT NOT NULL,
    time INTEGER NOT NULL,
    job_state INTEGER NOT NULL,
    body TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (lease_id, sequence)
);
CREATE TABLE IF NOT EXISTS challenges (
    lease_id INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    answer_ms INTEGER,
    at INTEGER NOT NULL,
    PRIMARY KEY (lease_id, sequence)
);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    raw TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sent', 'mined', 'reverted', 'dropped')),
    lease_ids TEXT NOT NULL,
    gas_used INTEGER,
    sent_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settlements (
    lease_id INTEGER NOT NULL,
    usage_batch_id INTEGER NOT NULL,
    used_gpu_seconds INTEGER NOT NULL,
    final INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sent', 'settled', 'failed')),
    paid TEXT,
    PRIMARY KEY (lease_id, usage_batch_id)
);
"""


class LeaseStatus(StrEnum):
    """Where a lease is on this host.

    `new` (seen, devices held) -> `locking` (lock tx sent) -> `locked` -> `running` (job started) -> `ended`
    (final receipt sent) -> `settled` (final usage paid). Or `rejected` (refused before locking: the job spec
    did not match the bid, an input failed) or `lapsed` (never locked: the lock failed or its window passed).
    The devices of a lease are free again from `ended`, `settled`, `rejected` and `lapsed` on.
    """

    NEW = "new"
    LOCKING = "locking"
    LOCKED = "locked"
    RUNNING = "running"
    ENDED = "ended"
    SETTLED = "settled"
    REJECTED = "rejected"
    LAPSED = "lapsed"

    @property
    def holds_devices(self) -> bool:
        return self in (LeaseStatus.NEW, LeaseStatus.LOCKING, LeaseStatus.LOCKED, LeaseStatus.RUNNING)

    @property
    def done(self) -> bool:
        return self in (LeaseStatus.SETTLED, LeaseStatus.REJECTED, LeaseStatus.LAPSED)


@dataclass(frozen=True)
class AskRow:
    ask_hash: str
    nonce: int
    gpus: int
    price: int
    expiry: int
    submission: dict[str, Any]
    status: str
    created_at: int


@dataclass(frozen=True)
class LeaseRow:
    lease_id: int
    batch_id: int
    buyer: str
    bid_hash: str
    gpus: int
    duration: int
    price: int
    job_spec_hash: str
    devices: tuple[str, ...]
    status: LeaseStatus
    start: int | None
    workdir: str | None
    job_state: int | None
    note: str | None

    @property
    def ends_at(self) -> int | None:
        return None if self.start is None else self.start + self.duration


@dataclass(frozen=True)
class ReceiptRow:
    lease_id: int
    sequence: int
    receipt_hash: str
    time: int
    job_state: int
    body: dict[str, Any]
    sent: bool


@dataclass(frozen=True)
class TxRow:
    tx_hash: str
    kind: str
    nonce: int
    raw: str
    status: str
    lease_ids: tuple[int, ...]
    sent_at: int


class AgentState:
    """The SQLite state file. Methods are small transactions; callers hold no cursor across calls. Safe to
    share between the agent's loop and the metrics thread (one lock around the connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has agent state schema {version}, this agent reads {SCHEMA_VERSION}: "
                "use the agent version that wrote it, or move the file away to start afresh"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # --- meta

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0]["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (key, value, value),
            )

    def next_nonce(self) -> int:
        """A fresh order nonce, never handed out twice. The counter starts at the clock in microseconds, so
        a host that lost its state file does not reuse the nonces of its earlier orders."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'next_nonce'").fetchone()
            nonce = max(int(row["value"]) if row else 0, time.time_ns() // 1000)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('next_nonce', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(nonce + 1),),
            )
            return nonce

    # --- asks

    def add_ask(
        self,
        ask_hash: str,
        nonce: int,
        gpus: int,
        price: int,
        expiry: int,
        submission: dict[str, Any],
        now: int,
    ) -> None:
        """Records a signed ask before it is sent: until it is known closed, its GPUs count as offered."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO asks (ask_hash, nonce, gpus, price, expiry, submission, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'signed', ?)",
                (ask_hash, str(nonce), gpus, str(price), expiry, json.dumps(submission), now),
            )

    def set_ask_status(self, ask_hash: str, status: str, reason: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE asks SET status = ?, closed_reason = ? WHERE ask_hash = ?", (status, reason, ask_hash)
            )

    def live_asks(self) -> list[AskRow]:
        """Asks not known to be closed (signed but perhaps unsent, or open at the matcher)."""
        return [
            _ask(r) for r in self._rows("SELECT * FROM asks WHERE status != 'closed' ORDER BY created_at")
        ]

    # --- leases

    def add_lease(self, lease: LeaseRow, now: int) -> bool:
        """Records a newly seen lease with the devices it holds; False if it was already known."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO leases (lease_id, batch_id, buyer, bid_hash, gpus, duration, price,"
                " job_spec_hash, devices, status, start, workdir, job_state, note, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lease.lease_id,
                    lease.batch_id,
                    lease.buyer,
                    lease.bid_hash,
                    lease.gpus,
                    lease.duration,
                    str(lease.price),
                    lease.job_spec_hash,
                    json.dumps(list(lease.devices)),
                    lease.status.value,
                    lease.start,
                    lease.workdir,
                    lease.job_state,
                    lease.note,
                    now,
                    now,
                ),
            )
            return cursor.rowcount == 1

    def update_lease(self, lease_id: int, now: int, **changes: Any) -> None:
        allowed = {"status", "start", "workdir", "job_state", "note", "devices"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"update_lease takes {sorted(allowed)}, got {sorted(changes)}")
        values = {
            k: (v.value if isinstance(v, LeaseStatus) else json.dumps(list(v)) if k == "devices" else v)
            for k, v in changes.items()
        }
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            db.execute(
                f"UPDATE leases SET {assignments}, updated_at = ? WHERE lease_id = ?",
                (*values.values(), now, lease_id),
            )

    def lease(self, lease_id: int) -> LeaseRow | None:
        rows = self._rows("SELECT * FROM leases WHERE lease_id = ?", (lease_id,))
        return _lease(rows[0]) if rows else None

    def leases(self, *statuses: LeaseStatus) -> list[LeaseRow]:
        if statuses:
            marks = ", ".join("?" for _ in statuses)
            rows = self._rows(
                f"SELECT * FROM leases WHERE status IN ({marks}) ORDER BY lease_id",
                [s.value for s in statuses],
            )
        else:
            rows = self._rows("SELECT * FROM leases ORDER BY lease_id")
        return [_lease(r) for r in rows]

    def held_devices(self) -> set[str]:
        """Devices held by leases that are not over: never offered again until the lease ends."""
        held: set[str] = set()
        for lease in self.leases(*[s for s in LeaseStatus if s.holds_devices]):
            held.update(lease.devices)
        return held

    # --- receipts

    def add_receipt(
        self,
        lease_id: int,
        sequence: int,
        receipt_hash: str,
        time_: int,
        job_state: int,
        body: dict[str, Any],
    ) -> None:
        """Stores a signed receipt before it is sent; the primary key refuses a second receipt with the same
        sequence (the chain never forks)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO receipts (lease_id, sequence, receipt_hash, time, job_state, body, sent)"
                " VALUES (?, ?, ?, ?, ?, ?, 0)",
                (lease_id, sequence, receipt_hash, time_, job_state, json.dumps(body)),
            )

    def mark_receipt_sent(self, lease_id: int, sequence: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE receipts SET sent = 1 WHERE lease_id = ? AND sequence = ?", (lease_id, sequence)
            )

    def last_receipt(self, lease_id: int) -> ReceiptRow | None:
        rows = self._rows(
            "SELECT * FROM receipts WHERE lease_id = ? ORDER BY sequence DESC LIMIT 1", (lease_id,)
        )
        return _receipt(rows[0]) if rows else None

    def unsent_receipts(self) -> list[ReceiptRow]:
        return [
            _receipt(r)
            for r in self._rows("SELECT * FROM receipts WHERE sent = 0 ORDER BY lease_id, sequence")
        ]

    def count_receipts(self) -> tuple[int, int]:
        row = self._rows("SELECT COUNT(*) AS n, COALESCE(SUM(sent), 0) AS s FROM receipts")[0]
        return int(row["n"]), int(row["s"])

    # --- challenges

    def record_challenge(
        self, lease_id: int, sequence: int, outcome: str, reason: str | None, answer_ms: int | None, now: int
    ) -> bool:
        """Records a challenge's verdict once; False when it was already recorded."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO challenges (lease_id, sequence, outcome, reason, answer_ms, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (lease_id, sequence, outcome, reason, answer_ms, now),
            )
            return cursor.rowcount == 1

    def challenge_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT outcome, COUNT(*) AS n FROM challenges GROUP BY outcome")
        return {str(r["outcome"]): int(r["n"]) for r in rows}

    # --- transactions

    def add_tx(
        self,
        tx_hash: str,
        kind: str,
        nonce: int,
        raw: str,
        lease_ids: Sequence[int],
        now: int,
        settlements: Sequence[tuple[int, int, int, bool]] = (),
    ) -> None:
        """Stores a signed transaction before it is broadcast, with the usage leaves it presents
        `(lease_id, usage_batch_id, used, final)`: the (lease, usage batch) key refuses a leaf presented
        before, unless the earlier transaction failed."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO txs (tx_hash, kind, nonce, raw, status, lease_ids, sent_at)"
                " VALUES (?, ?, ?, ?, 'sent', ?, ?)",
                (tx_hash, kind, nonce, raw, json.dumps(list(lease_ids)), now),
            )
            for lease_id, usage_batch_id, used, final in settlements:
                db.execute(
                    "DELETE FROM settlements WHERE lease_id = ? AND usage_batch_id = ? AND status = 'failed'",
                    (lease_id, usage_batch_id),
                )
                db.execute(
                    "INSERT INTO settlements"
                    " (lease_id, usage_batch_id, used_gpu_seconds, final, tx_hash, status)"
                    " VALUES (?, ?, ?, ?, ?, 'sent')",
                    (lease_id, usage_batch_id, used, int(final), tx_hash),
                )

    def finish_tx(
        self, tx_hash: str, status: str, gas_used: int | None, paid: dict[int, int] | None = None
    ) -> None:
        """Marks a transaction mined, reverted or dropped, and its settlements settled (with what each lease
        was paid) or failed (a failed leaf may be presented again)."""
        with self._tx() as db:
            db.execute(
                "UPDATE txs SET status = ?, gas_used = ? WHERE tx_hash = ?", (status, gas_used, tx_hash)
            )
            if status == "mined":
                for row in db.execute(
                    "SELECT lease_id FROM settlements WHERE tx_hash = ?", (tx_hash,)
                ).fetchall():
                    amount = (paid or {}).get(int(row["lease_id"]))
                    db.execute(
                        "UPDATE settlements SET status = 'settled', paid = ?"
                        " WHERE tx_hash = ? AND lease_id = ?",
                        (None if amount is None else str(amount), tx_hash, row["lease_id"]),
                    )
            else:
                db.execute("UPDATE settlements SET status = 'failed' WHERE tx_hash = ?", (tx_hash,))

    def pending_txs(self) -> list[TxRow]:
        return [_tx(r) for r in self._rows("SELECT * FROM txs WHERE status = 'sent' ORDER BY nonce")]

    def tx_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT kind || '_' || status AS k, COUNT(*) AS n FROM txs GROUP BY kind, status")
        return {str(r["k"]): int(r["n"]) for r in rows}

    def gas_used(self) -> int:
        return int(self._rows("SELECT COALESCE(SUM(gas_used), 0) AS g FROM txs")[0]["g"])

    # --- settlements

    def presented(self, lease_id: int, usage_batch_id: int) -> bool:
        """Whether the leaf was presented in a transaction that did not fail (sent or settled)."""
        rows = self._rows(
            "SELECT 1 FROM settlements WHERE lease_id = ? AND usage_batch_id = ? AND status != 'failed'",
            (lease_id, usage_batch_id),
        )
        return bool(rows)

    def settled_gpu_seconds(self, lease_id: int) -> int:
        """The highest usage figure presented for the lease in a transaction that did not fail."""
        rows = self._rows(
            "SELECT MAX(used_gpu_seconds) AS u FROM settlements WHERE lease_id = ? AND status != 'failed'",
            (lease_id,),
        )
        value = rows[0]["u"]
        return 0 if value is None else int(value)

    def earnings(self) -> int:
        """Token base units the escrow paid this provider (the `LeaseSettled` events of its settlements)."""
        rows = self._rows("SELECT paid FROM settlements WHERE status = 'settled' AND paid IS NOT NULL")
        return sum(int(r["paid"]) for r in rows)


def _ask(r: sqlite3.Row) -> AskRow:
    return AskRow(
        r["ask_hash"],
        int(r["nonce"]),
        r["gpus"],
        int(r["price"]),
        r["expiry"],
        json.loads(r["submission"]),
        r["status"],
        r["created_at"],
    )


def _lease(r: sqlite3.Row) -> LeaseRow:
    return LeaseRow(
        lease_id=r["lease_id"],
        batch_id=r["batch_id"],
        buyer=r["buyer"],
        bid_hash=r["bid_hash"],
        gpus=r["gpus"],
        duration=r["duration"],
        price=int(r["price"]),
        job_spec_hash=r["job_spec_hash"],
        devices=tuple(json.loads(r["devices"])),
        status=LeaseStatus(r["status"]),
        start=r["start"],
        workdir=r["workdir"],
        job_state=r["job_state"],
        note=r["note"],
    )


def _receipt(r: sqlite3.Row) -> ReceiptRow:
    return ReceiptRow(
        r["lease_id"],
        r["sequence"],
        r["receipt_hash"],
        r["time"],
        r["job_state"],
        json.loads(r["body"]),
        bool(r["sent"]),
    )


def _tx(r: sqlite3.Row) -> TxRow:
    return TxRow(
        r["tx_hash"],
        r["kind"],
        r["nonce"],
        r["raw"],
        r["status"],
        tuple(json.loads(r["lease_ids"])),
        r["sent_at"],
    )
