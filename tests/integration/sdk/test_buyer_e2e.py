"""The buyer SDK and CLI end to end on Anvil: the real matcher process, the real provider agent (its CPU
backend standing in for two H100s), and a buyer that deposits, bids, follows, verifies and checks its money.

- a whole lease through the SDK: deposit, place_bid (with an input file), follow to SETTLED with progress,
  receipts verified, outputs downloaded and hash-checked, verify_lease all ok, and the escrow's balance
  exactly deposit - paid; then the CLI as a subprocess (`status --json`, `verify`, `receipts --json`);
- what is refused or undone without a provider: a bid beyond the escrow's balance refused locally with
  nothing sent, a bid cancelled (SDK and CLI), and the matcher's refusal mapped to its error code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_process import AgentProcess, agent_environment, cpu_agent_settings, fast_evidence_env
from eth_account import Account
from eth_account.signers.local import LocalAccount
from matcher_process import REPOSITORY_ROOT, MatcherLauncher, MatcherProcess

from gpuspot.deployment import Deployment
from gpuspot.protocol import cost, keccak256
from gpuspot.protocol.jobspec import JobInput, JobSpec
from gpuspot.sdk import (
    Buyer,
    InsufficientFundsError,
    MatcherApiError,
    Progress,
    Stage,
    format_units,
)

FLOOR = 2_000_000
PRICE = 3_000_000
DEPOSIT = 50_000_000  # 50 tUSD: a 2-minute lease at 3 tUSD/GPU-hour reserves 0.1 tUSD


@pytest.fixture
def block_time(interval_mining: Callable[[int], None]) -> int:
    interval_mining(1)
    return 1


@pytest.fixture(scope="module")
def buyer_account(accounts: Any) -> LocalAccount:
    """A fresh buyer: nothing in its wallet or the escrow (the SDK mints test tokens and deposits)."""
    return Account.from_key(str(accounts[7].private_key))


@dataclass
class Market:
    tmp_path: Path
    matcher: MatcherProcess
    rpc_url: str
    deployment: Deployment
    deployment_file: Path
    agent_account: Any

    def agent(self) -> AgentProcess:
        settings = cpu_agent_settings(
            rpc_url=self.rpc_url,
            matcher_url=self.matcher.url,
            deployment_file=self.deployment_file,
            state_dir=self.tmp_path / "agent",
            floor_price=FLOOR,
        )
        env = agent_environment(settings, str(self.agent_account.private_key))
        return AgentProcess(env, self.tmp_path / "agent")

    def cli(self, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSPOT_BUYER_")}
        env |= {
            "GPUSPOT_BUYER_KEY": key,
            "GPUSPOT_BUYER_RPC_URL": self.rpc_url,
            "GPUSPOT_BUYER_MATCHER_URL": self.matcher.url,
        }
        return subprocess.run(
            [sys.executable, "-m", "gpuspot.cli", *args],
            cwd=REPOSITORY_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def market(
    tmp_path: Path,
    chain: Any,
    deployment: Deployment,
    escrow: Any,
    registry: Any,
    agent_account: Any,
    block_time: int,
    matcher_launcher: Callable[..., MatcherLauncher],
) -> Iterator[Market]:
    launcher = matcher_launcher(batch_interval=1.0, extra_env=fast_evidence_env())
    yield Market(
        tmp_path=tmp_path,
        matcher=launcher.start(),
        rpc_url=chain.provider.http_uri,
        deployment=deployment,
        deployment_file=tmp_path / "deployment.json",
        agent_account=agent_account,
    )


@pytest.fixture
def buyer(market: Market, buyer_account: LocalAccount) -> Iterator[Buyer]:
    with Buyer.connect(market.rpc_url, market.matcher.url, buyer_account) as buyer:
        yield buyer


def test_a_lease_from_deposit_to_verified_settlement(market: Market, buyer: Buyer, tmp_path: Path) -> None:
    data = b"the buyer's input\n"
    spec = JobSpec.build(
        command=[
            sys.executable,
            "-c",
            "import pathlib, time\n"
            "text = pathlib.Path('data/in.txt').read_text()\n"
            "time.sleep(4)\n"
            "pathlib.Path('out').mkdir()\n"
            "pathlib.Path('out/result.txt').write_text(text.upper())\n",
        ],
        inputs=[JobInput(path="data/in.txt", keccak256=keccak256(data))],
        outputs=["out/result.txt"],
    )
    assert buyer.escrow_account().available == 0
    buyer.mint_test_tokens(2 * DEPOSIT)
    wallet_before = buyer.token_balance()
    assert wallet_before == 2 * DEPOSIT
    buyer.deposit(DEPOSIT)
    assert buyer.escrow_account().available == DEPOSIT
    assert buyer.token_balance() == wallet_before - DEPOSIT

    agent = market.agent().start()
    try:
        placed = buyer.place_bid(
            spec,
            product="H100-80GB",
            gpus=1,
            duration=120,
            max_price_per_gpu_hour=PRICE,
            inputs={"data/in.txt": data},
        )
        seen: list[Progress] = []
        result = buyer.follow(placed.order_hash, timeout=120, poll=0.3, on_progress=seen.append)
        assert result.stage is Stage.SETTLED, (result, agent.log_tail(), market.matcher.log_tail(3000))
        stages = [p.stage for p in seen]
        assert stages == sorted(stages), "the stages only move forward"
        assert Stage.RUNNING in stages and stages[-1] is Stage.SETTLED
        assert seen[-1].challenges_passed >= 1 and seen[-1].challenges_failed == 0
        lease = result.lease
        assert lease is not None and lease.closed and result.order.lease_id == lease.lease_id

        receipts = buyer.receipts(lease.lease_id)
        assert [r.sequence for r in receipts] == list(range(len(receipts)))
        assert receipts[-1].job_state.terminal and all(r.signer == lease.provider for r in receipts)

        written = buyer.outputs(lease.lease_id, tmp_path / "results")
        assert written == [(tmp_path / "results" / "out" / "result.txt").resolve()]
        assert written[0].read_bytes() == b"THE BUYER'S INPUT\n"

        verification = buyer.verify_lease(lease.lease_id)
        names = [c.name for c in verification.checks]
        assert verification.ok, verification.checks
        for expected in ("bid signature", "lease leaf in root", "receipts", "usage within receipts"):
            assert expected in names
        assert any(n.startswith("challenge") for n in names)
        assert any(n.startswith("usage leaf in batch") for n in names)
        assert "settlement on-chain" in names

        final_used = next(int(u["used_gpu_seconds"]) for u in lease.usage if u["final"])
        paid = cost(final_used, lease.price_per_gpu_hour)
        assert paid > 0 and lease.paid == paid
        account = buyer.escrow_account()
        assert (account.available, account.reserved) == (DEPOSIT - paid, 0), "to the base unit"

        key = "0x" + bytes(buyer.account.key).hex()
        status = market.cli(key, "status", placed.order_hash, "--json")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert document["stage"] == "settled"
        assert document["lease"]["paid"] == {"base_units": str(paid), "tokens": format_units(paid, 6)}
        verify = market.cli(key, "verify", str(lease.lease_id))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "FAIL" not in verify.stdout and "checks hold" in verify.stdout
        listed = market.cli(key, "receipts", str(lease.lease_id), "--json")
        assert listed.returncode == 0 and len(json.loads(listed.stdout)["receipts"]) == len(receipts)
    finally:
        agent.stop()


def test_refusals_and_cancellation_without_a_provider(market: Market, buyer: Buyer) -> None:
    spec = JobSpec.build(command=["true"])
    with pytest.raises(InsufficientFundsError, match="holds 0 base units"):
        buyer.deposit(1_000_000)
    buyer.mint_test_tokens(1_000_000)
    buyer.deposit(1_000_000)  # 1 tUSD
    # 2 GPUs x 1 hour at 3 tUSD: 6 tUSD of max cost, refused before anything is sent
    with pytest.raises(InsufficientFundsError, match="deposit at least 5000000 more") as refused:
        buyer.place_bid(spec, product="H100-80GB", gpus=2, duration=3600, max_price_per_gpu_hour=PRICE)
    assert refused.value.shortfall == 5_000_000
    with pytest.raises(MatcherApiError) as missing:
        buyer.api.get_blob(spec.hash())
    assert missing.value.code == "not_found", "not even the job spec was uploaded"
    assert buyer.api.account(buyer.address)["orders"] == []

    placed = buyer.place_bid(spec, product="H100-80GB", gpus=1, duration=60, max_price_per_gpu_hour=PRICE)
    assert buyer.order(placed.order_hash).status == "open"
    # the same nonce again: the matcher's code comes through as MatcherApiError.code
    with pytest.raises(MatcherApiError) as used:
        buyer.place_bid(
            spec,
            product="H100-80GB",
            gpus=1,
            duration=61,
            max_price_per_gpu_hour=PRICE,
            nonce=placed.bid.nonce,
        )
    assert used.value.code == "nonce_used" and used.value.status == 400
    assert buyer.cancel(placed.order_hash).status == "cancelled"
    result = buyer.follow(placed.order_hash, timeout=5, poll=0.1)
    assert result.stage is Stage.CANCELLED and result.lease is None
    with pytest.raises(MatcherApiError) as again:
        buyer.cancel(placed.order_hash)
    assert again.value.code == "not_open"

    key = "0x" + bytes(buyer.account.key).hex()
    second = buyer.place_bid(spec, product="H100-80GB", gpus=1, duration=60, max_price_per_gpu_hour=PRICE)
    cancelled = market.cli(key, "cancel", second.order_hash, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    refused_cli = market.cli(key, "cancel", second.order_hash)
    assert refused_cli.returncode == 1 and "[not_open]" in refused_cli.stderr
    assert "Traceback" not in refused_cli.stderr
