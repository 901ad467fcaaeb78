"""The proven-time rule, case by case: the unbroken chain, gaps, terminal and duration ends, challenges that
hold T back or cut it, the caps, and the floor of committed usage."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol.evidence import JobState
from matcher.evidence.proven import EndReason, ProvenTime, proven_time

START = 1_000
DURATION = 3_600
GPUS = 2
TIMEOUT = 90
P, R, S, F, RJ, ST = (
    JobState.PREPARING,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.REJECTED,
    JobState.STOPPED,
)


@dataclass(frozen=True)
class Receipt:
    sequence: int
    time: int
    job_state: JobState


@dataclass(frozen=True)
class Challenge:
    issued_at_ms: int
    outcome: str | None


def chain(*points: tuple[int, JobState]) -> list[Receipt]:
    return [Receipt(i, START + offset, state) for i, (offset, state) in enumerate(points)]


def at(offset: int, outcome: str | None) -> Challenge:
    return Challenge((START + offset) * 1000 + 999, outcome)


def run(receipts: list[Receipt], challenges: list[Challenge] = (), now: int = 100, committed: int = 0):  # type: ignore[assignment]
    return proven_time(
        receipts,
        challenges,
        start=START,
        duration=DURATION,
        gpus=GPUS,
        now=START + now,
        evidence_timeout=TIMEOUT,
        committed=committed,
    )


def ok(
    until: int | None, end: EndReason | None = None, held: bool = False, proven: int | None = None
) -> ProvenTime:
    if proven is None:
        proven = 0 if until is None else GPUS * until
    return ProvenTime(None if until is None else START + until, proven, end, held)


CASES = [
    # (receipts, challenges, now offset, expected)
    ("no receipt yet", [], [], 50, ok(None)),
    ("no receipt within the timeout", [], [], 91, ok(None, EndReason.GAP)),
    ("one receipt", chain((10, P)), [], 50, ok(10)),
    ("a running chain", chain((10, P), (40, R), (70, R)), [], 100, ok(70)),
    ("a receipt just before the start counts from the start", chain((-5, P), (60, R)), [], 100, ok(60)),
    ("a first receipt too late", chain((91, R)), [], 100, ok(None, EndReason.GAP)),
    ("a gap between receipts", chain((10, R), (40, R), (131, R), (150, R)), [], 160, ok(40, EndReason.GAP)),
    ("a gap of exactly the timeout is no gap", chain((10, R), (100, R)), [], 150, ok(100)),
    ("the agent vanished", chain((10, R), (40, R)), [], 131, ok(40, EndReason.GAP)),
    ("a terminal receipt", chain((10, R), (40, R), (55, S)), [], 500, ok(55, EndReason.TERMINAL)),
    ("a failed job is terminal, not a failure", chain((10, R), (20, F)), [], 30, ok(20, EndReason.TERMINAL)),
    ("a stop", chain((10, R), (20, ST)), [], 30, ok(20, EndReason.TERMINAL)),
    ("rejected proves nothing", chain((5, RJ)), [], 30, ok(None, EndReason.REJECTED, proven=0)),
    ("never past now", chain((10, R), (100, R)), [], 95, ok(95)),
    (
        "the duration reached",
        [Receipt(i, START + t, R) for i, t in enumerate(range(30, DURATION + 31, 30))],
        [],
        DURATION + 40,
        ok(DURATION, EndReason.DURATION),
    ),
    ("a passed challenge changes nothing", chain((10, R), (40, R)), [at(20, "passed")], 60, ok(40)),
    ("an open challenge holds T back", chain((10, R), (40, R)), [at(20, None)], 60, ok(20, held=True)),
    (
        "an open challenge issued later holds nothing",
        chain((10, R), (40, R)),
        [at(50, None)],
        60,
        ok(40, held=True),
    ),
    (
        "a failed challenge cuts at the last receipt before it",
        chain((10, R), (40, R), (70, R)),
        [at(45, "wrong_product")],
        80,
        ok(40, EndReason.CHALLENGE_FAILED),
    ),
    (
        "a receipt in the challenge's second counts",
        chain((10, R), (45, R), (70, R)),
        [at(45, "late")],
        80,
        ok(45, EndReason.CHALLENGE_FAILED),
    ),
    (
        "a failed challenge after a terminal receipt still cuts",
        chain((10, R), (40, R), (70, S)),
        [at(45, "malformed")],
        80,
        ok(40, EndReason.CHALLENGE_FAILED),
    ),
    (
        "a failed challenge before any receipt",
        chain((10, R)),
        [at(5, "late")],
        20,
        ok(None, EndReason.CHALLENGE_FAILED),
    ),
    (
        "a terminal receipt with a challenge still open waits",
        chain((10, R), (40, S)),
        [at(30, None)],
        50,
        ok(30, EndReason.TERMINAL, held=True),
    ),
]


@pytest.mark.parametrize(
    "receipts, challenges, now, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_proven_time(receipts, challenges, now, expected):
    assert run(receipts, challenges, now) == expected


def test_committed_usage_is_a_floor():
    assert run(chain((10, R)), now=20, committed=1_000).proven_gpu_seconds == 1_000
    assert run(chain((10, R)), now=20, committed=5).proven_gpu_seconds == 2 * 10


def test_a_verifier_that_was_down_counts_the_last_gap_from_its_start():
    receipts = chain((10, R))
    kwargs = {"start": START, "duration": DURATION, "gpus": GPUS, "evidence_timeout": TIMEOUT}
    since = START + 450
    assert proven_time(receipts, [], now=START + 500, watched_since=since, **kwargs).end is None
    assert proven_time(receipts, [], now=START + 541, watched_since=since, **kwargs).end is EndReason.GAP
    # gaps between receipts are the agent's, whatever the verifier's uptime
    late = chain((10, R), (200, R))
    assert proven_time(late, [], now=START + 210, watched_since=START + 190, **kwargs).end is EndReason.GAP


def test_receipts_are_read_in_sequence_order():
    receipts = chain((10, R), (40, R), (70, R))
    assert run(list(reversed(receipts)), now=80) == run(receipts, now=80)


def test_end_reasons_that_are_failures():
    assert {r for r in EndReason if r.failure} == {EndReason.CHALLENGE_FAILED, EndReason.GAP}


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 120), st.sampled_from([P, R, R, R, S])), max_size=12),
    now=st.integers(0, 2_000),
    challenge=st.none() | st.tuples(st.integers(0, 1_500), st.sampled_from([None, "passed", "late"])),
)
def test_proven_time_is_bounded_and_monotone_in_receipts(steps, now, challenge):
    receipts, t = [], START - 10
    for i, (step, state) in enumerate(steps):
        t += step
        receipts.append(Receipt(i, t, state))
    challenges = [] if challenge is None else [at(*challenge)]
    result = run(receipts, challenges, now)
    assert 0 <= result.proven_gpu_seconds <= GPUS * min(DURATION, max(0, now))
    if result.proven_until is not None:
        assert START - 10 <= result.proven_until <= START + min(now, DURATION)
    # Dropping the newest receipt never proves more, unless it ended the evidence early.
    if receipts and not receipts[-1].job_state.terminal:
        shorter = run(receipts[:-1], challenges, now)
        assert shorter.proven_gpu_seconds <= result.proven_gpu_seconds or result.end is EndReason.GAP
