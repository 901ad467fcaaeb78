"""Delivery evidence end to end on Anvil, through the HTTP API: a job spec blob, a lease locked with the
served arguments, receipts (and the ones refused), challenges answered and opened, usage leaves in usage-only
batches, and settlement paying exactly cost(used, price); a wrong product ends the evidence; an unlocked
lease lapses."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from market_driver import DEPOSIT, LOCK_WINDOW
from test_service import ask_of, submission

from gpuspot.protocol import Eip712Domain, keccak256
from gpuspot.protocol.challenge import Challenge, answer, numpy_matmul
from gpuspot.protocol.evidence import (
    JobState,
    Receipt,
    output_digest,
    sign_commitment,
    sign_receipt,
    stop_message,
)
from matcher.api import create_app
from matcher.evidence.verifier import LAPSE_MARGIN, EvidencePolicy
from matcher.service import MatcherService
from matcher.verify import fetch_inputs, verify_inputs

ZERO = b"\x00" * 32
SPEC = b'{"command":["python","-c","print(42)"],"outputs":["out.txt"],"version":1}'
POLICY = EvidencePolicy(
    challenge_n=64, challenge_interval=300, usage_interval=60, evidence_timeout=90, max_blob_bytes=4096
)


def cost(gpu_seconds: int, price: int) -> int:
    return gpu_seconds * price // 3600


def call_value(value: Any) -> Any:
    """A JSON call argument back as the contract takes it: 0x words as bytes, decimal strings as ints."""
    if isinstance(value, list):
        return [call_value(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        return bytes.fromhex(value[2:])
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def lease_args(item: dict[str, Any]) -> tuple[Any, ...]:
    return (
        call_value(item["bid"]),
        call_value(item["r"]),
        call_value(item["vs"]),
        int(item["leaseId"]),
        item["provider"],
        int(item["pricePerGpuHour"]),
    )


def proof_args(proof: dict[str, Any]) -> tuple[list[bytes], list[bool]]:
    return [bytes.fromhex(p[2:]) for p in proof["proof"]], list(proof["proofFlags"])


class Agent:
    """What a provider agent does over the API, reduced to the calls this test needs."""

    def __init__(self, client: TestClient, provider: Any, domain: Eip712Domain) -> None:
        self.client, self.provider, self.domain = client, provider, domain
        self.previous: dict[int, bytes] = {}
        self.sequence: dict[int, int] = {}

    def receipt(
        self, lease_id: int, time: int, state: JobState = JobState.RUNNING, **changes: Any
    ) -> Receipt:
        fields: dict[str, Any] = {
            "lease_id": lease_id,
            "sequence": self.sequence.get(lease_id, 0),
            "time": time,
            "job_state": state,
            "telemetry": {"backend": "cpu-simulated", "devices": [{"index": 0}], "samples": [{"t": time}]},
            "output_digest": ZERO,
            "previous": self.previous.get(lease_id, ZERO),
        }
        fields.update(changes)
        return Receipt(**fields)

    def post(self, receipt: Receipt, key: Any = None) -> Any:
        signature = sign_receipt(receipt, key or self.provider.private_key, self.domain)
        return self.client.post(f"/v1/leases/{receipt.lease_id}/receipts", json=receipt.to_json(signature))

    def send(self, lease_id: int, time: int, state: JobState = JobState.RUNNING, **changes: Any) -> dict:
        receipt = self.receipt(lease_id, time, state, **changes)
        response = self.post(receipt)
        assert response.status_code == 200, response.text
        self.previous[lease_id] = receipt.hash(self.domain)
        self.sequence[lease_id] = receipt.sequence + 1
        return response.json()

    def challenges(self) -> list[dict[str, Any]]:
        return self.client.get(f"/v1/providers/{self.provider.address}/challenges").json()["challenges"]

    def answer(self, item: dict[str, Any], backend: Any = numpy_matmul) -> Any:
        challenge = Challenge(
            item["lease_id"],
            item["sequence"],
            bytes.fromhex(item["block_hash"][2:]),
            item["n"],
            item["issued_at_ms"],
            item["deadline_ms"],
        )
        solved = answer(challenge, backend)
        signature = sign_commitment(
            self.domain, challenge.lease_id, challenge.sequence, solved.root, self.provider.private_key
        )
        path = f"/v1/leases/{challenge.lease_id}/challenges/{challenge.sequence}"
        committed = self.client.post(
            f"{path}/commit", json={"root": "0x" + solved.root.hex(), "signature": signature.hex()}
        )
        return solved, path, committed

    def open(self, solved: Any, path: str, rows: list[int]) -> Any:
        opening = base64.b64encode(solved.open(rows).to_bytes()).decode()
        return self.client.post(f"{path}/opening", json={"opening": opening})


@pytest.fixture
def api(make_service: Callable[..., MatcherService]):
    service = make_service(evidence_policy=POLICY)
    service.sync_chain()
    with TestClient(create_app(service)) as client:
        yield client, service


def set_time(chain: Any, at: int) -> None:
    """Makes the service's clock (the pending block's time) and the next block's time `at`."""
    chain.pending_timestamp = at


def leased(client: TestClient, service: MatcherService, market, buyer, provider, domain, chain) -> int:
    """Puts the job spec blob, matches a bid for it, posts the batch's root; the lease's start."""
    spec_hash = keccak256(SPEC)
    put = client.put(f"/v1/blobs/0x{spec_hash.hex()}", content=SPEC)
    assert put.status_code == 200 and put.json() == {
        "hash": "0x" + spec_hash.hex(),
        "size": len(SPEC),
        "already": False,
    }
    service.submit(submission(market.bid(buyer, job_spec_hash=spec_hash), buyer, domain))
    service.submit(submission(ask_of(provider, chain), provider, domain))
    outcome = service.run_batch()
    assert outcome.batch_id is not None and outcome.posted
    start = service.store.evidence_of(1).start
    assert start is not None
    return start


def lock(client: TestClient, escrow, provider, lease_ids: list[int]) -> dict[str, Any]:
    body = client.post("/v1/proofs/lock", json={"lease_ids": lease_ids}).json()
    for call in body["calls"]:
        escrow.lockLeases(
            call["batch_id"],
            [lease_args(item) for item in call["leases"]],
            proof_args(call["proof"]),
            sender=provider,
        )
    return body


def settle(client: TestClient, escrow, provider, lease_ids: list[int]) -> dict[str, Any]:
    body = client.post("/v1/proofs/settle", json={"lease_ids": lease_ids}).json()
    for call in body["calls"]:
        escrow.settleLeases(
            call["batch_id"],
            call["usage_batch_id"],
            [lease_args(item) for item in call["leases"]],
            [(int(u["usedGpuSeconds"]), u["isFinal"]) for u in call["usages"]],
            proof_args(call["lease_proof"]),
            proof_args(call["usage_proof"]),
            sender=provider,
        )
    return body


def error_code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_lease_is_proven_by_receipts_and_challenges_and_settles_exactly(
    api, market, buyer, provider, other_buyer, domain, chain, escrow
):
    client, service = api
    agent = Agent(client, provider, domain)
    start = leased(client, service, market, buyer, provider, domain, chain)
    assert client.get(f"/v1/blobs/0x{keccak256(SPEC).hex()}").content == SPEC
    assert client.put(f"/v1/blobs/0x{keccak256(SPEC).hex()}", content=SPEC).json()["already"] is True
    assert error_code(client.put(f"/v1/blobs/0x{keccak256(b'x').hex()}", content=b"y")) == (
        400,
        "hash_mismatch",
    )
    big = b"z" * 5000
    assert error_code(client.put(f"/v1/blobs/0x{keccak256(big).hex()}", content=big)) == (413, "too_large")

    locked = lock(client, escrow, provider, [1, 99])
    assert locked["missing"] == [99] and [c["batch_id"] for c in locked["calls"]] == [1]
    service.sync_chain()
    assert client.post("/v1/proofs/lock", json={"lease_ids": [1]}).json() == {
        "calls": [],
        "missing": [],
        "locked": [1],
    }
    [view] = client.get(f"/v1/providers/{provider.address}/leases", params={"active": "true"}).json()[
        "leases"
    ]
    assert view["lease_id"] == 1 and view["start"] == start and view["ends_at"] == start + 3_600
    assert view["job_spec_hash"] == "0x" + keccak256(SPEC).hex() and view["status"] == "locked"
    assert view["evidence"]["state"] == "waiting" and view["stop_requested"] is False

    # receipts: the first one accepted, again harmlessly, and every bad one refused changing nothing
    first = agent.send(1, start + 1)
    assert first["already"] is False and first["evidence"]["state"] == "collecting"
    again = agent.post(agent.receipt(1, start + 1, sequence=0, previous=ZERO))
    assert again.status_code == 200 and again.json()["already"] is True
    assert error_code(agent.post(agent.receipt(1, start + 2), key=other_buyer.private_key)) == (
        400,
        "bad_signature",
    )
    assert error_code(agent.post(agent.receipt(1, start + 2, sequence=2))) == (409, "out_of_order")
    assert error_code(agent.post(agent.receipt(1, start + 2, previous=keccak256(b"elsewhere")))) == (
        409,
        "broken_chain",
    )
    other_first = agent.receipt(1, start + 3, sequence=0, previous=ZERO)
    assert error_code(agent.post(other_first)) == (409, "receipt_conflict")
    assert error_code(agent.post(agent.receipt(1, int(chain.pending_timestamp) + 100))) == (400, "bad_time")
    listed = client.get("/v1/leases/1/receipts").json()["receipts"]
    assert [r["sequence"] for r in listed] == [0] and listed[0]["hash"] == first["hash"]

    # a challenge, answered and opened: passed
    [issued] = service.evidence.issue_challenges()
    assert service.evidence.issue_challenges() == []  # one open at a time
    [item] = agent.challenges()
    assert item["state"] == "issued" and item["n"] == 64 and item["deadline_ms"] == 10_000
    solved, path, committed = agent.answer(item)
    assert committed.status_code == 200, committed.text
    rows = committed.json()["rows"]
    assert len(rows) == 32 and agent.challenges()[0]["state"] == "committed"
    verdict = agent.open(solved, path, rows)
    assert verdict.status_code == 200 and verdict.json()["outcome"] == "passed" and verdict.json()["passed"]
    assert agent.challenges() == []
    published = client.get("/v1/leases/1/challenges").json()["challenges"]
    assert (
        published[0]["outcome"] == "passed"
        and published[0]["verifier_seed"] == committed.json()["verifier_seed"]
    )
    assert client.get(f"{path}/opening").content == solved.open(rows).to_bytes()

    # more receipts; a usage-only batch commits the proven figure and posts a root
    set_time(chain, start + 60)
    agent.send(1, start + 60)
    set_time(chain, start + 120)
    agent.send(1, start + 120)
    outcome = service.run_batch()
    assert (outcome.batch_id, outcome.leases, outcome.usage, outcome.reason) == (2, 0, 1, "usage only")
    assert outcome.posted and bytes(escrow.batchRoot(2).root) == outcome.root
    assert verify_inputs(fetch_inputs(client, 2), outcome.root, check_chain=True).ok
    price = service.store.get_lease(1).price_per_gpu_hour
    settled = settle(client, escrow, provider, [1])
    assert [(c["batch_id"], c["usage_batch_id"], c["usages"]) for c in settled["calls"]] == [
        (1, 2, [{"usedGpuSeconds": str(2 * 120), "isFinal": False}])
    ]
    service.sync_chain()
    assert int(escrow.accountOf(provider).available) == cost(240, price)
    assert service.run_batch().batch_id is None  # nothing new proven, nothing open

    # the job ends: a terminal receipt, then a final usage leaf, settled: the buyer gets the rest back
    set_time(chain, start + 150)
    outputs = {
        "outputs": {"out.txt": "0x" + keccak256(b"42\n").hex()},
        "stderr": "0x" + keccak256(b"").hex(),
        "stdout": "0x" + keccak256(b"42\n").hex(),
    }
    done = agent.send(
        1, start + 150, JobState.SUCCEEDED, outputs=outputs, output_digest=output_digest(outputs)
    )
    assert done["evidence"]["state"] == "ended" and done["evidence"]["end_reason"] == "terminal"
    assert error_code(agent.post(agent.receipt(1, start + 151))) == (409, "evidence_ended")
    final = service.run_batch()
    assert (final.batch_id, final.usage, final.posted) == (3, 1, True)
    settled = settle(client, escrow, provider, [1])
    assert settled["calls"][0]["usages"] == [{"usedGpuSeconds": str(2 * 150), "isFinal": True}]
    service.sync_chain()
    reservation = 2 * 3_600 * 3_000_000 // 3_600
    assert int(escrow.accountOf(provider).available) == cost(300, price)
    assert int(escrow.accountOf(buyer).available) == DEPOSIT - cost(300, price)
    assert int(escrow.accountOf(buyer).reserved) == 0 and reservation > cost(300, price)
    assert service.store.get_lease(1).status == "closed"
    assert client.get(f"/v1/providers/{provider.address}/leases?active=true").json()["leases"] == []
    assert service.run_batch().batch_id is None  # a final leaf is the lease's last
    metrics = client.get("/metrics").text
    for line in (
        "gpuspot_matcher_receipts_total 4",
        "gpuspot_matcher_challenges_passed_total 1",
        "gpuspot_matcher_usage_leaves_total 2",
        "gpuspot_matcher_blobs 1",
    ):
        assert line in metrics
    market_body = client.get("/v1/market").json()["evidence"]
    assert market_body["receipt_interval"] == 30 and market_body["challenge"]["n"] == 64


def test_a_wrong_product_ends_the_evidence_at_the_last_receipt_before_the_challenge(
    api, market, buyer, provider, domain, chain, escrow
):
    client, service = api
    agent = Agent(client, provider, domain)
    start = leased(client, service, market, buyer, provider, domain, chain)
    lock(client, escrow, provider, [1])
    service.sync_chain()
    agent.send(1, start + 1)
    set_time(chain, start + 40)
    agent.send(1, start + 40)
    set_time(chain, start + 50)
    service.evidence.issue_challenges()
    [item] = agent.challenges()
    held = client.get(f"/v1/providers/{provider.address}/leases").json()["leases"][0]["evidence"]
    assert held["held_by_challenge"] and held["proven_until"] == start + 40
    set_time(chain, start + 55)
    agent.send(1, start + 55)  # the evidence goes on while the challenge is open

    def tampered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return numpy_matmul(a, b) + 1  # every row wrong, so whatever rows are audited

    solved, path, committed = agent.answer(item, tampered)
    verdict = agent.open(solved, path, committed.json()["rows"])
    assert verdict.status_code == 200 and verdict.json()["outcome"] == "wrong_product"
    assert verdict.json()["passed"] is False
    assert error_code(agent.post(agent.receipt(1, start + 60))) == (409, "evidence_ended")

    outcome = service.run_batch()
    assert outcome.usage == 1 and outcome.posted
    price = service.store.get_lease(1).price_per_gpu_hour
    settled = settle(client, escrow, provider, [1])
    assert settled["calls"][0]["usages"] == [{"usedGpuSeconds": str(2 * 40), "isFinal": True}]
    service.sync_chain()
    assert int(escrow.accountOf(provider).available) == cost(80, price)
    assert int(escrow.accountOf(buyer).available) == DEPOSIT - cost(80, price)
    record = client.get(f"/v1/accounts/{provider.address}").json()["evidence"]
    assert record["challenges_failed"] == 1 and record["challenges_passed"] == 0
    assert [(f["lease_id"], f["reason"], f["proven_until"]) for f in record["failed_leases"]] == [
        (1, "challenge_failed", start + 40)
    ]


def test_a_late_root_fails_and_an_unlocked_lease_lapses(
    api, market, buyer, provider, other_buyer, domain, chain
):
    client, service = api
    agent = Agent(client, provider, domain)
    start = leased(client, service, market, buyer, provider, domain, chain)
    agent.send(1, start + 1)  # receipts may precede the lock
    service.evidence.issue_challenges()
    [item] = agent.challenges()
    set_time(chain, start + 12)  # the deadline is 10 s
    _, _, committed = agent.answer(item)
    assert error_code(committed) == (409, "late")
    [published] = client.get("/v1/leases/1/challenges").json()["challenges"]
    assert published["outcome"] == "late" and published["root"] is None

    stop = encode_defunct(text=stop_message(1, domain))
    wrong = Account.sign_message(stop, other_buyer.private_key).signature.hex()
    assert error_code(client.post("/v1/leases/1/stop", json={"signature": wrong})) == (400, "bad_signature")
    right = Account.sign_message(stop, buyer.private_key).signature.hex()
    requested = client.post("/v1/leases/1/stop", json={"signature": right}).json()
    assert requested["stop_requested"] and requested["already"] is False
    assert client.post("/v1/leases/1/stop", json={"signature": right}).json()["already"] is True
    [view] = client.get(f"/v1/providers/{provider.address}/leases").json()["leases"]
    assert view["stop_requested"] and view["evidence"]["end_reason"] == "challenge_failed"

    set_time(chain, start + LOCK_WINDOW + LAPSE_MARGIN + 1)
    assert service.run_batch().batch_id is None  # never locked: no usage leaf, and nothing owed
    assert service.store.evidence_of(1).lapsed_at is not None
    assert client.get(f"/v1/providers/{provider.address}/leases?active=true").json()["leases"] == []
    assert client.post("/v1/proofs/lock", json={"lease_ids": [1]}).json()["missing"] == [1]
