"""Delivery evidence in the store: the version-1 migration, blobs, receipts and challenges round trips,
conditional commitments and verdicts, ends, lapses, stop requests and the per-lease and per-provider reads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import inspect, select, text
from store_market import DOMAIN, NOW, PROVIDER, accepted, ask, bid, cleared_batch, key

from gpuspot.protocol import keccak256
from gpuspot.protocol.evidence import JobState, Receipt, sign_receipt
from gpuspot.protocol.orders import Signature, sign_digest
from matcher.chain import PostedRoot
from matcher.store import (
    SCHEMA_VERSION,
    ChallengeRecord,
    EvidenceEnd,
    LeaseNotFoundError,
    SchemaVersionError,
    Store,
)
from matcher.store.schema import EVIDENCE_TABLES, schema_version

ZERO = b"\x00" * 32


def leased(store: Store, *, posted_at: int | None = NOW + 30) -> int:
    """Records a batch with one lease (2 GPUs, 3600 s) and posts its root at `posted_at`; the lease id."""
    store.add_order(accepted(ask()), NOW)
    store.add_order(accepted(bid(gpus=2)), NOW)
    batch = cleared_batch(store)
    store.record_batch(batch)
    assert batch.root is not None
    if posted_at is not None:
        store.mark_root_posted(
            batch.batch_id,
            PostedRoot(batch.batch_id, batch.root, keccak256(b"post"), 40, 50_000, posted_at),
        )
    return batch.leases[0].lease_id


def receipt(lease_id: int, sequence: int, previous: bytes, state: JobState = JobState.RUNNING) -> Receipt:
    return Receipt(
        lease_id=lease_id,
        sequence=sequence,
        time=NOW + 40 + 30 * sequence,
        job_state=state,
        telemetry={"backend": "cpu-simulated", "devices": [], "samples": [{"t": sequence}]},
        output_digest=ZERO,
        previous=previous,
    )


def add_chain(store: Store, lease_id: int, states: list[JobState]) -> list[bytes]:
    hashes: list[bytes] = []
    previous = ZERO
    for sequence, state in enumerate(states):
        r = receipt(lease_id, sequence, previous, state)
        previous = r.hash(DOMAIN)
        assert store.add_receipt(r, previous, sign_receipt(r, key("provider"), DOMAIN), NOW + 50 + sequence)
        hashes.append(previous)
    return hashes


def challenge(lease_id: int, sequence: int = 0, issued_at_ms: int = (NOW + 60) * 1000) -> ChallengeRecord:
    return ChallengeRecord.issued(
        lease_id,
        sequence,
        block_hash=keccak256(b"block"),
        block_number=41,
        n=64,
        issued_at_ms=issued_at_ms,
        deadline_ms=10_000,
    )


def test_a_version_1_database_is_migrated_by_adding_the_evidence_tables(
    open_store: Callable[[], Store],
) -> None:
    first = open_store()
    order = accepted(bid())
    first.add_order(order, NOW)
    with first.engine.begin() as connection:  # what a version-1 matcher left behind
        for table in reversed(EVIDENCE_TABLES):
            table.drop(connection)
        connection.execute(schema_version.update().values(version=1))
    first.close()

    second = open_store()
    with second.engine.connect() as connection:
        assert connection.execute(select(schema_version.c.version)).scalar_one() == SCHEMA_VERSION == 2
        names = set(inspect(connection).get_table_names())
    assert {table.name for table in EVIDENCE_TABLES} <= names
    assert second.get_order(order.order_hash) is not None
    assert second.put_blob(keccak256(b"x"), b"x", NOW) and second.get_blob(keccak256(b"x")) == b"x"
    second.close()
    assert open_store().get_order(order.order_hash) is not None  # and opening it again changes nothing


def test_a_schema_version_without_a_migration_is_refused(open_store: Callable[[], Store]) -> None:
    first = open_store()
    with first.engine.begin() as connection:
        connection.execute(text("UPDATE schema_version SET version = 0"))
    first.close()
    with pytest.raises(SchemaVersionError, match="no migration"):
        open_store()


def test_blobs_are_content_addressed_and_stored_once(store: Store) -> None:
    data = bytes(range(256)) * 10
    assert store.put_blob(keccak256(data), data, NOW)
    assert not store.put_blob(keccak256(data), data, NOW + 1)
    assert store.get_blob(keccak256(data)) == data
    assert store.get_blob(keccak256(b"missing")) is None
    assert store.blob_totals() == (1, len(data))


def test_receipts_round_trip_once_per_sequence_in_order(store: Store) -> None:
    lease_id = leased(store)
    hashes = add_chain(store, lease_id, [JobState.PREPARING, JobState.RUNNING, JobState.RUNNING])
    stored = store.get_receipt(lease_id, 1)
    assert stored is not None and stored.receipt == receipt(lease_id, 1, hashes[0])
    assert stored.receipt_hash == hashes[1] and stored.received_at == NOW + 51
    assert stored.signature == sign_receipt(stored.receipt, key("provider"), DOMAIN)
    other = receipt(lease_id, 1, hashes[0], JobState.FAILED)
    assert not store.add_receipt(other, other.hash(DOMAIN), stored.signature, NOW + 99)
    assert store.get_receipt(lease_id, 1) == stored

    page = store.receipts_of(lease_id, limit=2)
    assert [r.receipt.sequence for r in page.items] == [0, 1] and page.next_cursor == "1"
    rest = store.receipts_of(lease_id, limit=2, cursor=page.next_cursor)
    assert [r.receipt.sequence for r in rest.items] == [2] and rest.next_cursor is None
    with pytest.raises(LeaseNotFoundError):
        store.receipts_of(999)

    evidence = store.evidence_of(lease_id)
    assert evidence.start == NOW + 30 and evidence.lease.lease_id == lease_id
    assert [(h.sequence, h.job_state, h.receipt_hash) for h in evidence.receipts] == [
        (0, JobState.PREPARING, hashes[0]),
        (1, JobState.RUNNING, hashes[1]),
        (2, JobState.RUNNING, hashes[2]),
    ]
    assert evidence.lease_leaf.kind == 0 and evidence.lease_leaf.lease_id == lease_id
    assert evidence.job_spec_hash == keccak256(b"job")
    assert store.running_leases() == [lease_id]
    assert store.evidence_candidates() == [lease_id]


def test_outputs_are_kept_exactly(store: Store) -> None:
    from gpuspot.protocol.evidence import output_digest

    lease_id = leased(store)
    outputs = {
        "outputs": {"out/é.bin": "0x" + "ab" * 32},
        "stderr": "0x" + "01" * 32,
        "stdout": "0x" + "02" * 32,
    }
    r = Receipt(
        lease_id, 0, NOW, JobState.SUCCEEDED, {"samples": [1, -2]}, output_digest(outputs), ZERO, outputs
    )
    store.add_receipt(r, r.hash(DOMAIN), sign_receipt(r, key("provider"), DOMAIN), NOW)
    stored = store.get_receipt(lease_id, 0)
    assert stored is not None and stored.receipt == r and stored.receipt.hash(DOMAIN) == r.hash(DOMAIN)
    assert store.running_leases() == []


def test_challenges_are_committed_once_and_resolved_once(store: Store) -> None:
    lease_id = leased(store)
    assert store.add_challenge(challenge(lease_id))
    assert not store.add_challenge(challenge(lease_id))
    assert [c.sequence for c in store.open_challenges(PROVIDER)] == [0]
    assert store.open_challenges("0x" + "12" * 20) == []

    signature = sign_digest(keccak256(b"commit"), key("provider"))
    commit = {
        "root": keccak256(b"root"),
        "signature": signature,
        "committed_at_ms": (NOW + 62) * 1000,
        "verifier_seed": keccak256(b"seed"),
        "rows": (5, 1, 63),
    }
    assert store.commit_challenge(lease_id, 0, **commit)  # type: ignore[arg-type]
    assert not store.commit_challenge(lease_id, 0, **{**commit, "root": keccak256(b"other")})  # type: ignore[arg-type]
    committed = store.get_challenge(lease_id, 0)
    assert committed is not None and committed.root == keccak256(b"root") and committed.rows == (5, 1, 63)
    assert committed.commit_signature == signature and committed.is_open and not committed.has_opening
    assert committed.challenge().seed == challenge(lease_id).challenge().seed

    opening = b"GSRO opening bytes"
    assert store.resolve_challenge(
        lease_id, 0, outcome="passed", reason="ok", resolved_at_ms=(NOW + 63) * 1000, opening=opening
    )
    assert not store.resolve_challenge(lease_id, 0, outcome="late", reason="again", resolved_at_ms=1)
    resolved = store.get_challenge(lease_id, 0)
    assert resolved is not None and resolved.outcome == "passed" and resolved.has_opening
    assert store.challenge_opening(lease_id, 0) == opening
    assert store.open_challenges() == []

    store.add_challenge(challenge(lease_id, 1))
    store.resolve_challenge(lease_id, 1, outcome="late", reason="no root", resolved_at_ms=1)
    store.add_challenge(challenge(lease_id, 2))
    assert [c.outcome for c in store.lease_challenges(lease_id)] == ["passed", "late", None]
    summary = store.provider_summary(PROVIDER)
    assert (summary.challenges_passed, summary.challenges_failed, summary.challenges_open) == (1, 1, 1)


def test_ends_lapses_and_stops_are_recorded_once(store: Store) -> None:
    lease_id = leased(store)
    assert store.request_stop(lease_id, b"\x01" * 65, NOW + 70) == (NOW + 70, True)
    assert store.request_stop(lease_id, b"\x02" * 65, NOW + 80) == (NOW + 70, False)
    with pytest.raises(LeaseNotFoundError):
        store.request_stop(999, b"\x01" * 65, NOW)

    end = EvidenceEnd(lease_id, "gap", NOW + 100, 2 * 70, NOW + 200)
    assert store.record_evidence_end(end)
    assert not store.record_evidence_end(EvidenceEnd(lease_id, "terminal", None, 0, NOW + 300))
    evidence = store.evidence_of(lease_id)
    assert evidence.end == end and evidence.stop_requested_at == NOW + 70 and evidence.lapsed_at is None
    assert store.provider_summary(PROVIDER).failed_ends == (end,)
    assert [lease.lease_id for lease in store.provider_leases(PROVIDER, active=True).items] == [lease_id]

    assert store.record_lapse(lease_id, NOW + 700) and not store.record_lapse(lease_id, NOW + 800)
    assert store.evidence_of(lease_id).lapsed_at == NOW + 700
    assert store.evidence_candidates() == []
    assert store.provider_leases(PROVIDER, active=True).items == []
    assert [lease.lease_id for lease in store.provider_leases(PROVIDER).items] == [lease_id]


def test_usage_leaves_are_read_back_with_their_batch_and_posting(store: Store) -> None:
    lease_id = leased(store)
    lease_leaf = store.evidence_of(lease_id).lease_leaf
    usage = store.record_batch(cleared_batch(store, at=NOW + 400, usage=[lease_leaf.usage(600)]))
    assert usage.root is not None
    evidence = store.evidence_of(lease_id)
    assert [(u.batch_id, u.used_gpu_seconds, u.final, u.posted) for u in evidence.usage] == [
        (2, 600, False, False)
    ]
    assert evidence.committed_gpu_seconds == 600 and evidence.final_usage is None
    assert store.posted_usage([lease_id]) == {}
    store.mark_root_posted(2, PostedRoot(2, usage.root, keccak256(b"post 2"), 50, 50_000, NOW + 410))
    assert store.posted_usage([lease_id])[lease_id].leaf == lease_leaf.usage(600)

    store.record_batch(cleared_batch(store, at=NOW + 800, usage=[lease_leaf.usage(900, final=True)]))
    evidence = store.evidence_of(lease_id)
    assert evidence.final_usage is not None and evidence.final_usage.recorded_at == NOW + 800
    assert store.evidence_candidates() == []
    assert store.posted_usage([lease_id])[lease_id].batch_id == 2  # batch 3 is not posted yet


def test_an_unposted_lease_has_no_start_and_is_no_candidate(store: Store) -> None:
    lease_id = leased(store, posted_at=None)
    assert store.evidence_of(lease_id).start is None
    assert store.evidence_candidates() == []


def test_signatures_survive_the_round_trip(store: Store) -> None:
    lease_id = leased(store)
    r = receipt(lease_id, 0, ZERO)
    signature = sign_receipt(r, key("provider"), DOMAIN)
    store.add_receipt(r, r.hash(DOMAIN), signature, NOW)
    stored = store.get_receipt(lease_id, 0)
    assert stored is not None and isinstance(stored.signature, Signature) and stored.signature == signature
