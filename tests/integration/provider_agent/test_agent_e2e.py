"""The provider agent end to end on Anvil: the real matcher process, the real agent process (CPU backend
standing in for two H100s), a buyer's signed bid, and the escrow's balances to the base unit.

Each test starts its own matcher on a fresh database (ape reverts the chain after every test) and its own
agent on a fresh state directory. Anvil mines a block a second, as a chain would. The matcher runs with
short intervals (receipts every second, a challenge every two) so a lease of a few seconds sees all of it.

- a lease from ask to payment: the agent registers, offers, locks, runs the job pinned to its devices,
  sends receipts, passes challenges, uploads its output, and is paid exactly proven time x price while the
  buyer gets the rest back;
- a job that crashes: the final receipt says failed, and the buyer pays only until the crash;
- the agent killed with SIGKILL mid-lease and restarted: the job survives under its supervisor, the receipt
  chain continues unbroken, the lease is locked once and paid once;
- a wrong challenge answer (a faulty GPU): Freivalds rejects it, the lease's evidence ends there, the buyer
  is refunded the rest;
- a job spec whose bytes do not hash to the bid's jobSpecHash: the agent refuses the lease before locking
  it, nobody pays anything, and the GPUs are offered again.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_process import AgentProcess, agent_environment, cpu_agent_settings, fast_evidence_env
from market_driver import DEPOSIT, H100
from matcher_process import MatcherLauncher, MatcherProcess
from polling import wait_for
from web3 import Web3

from gpuspot.deployment import Deployment
from gpuspot.protocol import Bid, Eip712Domain, keccak256, sign, to_json
from gpuspot.protocol.evidence import JobState
from gpuspot.protocol.jobspec import JobSpec
from matcher.chain import ESCROW, load_abi

BLOCK_TIME = 1
BID_PRICE = 3_000_000
FLOOR = 2_000_000


def cost(gpu_seconds: int, price: int) -> int:
    return gpu_seconds * price // 3600


@pytest.fixture
def block_time(interval_mining: Callable[[int], None]) -> int:
    interval_mining(BLOCK_TIME)
    return BLOCK_TIME


@pytest.fixture(scope="module")
def web3(chain: Any) -> Web3:
    return chain.provider.web3


@dataclass
class Market:
    """One test's market: the matcher process, the agent's settings, and views of the chain."""

    tmp_path: Path
    matcher: MatcherProcess
    api: httpx.Client
    deployment: Deployment
    deployment_file: Path
    web3: Web3
    escrow: Any
    domain: Eip712Domain
    buyer: Any
    agent_account: Any
    rpc_url: str
    db_path: Path

    def agent_settings(self, **extra: str) -> dict[str, str]:
        return (
            cpu_agent_settings(
                rpc_url=self.rpc_url,
                matcher_url=self.matcher.url,
                deployment_file=self.deployment_file,
                state_dir=self.tmp_path / "agent",
                floor_price=FLOOR,
            )
            | extra
        )

    def agent(self, **extra: str) -> AgentProcess:
        env = agent_environment(self.agent_settings(**extra), str(self.agent_account.private_key))
        return AgentProcess(env, self.tmp_path / "agent")

    def account(self, address: str) -> tuple[int, int]:
        available, reserved = self.escrow.functions.accountOf(address).call()
        return int(available), int(reserved)

    def put_spec(self, spec: JobSpec) -> bytes:
        data = spec.to_bytes()
        answer = self.api.put(f"/v1/blobs/0x{spec.hash().hex()}", content=data)
        assert answer.status_code in (200, 201), answer.text
        return spec.hash()

    def bid(self, spec_hash: bytes, *, gpus: int = 1, duration: int = 120, nonce: int = 1) -> str:
        bid = Bid(
            buyer=self.buyer.address,
            product=H100,
            gpus=gpus,
            duration=duration,
            max_price_per_gpu_hour=BID_PRICE,
            job_spec_hash=spec_hash,
            nonce=nonce,
            expiry=int(time.time()) + 3_600,
        )
        submission = {
            "type": "bid",
            "order": to_json(bid),
            "signature": "0x" + sign(bid, str(self.buyer.private_key), self.domain).value.hex(),
        }
        answer = self.api.post("/v1/orders", json=submission)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["hash"])

    def lease_of(self, bid_hash: str, agent_log: Callable[[], str]) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            leases = self.api.get(
                f"/v1/providers/{self.agent_account.address}/leases", params={"active": "false"}
            ).json()["leases"]
            return next((lease for lease in leases if lease["bid_hash"] == bid_hash), None)

        return dict(wait_for(find, 60, lambda: f"no lease for bid {bid_hash}; agent log:\n{agent_log()}"))

    def lease(self, lease_id: int) -> dict[str, Any]:
        return dict(self.api.get(f"/v1/leases/{lease_id}").json())

    def receipts(self, lease_id: int) -> list[dict[str, Any]]:
        return list(self.api.get(f"/v1/leases/{lease_id}/receipts").json()["receipts"])

    def challenges(self, lease_id: int) -> list[dict[str, Any]]:
        return list(self.api.get(f"/v1/leases/{lease_id}/challenges").json()["challenges"])

    def wait_closed(self, lease_id: int, agent_log: Callable[[], str], timeout: float = 90) -> dict[str, Any]:
        """Waits until the lease is settled to its end on-chain (the agent presented its final usage)."""
        return dict(
            wait_for(
                lambda: (lease := self.lease(lease_id))["status"] == "closed" and lease,
                timeout,
                lambda: (
                    f"lease {lease_id} not closed: {self.lease(lease_id)}\nagent log:\n{agent_log()}\n"
                    f"matcher log:\n{self.matcher.log_tail(3000)}"
                ),
            )
        )

    def settled_events(self, lease_id: int) -> list[dict[str, Any]]:
        logs = self.escrow.events.LeaseSettled().get_logs(
            from_block=self.deployment.block_number, argument_filters={"leaseId": lease_id}
        )
        return [dict(entry["args"]) for entry in logs]

    def locked_events(self, lease_id: int) -> list[dict[str, Any]]:
        logs = self.escrow.events.LeaseLocked().get_logs(
            from_block=self.deployment.block_number, argument_filters={"leaseId": lease_id}
        )
        return [dict(entry["args"]) for entry in logs]


@pytest.fixture
def market(
    tmp_path: Path,
    chain: Any,
    web3: Web3,
    deployment: Deployment,
    escrow: Any,
    registry: Any,
    buyer: Any,
    agent_account: Any,
    domain: Eip712Domain,
    block_time: int,
    matcher_launcher: Callable[..., MatcherLauncher],
) -> Iterator[Market]:
    launcher = matcher_launcher(batch_interval=1.0, extra_env=fast_evidence_env())
    process = launcher.start()
    with httpx.Client(base_url=process.url, timeout=10.0) as api:
        yield Market(
            tmp_path=tmp_path,
            matcher=process,
            api=api,
            deployment=deployment,
            deployment_file=tmp_path / "deployment.json",
            web3=web3,
            escrow=web3.eth.contract(
                address=Web3.to_checksum_address(deployment.escrow), abi=list(load_abi(ESCROW))
            ),
            domain=domain,
            buyer=buyer,
            agent_account=agent_account,
            rpc_url=chain.provider.http_uri,
            db_path=tmp_path / "matcher.db",
        )


def job(body: str, outputs: tuple[str, ...] = ("out.txt",)) -> JobSpec:
    return JobSpec.build(command=[sys.executable, "-c", body], outputs=outputs)


def assert_paid_exactly(market: Market, lease: dict[str, Any], receipts: list[dict[str, Any]]) -> int:
    """The final usage is gpus x (last receipt time - start), and the escrow paid exactly its cost to the
    provider and refunded the rest of the reservation to the buyer. Returns the cost."""
    final = [u for u in lease["usage"] if u["final"]]
    assert len(final) == 1, lease["usage"]
    used = int(final[0]["used_gpu_seconds"])
    start = int(lease["start"])
    end = min(int(receipts[-1]["time"]), start + int(lease["duration"]))
    assert used == int(lease["gpus"]) * max(0, end - start)
    price = int(lease["price_per_gpu_hour"])
    events = market.settled_events(int(lease["lease_id"]))
    assert sum(int(e["paid"]) for e in events) == cost(used, price)
    assert [bool(e["closed"]) for e in events][-1] is True
    provider_available, provider_reserved = market.account(market.agent_account.address)
    buyer_available, buyer_reserved = market.account(market.buyer.address)
    assert provider_reserved == 0 and buyer_reserved == 0
    assert buyer_available == DEPOSIT - cost(used, price)
    return cost(used, price)


def test_a_lease_from_ask_to_payment(market: Market) -> None:
    agent = market.agent().start()
    try:
        spec = job(
            "import os, pathlib, time\n"
            "time.sleep(5)\n"
            "pathlib.Path('out.txt').write_text(os.environ['GPUSPOT_SIMULATED_GPUS'] + '|'"
            " + os.environ['CUDA_VISIBLE_DEVICES'])\n"
        )
        bid_hash = market.bid(market.put_spec(spec))
        lease = market.lease_of(bid_hash, agent.log_tail)
        lease_id = int(lease["lease_id"])
        market.wait_closed(lease_id, agent.log_tail)
        lease = market.lease(lease_id)
        receipts = market.receipts(lease_id)

        assert [r["sequence"] for r in receipts] == list(range(len(receipts)))
        assert receipts[0]["job_state"] == JobState.RUNNING
        assert receipts[-1]["job_state"] == JobState.SUCCEEDED
        assert all(r["telemetry"]["backend"] == "cpu-simulated" for r in receipts)
        outputs = receipts[-1]["outputs"]["outputs"]
        blob = market.api.get(f"/v1/blobs/{outputs['out.txt']}")
        assert blob.status_code == 200
        simulated, visible = blob.content.decode().split("|")
        assert visible == "" and simulated.startswith("CPU-SIM-")  # pinned: no real GPU is visible to the job
        assert keccak256(blob.content) == bytes.fromhex(outputs["out.txt"][2:])

        verdicts = [c["outcome"] for c in market.challenges(lease_id)]
        assert "passed" in verdicts and set(verdicts) <= {"passed", None}, verdicts

        earned = assert_paid_exactly(market, lease, receipts)
        assert earned > 0
        assert market.account(market.agent_account.address)[0] == earned
        assert len(market.locked_events(lease_id)) == 1
    finally:
        agent.stop()


def test_a_job_that_crashes_is_paid_until_the_crash_and_the_buyer_gets_the_rest(market: Market) -> None:
    agent = market.agent().start()
    try:
        bid_hash = market.bid(market.put_spec(job("import sys, time\ntime.sleep(3)\nsys.exit(3)\n")))
        lease_id = int(market.lease_of(bid_hash, agent.log_tail)["lease_id"])
        market.wait_closed(lease_id, agent.log_tail)
        lease = market.lease(lease_id)
        receipts = market.receipts(lease_id)
        assert receipts[-1]["job_state"] == JobState.FAILED
        assert all(r["job_state"] == JobState.RUNNING for r in receipts[:-1])
        paid = assert_paid_exactly(market, lease, receipts)
        reservation = int(lease["gpus"]) * int(lease["duration"]) * BID_PRICE // 3600
        assert 0 < paid < reservation // 4, "a 3-second crash pays a few seconds of a two-minute lease"
    finally:
        agent.stop()


def test_an_agent_killed_mid_lease_resumes_without_double_claims_or_lost_receipts(market: Market) -> None:
    agent = market.agent().start()
    try:
        spec = job(
            "import pathlib, time\n"
            "with open('out.txt', 'a') as out:\n"
            "    out.write('started\\n')\n"
            "time.sleep(8)\n"
        )
        bid_hash = market.bid(market.put_spec(spec))
        lease_id = int(market.lease_of(bid_hash, agent.log_tail)["lease_id"])
        wait_for(
            lambda: len(market.receipts(lease_id)) >= 2,
            60,
            lambda: f"no receipts for lease {lease_id}; agent log:\n{agent.log_tail()}",
        )
        assert agent.kill9() == -9
        time.sleep(2)  # the job runs on under its supervisor while no agent watches
        agent.start()
        market.wait_closed(lease_id, agent.log_tail)
        lease = market.lease(lease_id)
        receipts = market.receipts(lease_id)
        assert [r["sequence"] for r in receipts] == list(range(len(receipts))), "one unbroken chain"
        assert receipts[-1]["job_state"] == JobState.SUCCEEDED
        outputs = receipts[-1]["outputs"]["outputs"]
        assert market.api.get(f"/v1/blobs/{outputs['out.txt']}").content == b"started\n", "the job ran once"
        assert len(market.locked_events(lease_id)) == 1
        assert len([e for e in market.settled_events(lease_id) if e["closed"]]) == 1
        used = int(next(u for u in lease["usage"] if u["final"])["used_gpu_seconds"])
        assert used >= 8, "the time the agent was down is proven too: the chain did not break"
        assert_paid_exactly(market, lease, receipts)
    finally:
        agent.stop()


def test_a_job_spec_that_does_not_match_the_bid_is_refused_before_locking(market: Market) -> None:
    agent = market.agent().start()
    try:
        spec_hash = market.put_spec(job("print('the buyer signed this')"))
        with sqlite3.connect(market.db_path) as db:  # the matcher's store serves other bytes for the hash
            db.execute(
                "UPDATE blobs SET data = ? WHERE hash = ?",
                (job("print('a swapped job')").to_bytes(), "0x" + spec_hash.hex()),
            )
        bid_hash = market.bid(spec_hash)
        lease_id = int(market.lease_of(bid_hash, agent.log_tail)["lease_id"])
        receipts = wait_for(
            lambda: market.receipts(lease_id),
            60,
            lambda: f"no receipt for lease {lease_id}; agent log:\n{agent.log_tail()}",
        )
        assert [r["job_state"] for r in receipts] == [JobState.REJECTED]
        assert "does not match" in agent.log_tail()

        def all_gpus_offered_again() -> bool:
            orders = market.api.get(f"/v1/accounts/{market.agent_account.address}").json()["orders"]
            return any(o["status"] == "open" and int(o["gpus"]) == 2 for o in orders)

        wait_for(all_gpus_offered_again, 30, lambda: f"GPUs not offered again:\n{agent.log_tail()}")
        assert market.locked_events(lease_id) == []
        assert market.account(market.buyer.address) == (DEPOSIT, 0), "the buyer paid nothing"
    finally:
        agent.stop()


def test_a_wrong_challenge_answer_is_caught_and_ends_the_lease(market: Market) -> None:
    """A faulty GPU (a product off by one in every entry) in an in-process agent: the fake sits at the one
    edge we cannot reach, the GPU itself."""
    from pydantic import SecretStr

    from gpuspot.protocol.challenge import numpy_matmul
    from provider_agent.__main__ import build_agent
    from provider_agent.config import AgentSettings

    settings = AgentSettings(
        **{k: v for k, v in market.agent_settings().items()},  # type: ignore[arg-type]
        provider_key=SecretStr(str(market.agent_account.private_key)),
    )

    def in_process() -> str:
        return "(the agent runs in this process: its log is in the captured output)"

    agent = build_agent(settings)
    agent.host.matmul = lambda device: lambda a, b: numpy_matmul(a, b) + 1
    agent.start()
    stop = threading.Event()
    loop = threading.Thread(target=agent.run_forever, args=(stop, 0.3), daemon=True)
    loop.start()
    try:
        bid_hash = market.bid(market.put_spec(job("import time\ntime.sleep(30)\n")))
        lease_id = int(market.lease_of(bid_hash, in_process)["lease_id"])
        market.wait_closed(lease_id, in_process)
        lease = market.lease(lease_id)
        challenges = market.challenges(lease_id)
        failed = [c for c in challenges if c["outcome"] == "wrong_product"]
        assert failed, challenges
        receipts = market.receipts(lease_id)
        issued = int(failed[0]["issued_at_ms"]) // 1000
        proven = [r for r in receipts if int(r["time"]) <= issued]
        paid = assert_paid_exactly(market, lease, proven)
        reservation = int(lease["gpus"]) * int(lease["duration"]) * BID_PRICE // 3600
        assert paid < reservation, "the buyer got back everything after the failed challenge"
    finally:
        stop.set()
        loop.join(timeout=30)
        agent.drain(0, 0.1)


def test_sigterm_drains_stops_the_job_with_a_final_receipt_and_the_next_start_settles(market: Market) -> None:
    agent = market.agent(drain_timeout="2").start()
    try:
        bid_hash = market.bid(market.put_spec(job("import time\ntime.sleep(60)\n")))
        lease_id = int(market.lease_of(bid_hash, agent.log_tail)["lease_id"])
        wait_for(
            lambda: len(market.receipts(lease_id)) >= 2,
            60,
            lambda: f"no receipts for lease {lease_id}; agent log:\n{agent.log_tail()}",
        )
        assert agent.stop() == 0, agent.log_tail()
        receipts = market.receipts(lease_id)
        assert receipts[-1]["job_state"] == JobState.STOPPED, "the buyer pays only until the stop"
        orders = market.api.get(f"/v1/accounts/{market.agent_account.address}").json()["orders"]
        assert not [o for o in orders if o["status"] == "open"], "a draining agent offers nothing"

        agent.start()  # the final usage is committed after the drain; the next start settles it
        market.wait_closed(lease_id, agent.log_tail)
        assert_paid_exactly(market, market.lease(lease_id), market.receipts(lease_id))
    finally:
        agent.stop()
