"""Response bodies of the delivery-evidence endpoints (docs/evidence.md): receipts, challenges, a lease's
evidence and a provider's view of its leases. Bytes as 0x hex, times as JSON numbers (unix seconds, or
milliseconds where the name ends in `_ms`), GPU-seconds as JSON numbers."""

from __future__ import annotations

from typing import Any

from gpuspot.catalog import Catalog
from matcher.api.views import hex_or_none, lease_view
from matcher.evidence.verifier import EvidencePolicy, LeaseEvidence
from matcher.store import ChallengeRecord, EvidenceSummary, ReceiptRecord

__all__ = ["challenge_view", "evidence_summary_view", "evidence_view", "provider_lease_view", "receipt_view"]


def receipt_view(record: ReceiptRecord) -> dict[str, Any]:
    """The receipt as signed (`Receipt.to_json`) plus its `hash` and the matcher's `received_at`."""
    return record.receipt.to_json(record.signature) | {
        "hash": hex_or_none(record.receipt_hash),
        "received_at": record.received_at,
    }


def challenge_state(c: ChallengeRecord) -> str:
    """`issued` (awaiting the commitment), `committed` (awaiting the opening) or `resolved` (a verdict)."""
    if c.outcome is not None:
        return "resolved"
    return "issued" if c.root is None else "committed"


def challenge_view(c: ChallengeRecord, policy: EvidencePolicy) -> dict[str, Any]:
    """Everything anyone needs to re-run `verify_opening` (with the opening's bytes, served apart)."""
    return {
        "lease_id": c.lease_id,
        "sequence": c.sequence,
        "state": challenge_state(c),
        "block_hash": hex_or_none(c.block_hash),
        "block_number": c.block_number,
        "n": c.n,
        "issued_at_ms": c.issued_at_ms,
        "deadline_ms": c.deadline_ms,
        "due_at_ms": c.issued_at_ms + c.deadline_ms,
        "root": hex_or_none(c.root),
        "commit_signature": None if c.commit_signature is None else c.commit_signature.hex(),
        "committed_at_ms": c.committed_at_ms,
        "verifier_seed": hex_or_none(c.verifier_seed),
        "rows": None if c.rows is None else list(c.rows),
        "rounds": policy.rounds,
        "opening_due_at_ms": (
            None if c.committed_at_ms is None else c.committed_at_ms + policy.opening_timeout * 1000
        ),
        "outcome": c.outcome,
        "passed": None if c.outcome is None else c.outcome == "passed",
        "reason": c.reason,
        "resolved_at_ms": c.resolved_at_ms,
        "has_opening": c.has_opening,
    }


def evidence_view(evidence: LeaseEvidence) -> dict[str, Any]:
    """The lease's evidence now: `state` (`unposted`, `waiting`, `collecting`, `ended`, `lapsed`), why it
    ended, proven-until and GPU-seconds, what usage leaves committed, and the last receipt (what the next
    receipt's `sequence` and `previous` follow)."""
    record, proven = evidence.record, evidence.proven
    last = record.receipts[-1] if record.receipts else None
    return {
        "state": evidence.state,
        "end_reason": None if proven is None or proven.end is None else proven.end.value,
        "proven_until": None if proven is None else proven.proven_until,
        "proven_gpu_seconds": 0 if proven is None else proven.proven_gpu_seconds,
        "committed_gpu_seconds": record.committed_gpu_seconds,
        "held_by_challenge": False if proven is None else proven.held,
        "last_sequence": None if last is None else last.sequence,
        "last_receipt_hash": None if last is None else hex_or_none(last.receipt_hash),
        "last_receipt_time": None if last is None else last.time,
    }


def provider_lease_view(evidence: LeaseEvidence, catalog: Catalog) -> dict[str, Any]:
    """`GET /v1/leases/{id}`'s lease plus what its agent works from: start and end, the job spec's hash,
    the evidence, the committed usage leaves and the buyer's stop request."""
    record = evidence.record
    lease = record.lease
    return lease_view(lease, catalog) | {
        "start": record.start,
        "ends_at": None if record.start is None else record.start + lease.duration,
        "job_spec_hash": hex_or_none(record.job_spec_hash),
        "evidence": evidence_view(evidence),
        "usage": [
            {
                "usage_batch_id": u.batch_id,
                "used_gpu_seconds": u.used_gpu_seconds,
                "final": u.final,
                "posted": u.posted,
                "recorded_at": u.recorded_at,
            }
            for u in record.usage
        ],
        "stop_requested": record.stop_requested_at is not None,
        "stop_requested_at": record.stop_requested_at,
    }


def evidence_summary_view(summary: EvidenceSummary) -> dict[str, Any]:
    """A provider's published evidence record (for the arbiter who may slash its stake)."""
    return {
        "challenges_passed": summary.challenges_passed,
        "challenges_failed": summary.challenges_failed,
        "challenges_open": summary.challenges_open,
        "failed_leases": [
            {
                "lease_id": end.lease_id,
                "reason": end.reason,
                "proven_until": end.proven_until,
                "proven_gpu_seconds": end.proven_gpu_seconds,
                "ended_at": end.ended_at,
            }
            for end in summary.failed_ends
        ],
    }
