"""The evidence verifier over a real store (each backend), with its clocks in hand: when challenges are
issued and expire, when usage leaves are due, that an open challenge holds a final figure back, that a gap
ends the evidence for good, and that an unlocked lease lapses."""

from __future__ import annotations

from typing import Any

import pytest
from store_market import DOMAIN, NOW, PROVIDER, accepted, ask, bid, cleared_batch, event, key

from gpuspot.protocol import keccak256
from gpuspot.protocol.evidence import JobState, Receipt, sign_commitment, sign_receipt
from matcher.chain import ChainCursor, LeaseLocked, PostedRoot
from matcher.errors import EvidenceRejectedError
from matcher.evidence.verifier import LAPSE_MARGIN, EvidencePolicy, EvidenceVerifier
from matcher.store import Store

ZERO = b"\x00" * 32
START = NOW + 30
LOCK_WINDOW = 600
POLICY = EvidencePolicy(challenge_n=16, challenge_interval=100, usage_interval=60, evidence_timeout=90)


class Clock:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self) -> int:
        return self.at

    def ms(self) -> int:
        return self.at * 1000


class Agent:
    def __init__(self, verifier: EvidenceVerifier, lease_id: int) -> None:
        self.verifier, self.lease_id, self.previous, self.sequence = verifier, lease_id, ZERO, 0

    def send(self, time: int, state: JobState = JobState.RUNNING) -> Any:
        receipt = Receipt(self.lease_id, self.sequence, time, state, {"t": time}, ZERO, self.previous)
        outcome = self.verifier.submit_receipt(
            self.lease_id, receipt.to_json(sign_receipt(receipt, key("provider"), DOMAIN))
        )
        self.previous, self.sequence = receipt.hash(DOMAIN), self.sequence + 1
        return outcome


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def verifier(store: Store, clock: Clock) -> EvidenceVerifier:
    return EvidenceVerifier(
        store=store,
        domain=DOMAIN,
        lock_window=LOCK_WINDOW,
        policy=POLICY,
        clock=clock,
        clock_ms=clock.ms,
        latest_block=lambda: (keccak256(b"block"), 7),
    )


def lease(store: Store, *, locked: bool = True) -> int:
    store.add_order(accepted(ask()), NOW)
    store.add_order(accepted(bid(gpus=2)), NOW)
    batch = cleared_batch(store)
    store.record_batch(batch)
    assert batch.root is not None
    store.mark_root_posted(1, PostedRoot(1, batch.root, keccak256(b"post"), 40, 50_000, START))
    if locked:
        record = store.get_lease(1)
        locked_event = event(
            LeaseLocked, 50, 0, lease_id=1, buyer=record.buyer, provider=record.provider, batch_id=1, nonce=1,
            bid_digest=bytes(record.bid_hash), reserved=123,
        )  # fmt: skip
        store.apply_chain([locked_event], ChainCursor(51), at=START)
    return 1


def usage(verifier: EvidenceVerifier, now: int) -> list[tuple[int, int]]:
    return [(int(leaf.kind), leaf.used_gpu_seconds) for leaf in verifier.usage_leaves(now)]


def test_usage_is_due_every_usage_interval_and_final_once_the_job_ends(
    store: Store, verifier: EvidenceVerifier, clock: Clock
) -> None:
    lease_id = lease(store)
    agent = Agent(verifier, lease_id)
    agent.send(START + 1)
    clock.at = START + 30
    agent.send(START + 30)
    assert usage(verifier, START + 30) == []  # the usage interval has not passed since the start
    clock.at = START + 60
    agent.send(START + 60)
    assert usage(verifier, START + 60) == [(1, 2 * 60)]
    store.record_batch(cleared_batch(store, at=START + 60, usage=verifier.usage_leaves(START + 60)))
    clock.at = START + 90
    agent.send(START + 90)
    assert usage(verifier, START + 90) == []  # grew, but 30 s since the last usage leaf
    clock.at = START + 100
    agent.send(START + 100, JobState.STOPPED)
    assert usage(verifier, START + 100) == [(2, 2 * 100)]  # the final figure does not wait
    evidence = verifier.evidence(lease_id)
    assert evidence.state == "ended" and evidence.record.end is not None
    assert evidence.record.end.reason == "terminal" and evidence.record.end.proven_until == START + 100


def test_an_open_challenge_holds_the_final_figure_until_its_verdict(
    store: Store, verifier: EvidenceVerifier, clock: Clock
) -> None:
    lease_id = lease(store)
    agent = Agent(verifier, lease_id)
    agent.send(START + 1)
    clock.at = START + 20
    [challenge] = verifier.issue_challenges()
    assert challenge.n == 16 and challenge.block_number == 7 and challenge.issued_at_ms == (START + 20) * 1000
    assert verifier.issue_challenges() == []
    clock.at = START + 25
    agent.send(START + 25, JobState.SUCCEEDED)
    assert usage(verifier, START + 25) == []  # ended, but held by the open challenge
    assert verifier.evidence(lease_id).record.end is None
    clock.at = START + 40  # past the 10 s deadline without a root
    assert verifier.expire_challenges() == 1
    assert usage(verifier, START + 40) == [(2, 2 * 1)]  # failed: cut at the last receipt before it
    assert verifier.evidence(lease_id).record.end.reason == "challenge_failed"  # type: ignore[union-attr]
    assert store.provider_summary(PROVIDER).challenges_failed == 1


def test_challenges_repeat_after_the_interval_and_unopened_ones_expire(
    store: Store, verifier: EvidenceVerifier, clock: Clock
) -> None:
    from gpuspot.protocol.challenge import answer

    lease_id = lease(store)
    agent = Agent(verifier, lease_id)
    agent.send(START + 1)
    [first] = verifier.issue_challenges()
    solved = answer(first.challenge())
    signature = sign_commitment(DOMAIN, lease_id, 0, solved.root, key("provider"))
    committed = verifier.commit(lease_id, 0, solved.root, signature)
    assert committed.rows is not None and len(committed.rows) == 16  # every row of an n = 16 product
    assert verifier.commit(lease_id, 0, solved.root, signature) == committed  # re-sent: the same audit
    with pytest.raises(EvidenceRejectedError) as info:
        verifier.commit(lease_id, 0, keccak256(b"another root"), signature)
    assert info.value.code == "bad_signature"  # signed for the first root only
    clock.at = START + 1 + POLICY.opening_timeout + 1
    agent.send(clock.at)
    assert verifier.expire_challenges() == 1
    assert store.get_challenge(lease_id, 0).outcome == "late"  # type: ignore[union-attr]
    assert verifier.evidence(lease_id).state == "ended"
    assert verifier.issue_challenges() == []  # no challenge for an ended lease


def test_a_vanished_agent_ends_the_evidence_for_good(
    store: Store, verifier: EvidenceVerifier, clock: Clock
) -> None:
    lease_id = lease(store)
    agent = Agent(verifier, lease_id)
    agent.send(START + 1)
    clock.at = START + 92
    assert usage(verifier, START + 92) == [(2, 2 * 1)]
    with pytest.raises(EvidenceRejectedError) as info:
        agent.send(START + 50)  # a receipt that would have filled the gap comes too late
    assert info.value.code == "evidence_ended"
    assert verifier.evidence(lease_id).record.end.reason == "gap"  # type: ignore[union-attr]


def test_a_restarted_verifier_does_not_count_its_downtime_as_a_gap(store: Store, clock: Clock) -> None:
    lease_id = lease(store)
    clock.at = START + 500
    restarted = EvidenceVerifier(
        store=store, domain=DOMAIN, lock_window=LOCK_WINDOW, policy=POLICY, clock=clock, clock_ms=clock.ms,
        latest_block=lambda: (keccak256(b"block"), 7),
    )  # fmt: skip
    agent = Agent(restarted, lease_id)
    for t in (START + 1, START + 60, START + 120):  # what the agent buffered while the matcher was down
        agent.send(t)
    assert restarted.evidence(lease_id).state == "collecting"
    assert restarted.evidence(lease_id).proven.proven_gpu_seconds == 2 * 120  # type: ignore[union-attr]
    agent.send(START + 300)  # but a gap in the agent's own times is the agent's
    assert restarted.evidence(lease_id).proven.end == "gap"  # type: ignore[union-attr]


def test_an_unlocked_lease_lapses_after_its_lock_window(
    store: Store, verifier: EvidenceVerifier, clock: Clock
) -> None:
    lease_id = lease(store, locked=False)
    agent = Agent(verifier, lease_id)
    agent.send(START + 1)
    assert usage(verifier, START + 80) == []
    assert verifier.evidence(lease_id).state == "collecting"
    late = START + LOCK_WINDOW + LAPSE_MARGIN + 1
    assert usage(verifier, late) == []
    assert verifier.evidence(lease_id, late).state == "lapsed"
    assert store.evidence_candidates() == []
