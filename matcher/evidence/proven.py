"""The proven-time rule (docs/evidence.md, "Proven time and usage leaves"): a pure function of a lease's
receipts, its challenges, its start, duration and GPUs, the matcher's clock and `evidence_timeout`.

The matcher pays a provider for the time its evidence covers, and no further: an unbroken chain of receipts
from the lease's start, each gap at most `evidence_timeout`, held back by any challenge not yet passed and
cut at the last receipt before a failed one. Pure and deterministic, so the batch loop, the API's views and
anyone re-checking a usage leaf compute the same figure from the published receipts and verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gpuspot.protocol.evidence import JobState

__all__ = ["EndReason", "ProvenTime", "ReceiptPoint", "ChallengePoint", "proven_time"]


class EndReason(StrEnum):
    """Why a lease's evidence ended."""

    TERMINAL = "terminal"
    """A terminal receipt (succeeded, failed, timed_out, stopped): the job is over."""
    REJECTED = "rejected"
    """The agent refused the lease before starting it (sequence 0): nothing is owed."""
    DURATION = "duration"
    """A receipt at or after `start + duration`: the lease ran its course."""
    CHALLENGE_FAILED = "challenge_failed"
    """A challenge was answered late, wrongly, or not at all."""
    GAP = "gap"
    """No receipt within `evidence_timeout` of the previous one (or of the start): the agent vanished."""

    @property
    def failure(self) -> bool:
        """An end the provider is to blame for: published per provider for the arbiter."""
        return self in (EndReason.CHALLENGE_FAILED, EndReason.GAP)


class ReceiptPoint(Protocol):
    """What the rule reads of a receipt (the store's `ReceiptHead` is one)."""

    @property
    def sequence(self) -> int: ...

    @property
    def time(self) -> int: ...

    @property
    def job_state(self) -> JobState: ...


class ChallengePoint(Protocol):
    """What the rule reads of a challenge: its issue time (ms) and verdict (None while open)."""

    @property
    def issued_at_ms(self) -> int: ...

    @property
    def outcome(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ProvenTime:
    """The rule's result. `proven_until` is T after every cap (None: no receipt proves anything);
    `proven_gpu_seconds` is what a usage leaf may commit; `end` why the evidence ended (None: it goes on);
    `held` whether an open challenge holds T back, in which case a final figure must wait for its verdict."""

    proven_until: int | None
    proven_gpu_seconds: int
    end: EndReason | None
    held: bool

    @property
    def ended(self) -> bool:
        return self.end is not None


def proven_time(
    receipts: Iterable[ReceiptPoint],
    challenges: Iterable[ChallengePoint],
    *,
    start: int,
    duration: int,
    gpus: int,
    now: int,
    evidence_timeout: int,
    committed: int = 0,
    watched_since: int | None = None,
) -> ProvenTime:
    """Proven-until T and proven GPU-seconds of a lease of `gpus` GPUs that started at `start` (its root's
    `postedAt`) and lasts `duration` seconds, at the matcher's time `now`.

    - Evidence runs from `start` through the receipts in sequence order while each comes at most
      `evidence_timeout` after the previous one (the first, after `start`); T is the last such receipt's time.
    - A failed challenge (any verdict but `passed`) cuts the chain at the last receipt no later than its issue
      time (in whole seconds); an open one caps T at its issue time.
    - The evidence ends at a terminal receipt, a receipt at or after `start + duration`, a failed challenge,
      or a gap longer than `evidence_timeout` (between receipts, or from the last one to `now`).
    - T never passes `now` (the escrow refuses usage beyond the time elapsed) nor `start + duration`;
      proven GPU-seconds are `gpus x (T - start)`, 0 without a receipt or for a rejected lease, and never
      below `committed` (what usage leaves already committed).

    `watched_since`, when given, is when the verifier began watching (its start): a gap up to `now` counts
    only from then, so that a verifier that was down does not blame agents for receipts it could not take.
    """
    failed_at: int | None = None
    open_at: int | None = None
    for challenge in challenges:
        issued = challenge.issued_at_ms // 1000
        if challenge.outcome is None:
            open_at = issued if open_at is None else min(open_at, issued)
        elif challenge.outcome != "passed":
            failed_at = issued if failed_at is None else min(failed_at, issued)

    until: int | None = None
    end: EndReason | None = None
    previous = start
    for receipt in sorted(receipts, key=lambda r: r.sequence):
        if failed_at is not None and receipt.time > failed_at:
            break
        if receipt.time - previous > evidence_timeout:
            end = EndReason.GAP
            break
        until = receipt.time if until is None else max(until, receipt.time)
        previous = max(previous, receipt.time)
        if receipt.job_state is JobState.REJECTED:
            end = EndReason.REJECTED
        elif JobState(receipt.job_state).terminal:
            end = EndReason.TERMINAL
        elif receipt.time >= start + duration:
            end = EndReason.DURATION
        if end is not None:
            break
    if end is None:
        if failed_at is not None:
            end = EndReason.CHALLENGE_FAILED
        elif now - max(previous, watched_since or previous) > evidence_timeout:
            end = EndReason.GAP

    if end is EndReason.REJECTED:
        until = None
    if until is not None:
        if open_at is not None:
            until = min(until, open_at)
        until = min(until, now, start + duration)
    proven = 0 if until is None else gpus * max(0, until - start)
    return ProvenTime(until, max(proven, committed), end, open_at is not None)
