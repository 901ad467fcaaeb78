"""Delivery evidence: blobs, receipts, challenges, stop requests, evidence ends and lapses, and the reads the
proven-time rule and the provider's views need. Functions over one connection; the `Store` wraps each in a
transaction.

Writes are idempotent or conditional, so a retried request or two racing ones leave one row: a receipt is
keyed by (lease, sequence), a challenge's commitment is an `UPDATE ... WHERE root IS NULL AND outcome IS
NULL`, its verdict an `UPDATE ... WHERE outcome IS NULL`; an end, a lapse and a stop request are one row
per lease.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, exists, func, not_, select, update
from sqlalchemy.engine import Connection, Row

from gpuspot.protocol.evidence import JobState, Receipt, canonical_json
from gpuspot.protocol.leaves import LeafKind, SettlementLeaf
from gpuspot.protocol.orders import Signature
from matcher.store import chain_mirror
from matcher.store.batches import get_lease, leaf_of, lease_query, lease_record
from matcher.store.engine import chunks, insert_or_ignore
from matcher.store.errors import LeaseNotFoundError
from matcher.store.orders import account
from matcher.store.pages import check_limit, int_cursor
from matcher.store.records import (
    ChallengeRecord,
    EvidenceEnd,
    EvidenceRecord,
    EvidenceSummary,
    LeaseRecord,
    Page,
    ReceiptHead,
    ReceiptRecord,
    UsageRecord,
)
from matcher.store.schema import (
    batches,
    blobs,
    challenges,
    evidence_ends,
    lease_lapses,
    leases,
    leaves,
    orders,
    receipts,
    root_posts,
    stop_requests,
)

__all__ = [
    "add_challenge",
    "add_receipt",
    "blob_totals",
    "challenge_opening",
    "commit_challenge",
    "evidence_candidates",
    "evidence_of",
    "get_blob",
    "get_challenge",
    "get_receipt",
    "lease_challenges",
    "lease_start",
    "open_challenges",
    "posted_usage",
    "provider_leases",
    "provider_summary",
    "put_blob",
    "receipts_of",
    "record_evidence_end",
    "record_lapse",
    "request_stop",
    "resolve_challenge",
    "running_leases",
]

FAILED_END_REASONS = ("challenge_failed", "gap")


# --- Blobs


def put_blob(connection: Connection, blob_hash: bytes, data: bytes, at: int) -> bool:
    """Stores the blob under its hash (the caller checked it); whether it was new."""
    row = {"hash": bytes(blob_hash), "data": bytes(data), "size": len(data), "stored_at": at}
    return insert_or_ignore(connection, blobs, row, ["hash"]) == 1


def get_blob(connection: Connection, blob_hash: bytes) -> bytes | None:
    data = connection.execute(
        select(blobs.c.data).where(blobs.c.hash == bytes(blob_hash))
    ).scalar_one_or_none()
    return None if data is None else bytes(data)


def blob_totals(connection: Connection) -> tuple[int, int]:
    """(number of blobs, their bytes)."""
    count, size = connection.execute(select(func.count(), func.coalesce(func.sum(blobs.c.size), 0))).one()
    return int(count), int(size)


# --- Receipts


def _receipt_record(row: Row[Any]) -> ReceiptRecord:
    receipt = Receipt(
        lease_id=row.lease_id,
        sequence=row.sequence,
        time=row.time,
        job_state=JobState(row.job_state),
        telemetry=json.loads(row.telemetry_json),
        output_digest=row.output_digest,
        previous=row.previous,
        outputs=None if row.outputs_json is None else json.loads(row.outputs_json),
    )
    return ReceiptRecord(receipt, row.receipt_hash, Signature(row.signature), row.received_at)


def add_receipt(
    connection: Connection, receipt: Receipt, receipt_hash: bytes, signature: Signature, received_at: int
) -> bool:
    """Stores an accepted receipt; False (nothing written) when its (lease, sequence) is already stored."""
    row = {
        "lease_id": receipt.lease_id,
        "sequence": receipt.sequence,
        "receipt_hash": receipt_hash,
        "time": receipt.time,
        "job_state": int(receipt.job_state),
        "telemetry_json": canonical_json(receipt.telemetry).decode(),
        "output_digest": receipt.output_digest,
        "outputs_json": None if receipt.outputs is None else canonical_json(receipt.outputs).decode(),
        "previous": receipt.previous,
        "signature": signature.value,
        "received_at": received_at,
    }
    return insert_or_ignore(connection, receipts, row, ["lease_id", "sequence"]) == 1


def get_receipt(connection: Connection, lease_id: int, sequence: int) -> ReceiptRecord | None:
    row = connection.execute(
        select(receipts).where(receipts.c.lease_id == lease_id, receipts.c.sequence == sequence)
    ).one_or_none()
    return None if row is None else _receipt_record(row)


def receipts_of(connection: Connection, lease_id: int, limit: int, cursor: str | None) -> Page[ReceiptRecord]:
    """The lease's receipts in sequence order; the cursor is the last sequence returned."""
    limit = check_limit(limit)
    after = int_cursor(cursor)
    query = select(receipts).where(receipts.c.lease_id == lease_id)
    if after is not None:
        query = query.where(receipts.c.sequence > after)
    rows = connection.execute(query.order_by(receipts.c.sequence).limit(limit + 1)).all()
    items = [_receipt_record(row) for row in rows[:limit]]
    return Page(items, str(items[-1].receipt.sequence) if len(rows) > limit else None)


# --- Challenges


def _challenge_record(row: Row[Any]) -> ChallengeRecord:
    return ChallengeRecord(
        lease_id=row.lease_id,
        sequence=row.sequence,
        block_hash=row.block_hash,
        block_number=row.block_number,
        n=row.n,
        issued_at_ms=row.issued_at_ms,
        deadline_ms=row.deadline_ms,
        root=row.root,
        commit_signature=None if row.commit_signature is None else Signature(row.commit_signature),
        committed_at_ms=row.committed_at_ms,
        verifier_seed=row.verifier_seed,
        rows=None if row.rows_json is None else tuple(json.loads(row.rows_json)),
        has_opening=bool(row.has_opening),
        outcome=row.outcome,
        reason=row.reason,
        resolved_at_ms=row.resolved_at_ms,
    )


def _challenge_query() -> Any:
    columns = [c for c in challenges.c if c.name != "opening"]
    return select(*columns, challenges.c.opening.is_not(None).label("has_opening"))


def add_challenge(connection: Connection, record: ChallengeRecord) -> bool:
    """Stores a newly issued challenge; False when (lease, sequence) already has one."""
    row = {
        "lease_id": record.lease_id,
        "sequence": record.sequence,
        "block_hash": record.block_hash,
        "block_number": record.block_number,
        "n": record.n,
        "issued_at_ms": record.issued_at_ms,
        "deadline_ms": record.deadline_ms,
    }
    return insert_or_ignore(connection, challenges, row, ["lease_id", "sequence"]) == 1


def get_challenge(connection: Connection, lease_id: int, sequence: int) -> ChallengeRecord | None:
    row = connection.execute(
        _challenge_query().where(challenges.c.lease_id == lease_id, challenges.c.sequence == sequence)
    ).one_or_none()
    return None if row is None else _challenge_record(row)


def lease_challenges(connection: Connection, lease_id: int) -> list[ChallengeRecord]:
    rows = connection.execute(
        _challenge_query().where(challenges.c.lease_id == lease_id).order_by(challenges.c.sequence)
    )
    return [_challenge_record(row) for row in rows]


def open_challenges(connection: Connection, provider: str | None = None) -> list[ChallengeRecord]:
    """Challenges without a verdict (of one provider's leases), by lease and sequence."""
    query = _challenge_query().where(challenges.c.outcome.is_(None))
    if provider is not None:
        query = query.where(
            challenges.c.lease_id.in_(select(leases.c.lease_id).where(leases.c.provider == account(provider)))
        )
    rows = connection.execute(query.order_by(challenges.c.lease_id, challenges.c.sequence))
    return [_challenge_record(row) for row in rows]


def commit_challenge(
    connection: Connection,
    lease_id: int,
    sequence: int,
    *,
    root: bytes,
    signature: Signature,
    committed_at_ms: int,
    verifier_seed: bytes,
    rows: tuple[int, ...],
) -> bool:
    """Records the provider's root and the audit drawn for it, once; False when the challenge is already
    committed or resolved (nothing written)."""
    updated = connection.execute(
        update(challenges)
        .where(
            challenges.c.lease_id == lease_id,
            challenges.c.sequence == sequence,
            challenges.c.root.is_(None),
            challenges.c.outcome.is_(None),
        )
        .values(
            root=root,
            commit_signature=signature.value,
            committed_at_ms=committed_at_ms,
            verifier_seed=verifier_seed,
            rows_json=json.dumps(list(rows), separators=(",", ":")),
        )
    ).rowcount
    return bool(updated)


def resolve_challenge(
    connection: Connection,
    lease_id: int,
    sequence: int,
    *,
    outcome: str,
    reason: str,
    resolved_at_ms: int,
    opening: bytes | None = None,
) -> bool:
    """Records the verdict (and the opening it was drawn from), once; False when already resolved."""
    values: dict[str, Any] = {"outcome": outcome, "reason": reason, "resolved_at_ms": resolved_at_ms}
    if opening is not None:
        values["opening"] = bytes(opening)
    updated = connection.execute(
        update(challenges)
        .where(
            challenges.c.lease_id == lease_id,
            challenges.c.sequence == sequence,
            challenges.c.outcome.is_(None),
        )
        .values(**values)
    ).rowcount
    return bool(updated)


def challenge_opening(connection: Connection, lease_id: int, sequence: int) -> bytes | None:
    data = connection.execute(
        select(challenges.c.opening).where(
            challenges.c.lease_id == lease_id, challenges.c.sequence == sequence
        )
    ).scalar_one_or_none()
    return None if data is None else bytes(data)


# --- Stops, ends and lapses


def request_stop(connection: Connection, lease_id: int, signature: bytes, at: int) -> tuple[int, bool]:
    """Records the buyer's stop request (the first one stands); (its time, whether this call made it)."""
    get_lease(connection, lease_id)
    created = insert_or_ignore(
        connection,
        stop_requests,
        {"lease_id": lease_id, "signature": bytes(signature), "requested_at": at},
        ["lease_id"],
    )
    requested_at = connection.execute(
        select(stop_requests.c.requested_at).where(stop_requests.c.lease_id == lease_id)
    ).scalar_one()
    return int(requested_at), created == 1


def record_evidence_end(connection: Connection, end: EvidenceEnd) -> bool:
    """Records where the lease's evidence ended; the first record stands (False: one was already there)."""
    row = {
        "lease_id": end.lease_id,
        "reason": end.reason,
        "proven_until": end.proven_until,
        "proven_gpu_seconds": end.proven_gpu_seconds,
        "ended_at": end.ended_at,
    }
    return insert_or_ignore(connection, evidence_ends, row, ["lease_id"]) == 1


def record_lapse(connection: Connection, lease_id: int, at: int) -> bool:
    """Records that the lease's lock window passed without a lock: no usage is ever committed for it."""
    return (
        insert_or_ignore(connection, lease_lapses, {"lease_id": lease_id, "lapsed_at": at}, ["lease_id"]) == 1
    )


# --- Reads for the proven-time rule and the views


def lease_start(connection: Connection, batch_id: int) -> int | None:
    """The start of the batch's leases: its root's `postedAt`, from the matcher's own post record or, failing
    that, the mirrored `RootPosted` event; None while unposted."""
    posted_at = connection.execute(
        select(root_posts.c.posted_at).where(root_posts.c.batch_id == batch_id)
    ).scalar_one_or_none()
    if posted_at is not None:
        return int(posted_at)
    mirrored = chain_mirror.posted_root(connection, batch_id)
    return None if mirrored is None else mirrored[1]


def _lease_leaf(connection: Connection, lease: LeaseRecord) -> SettlementLeaf:
    text = connection.execute(
        select(leaves.c.values_json).where(
            leaves.c.batch_id == lease.batch_id, leaves.c.lease_id == lease.lease_id, leaves.c.kind == 0
        )
    ).scalar_one()
    return leaf_of(text)


def _usage(connection: Connection, lease_ids: Collection[int]) -> dict[int, list[UsageRecord]]:
    """Each lease's usage leaves, in batch order."""
    found: dict[int, list[UsageRecord]] = {}
    for chunk in chunks(lease_ids):
        rows = connection.execute(
            select(
                leaves.c.lease_id,
                leaves.c.batch_id,
                leaves.c.values_json,
                batches.c.recorded_at,
                root_posts.c.batch_id.label("posted"),
            )
            .select_from(
                leaves.join(batches, batches.c.batch_id == leaves.c.batch_id).outerjoin(
                    root_posts, root_posts.c.batch_id == leaves.c.batch_id
                )
            )
            .where(leaves.c.lease_id.in_(chunk), leaves.c.section == 1)
            .order_by(leaves.c.batch_id)
        )
        for row in rows:
            found.setdefault(row.lease_id, []).append(
                UsageRecord(row.batch_id, leaf_of(row.values_json), row.recorded_at, row.posted is not None)
            )
    return found


def evidence_of(connection: Connection, lease_id: int) -> EvidenceRecord:
    """Everything about one lease's evidence, in one snapshot (`LeaseNotFoundError` for an unknown id)."""
    lease = get_lease(connection, lease_id)
    heads = tuple(
        ReceiptHead(row.sequence, row.time, JobState(row.job_state), row.receipt_hash)
        for row in connection.execute(
            select(receipts.c.sequence, receipts.c.time, receipts.c.job_state, receipts.c.receipt_hash)
            .where(receipts.c.lease_id == lease_id)
            .order_by(receipts.c.sequence)
        )
    )
    end_row = connection.execute(
        select(evidence_ends).where(evidence_ends.c.lease_id == lease_id)
    ).one_or_none()
    end = (
        None
        if end_row is None
        else EvidenceEnd(
            lease_id, end_row.reason, end_row.proven_until, end_row.proven_gpu_seconds, end_row.ended_at
        )
    )
    job_spec_hash = connection.execute(
        select(orders.c.job_spec_hash).where(orders.c.order_hash == bytes(lease.bid_hash))
    ).scalar_one()
    return EvidenceRecord(
        lease=lease,
        start=lease_start(connection, lease.batch_id),
        lease_leaf=_lease_leaf(connection, lease),
        receipts=heads,
        challenges=tuple(lease_challenges(connection, lease_id)),
        end=end,
        lapsed_at=connection.execute(
            select(lease_lapses.c.lapsed_at).where(lease_lapses.c.lease_id == lease_id)
        ).scalar_one_or_none(),
        usage=tuple(_usage(connection, [lease_id]).get(lease_id, [])),
        stop_requested_at=connection.execute(
            select(stop_requests.c.requested_at).where(stop_requests.c.lease_id == lease_id)
        ).scalar_one_or_none(),
        job_spec_hash=job_spec_hash,
    )


def _final_leaf_exists() -> Any:
    return exists().where(leaves.c.lease_id == leases.c.lease_id, leaves.c.kind == int(LeafKind.FINAL_USAGE))


def _lapsed() -> Any:
    return exists().where(lease_lapses.c.lease_id == leases.c.lease_id)


def evidence_candidates(connection: Connection) -> list[int]:
    """Leases the batch loop still owes a decision: root posted, not lapsed, no final usage leaf yet."""
    return list(
        connection.execute(
            select(leases.c.lease_id)
            .select_from(leases.join(root_posts, root_posts.c.batch_id == leases.c.batch_id))
            .where(not_(_lapsed()), not_(_final_leaf_exists()))
            .order_by(leases.c.lease_id)
        ).scalars()
    )


def running_leases(connection: Connection) -> list[int]:
    """Leases whose newest receipt says `running`, with no recorded evidence end and no lapse: the ones the
    matcher challenges (the caller re-checks each against the live proven-time rule)."""
    newest = (
        select(receipts.c.lease_id, func.max(receipts.c.sequence).label("sequence"))
        .group_by(receipts.c.lease_id)
        .subquery()
    )
    return list(
        connection.execute(
            select(receipts.c.lease_id)
            .select_from(
                receipts.join(
                    newest,
                    and_(newest.c.lease_id == receipts.c.lease_id, newest.c.sequence == receipts.c.sequence),
                ).join(leases, leases.c.lease_id == receipts.c.lease_id)
            )
            .where(
                receipts.c.job_state == int(JobState.RUNNING),
                not_(exists().where(evidence_ends.c.lease_id == receipts.c.lease_id)),
                not_(_lapsed()),
            )
            .order_by(receipts.c.lease_id)
        ).scalars()
    )


def posted_usage(connection: Connection, lease_ids: Collection[int]) -> dict[int, UsageRecord]:
    """Each lease's newest usage leaf whose batch root is posted (what `settleLeases` can prove)."""
    newest: dict[int, UsageRecord] = {}
    for lease_id, usage in _usage(connection, lease_ids).items():
        posted = [u for u in usage if u.posted]
        if posted:
            newest[lease_id] = posted[-1]
    return newest


def provider_leases(
    connection: Connection, provider: str, active: bool, limit: int, cursor: str | None
) -> Page[LeaseRecord]:
    """The provider's leases, newest first. `active`: leave out lapsed ones and those closed on-chain (final
    usage settled, or reclaimed), so a page may hold fewer than `limit` items: follow `next_cursor`."""
    limit = check_limit(limit)
    before = int_cursor(cursor)
    query = lease_query().where(leases.c.provider == account(provider))
    if active:
        query = query.where(not_(_lapsed()))
    if before is not None:
        query = query.where(leases.c.lease_id < before)
    rows = connection.execute(query.order_by(leases.c.lease_id.desc()).limit(limit + 1)).all()
    items = [lease_record(connection, row) for row in rows[:limit]]
    next_cursor = str(rows[limit - 1].lease_id) if len(rows) > limit else None
    if active:
        items = [lease for lease in items if not lease.chain.closed]
    return Page(items, next_cursor)


def provider_summary(connection: Connection, provider: str) -> EvidenceSummary:
    """The provider's challenge verdicts and the evidence ends that were failures (for the arbiter)."""
    of_provider = select(leases.c.lease_id).where(leases.c.provider == account(provider))
    counts: dict[str | None, int] = {}
    for outcome, count in connection.execute(
        select(challenges.c.outcome, func.count())
        .where(challenges.c.lease_id.in_(of_provider))
        .group_by(challenges.c.outcome)
    ):
        counts[outcome] = int(count)
    ends = connection.execute(
        select(evidence_ends)
        .where(evidence_ends.c.lease_id.in_(of_provider), evidence_ends.c.reason.in_(FAILED_END_REASONS))
        .order_by(evidence_ends.c.lease_id)
    )
    return EvidenceSummary(
        challenges_passed=counts.get("passed", 0),
        challenges_failed=sum(n for outcome, n in counts.items() if outcome not in (None, "passed")),
        challenges_open=counts.get(None, 0),
        failed_ends=tuple(
            EvidenceEnd(r.lease_id, r.reason, r.proven_until, r.proven_gpu_seconds, r.ended_at) for r in ends
        ),
    )


def check_lease(connection: Connection, lease_id: int) -> None:
    """Raises `LeaseNotFoundError` for an unknown lease."""
    if connection.execute(select(leases.c.lease_id).where(leases.c.lease_id == lease_id)).first() is None:
        raise LeaseNotFoundError(f"no lease has id {lease_id}: lease ids come from recorded batches")
