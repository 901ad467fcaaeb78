"""The devnet's scripted market, run through the buyer SDK exactly as a buyer would use it.

Three buyers deposit and bid for jobs on three products; batches clear; the providers lock the leases, run
the jobs, prove them and are paid; the buyers get back what their jobs did not use. One provider (`charlie`)
has a faulty GPU: its first proof-of-work answer is wrong, the matcher's verifier catches it, the lease's
evidence ends there and its buyer is refunded the rest. One bid priced under every ask never trades and is
cancelled. One buyer withdraws what is left once its jobs are settled. Every figure is then checked against
the chain (summary.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gpuspot.devnet.network import BUYERS, Network, dev_account
from gpuspot.devnet.processes import DevnetError
from gpuspot.protocol import keccak256
from gpuspot.protocol.jobspec import JobInput, JobSpec
from gpuspot.sdk import Buyer, Stage, format_units

log = logging.getLogger(__name__)

MINT = 1_000_000_000
"""Test tokens minted to each buyer: 1,000 tUSD (6 decimals)."""
DEPOSIT = 200_000_000
"""What each buyer deposits into the escrow: 200 tUSD."""
LEASE_DURATION = 300
"""Seconds each bid asks for: the most its job may run. The jobs end sooner; the rest is refunded."""

JOB_SCRIPT = b'''\
"""A stand-in training job: reports progress, then writes its result to out/result.json."""
import json, os, sys, time

seconds = int(sys.argv[1])
for step in range(seconds):
    print(f"step {step + 1}/{seconds}", flush=True)
    time.sleep(1)
os.makedirs("out", exist_ok=True)
with open("out/result.json", "w") as out:
    json.dump({"steps": seconds, "loss": round(1 / (1 + seconds), 6)}, out)
print("done", flush=True)
'''


@dataclass(frozen=True)
class BidPlan:
    buyer: str
    product: str
    gpus: int
    max_price: int
    """Base units per GPU-hour."""
    job_seconds: int
    expect: str
    """What should happen, in words: printed, and checked by summary.py."""
    trades: bool = True
    """False for the bid priced under every ask: it stays open and is cancelled."""


PLANS = (
    BidPlan("ada", "H100-80GB", 1, 3_000_000, 20, "runs on alpha and finishes"),
    BidPlan("ben", "H100-80GB", 1, 2_500_000, 12, "runs on alpha beside ada's job and finishes"),
    BidPlan("ada", "A100-80GB", 2, 1_500_000, 10, "runs on bravo's two GPUs and finishes"),
    BidPlan("cleo", "L40S-48GB", 1, 1_000_000, 40, "runs on charlie, whose faulty GPU is caught"),
    BidPlan("cleo", "H100-80GB", 1, 500_000, 40, "priced under every ask: never trades, cancelled", False),
)
WITHDRAWING_BUYER = "ben"


@dataclass
class Placed:
    plan: BidPlan
    order_hash: str
    lease_id: int | None = None
    stage: Stage | None = None
    error: str | None = None


@dataclass
class ScenarioResult:
    buyers: dict[str, Buyer]
    placed: list[Placed]
    withdrawn: dict[str, int] = field(default_factory=dict)


def job_for(seconds: int) -> tuple[JobSpec, dict[str, bytes]]:
    """The job spec of a `seconds`-long run of JOB_SCRIPT, and its input's bytes (uploaded as a blob)."""
    spec = JobSpec.build(
        command=["python", "job.py", str(seconds)],
        inputs=[JobInput("job.py", keccak256(JOB_SCRIPT))],
        outputs=["out/result.json"],
    )
    return spec, {"job.py": JOB_SCRIPT}


def run_scenario(network: Network, progress: Callable[[str], None], timeout: float = 300) -> ScenarioResult:
    buyers = {
        name: Buyer.connect(network.rpc_url, network.matcher_url, dev_account(index))
        for name, index in BUYERS.items()
    }
    for name, buyer in buyers.items():
        buyer.mint_test_tokens(MINT)
        buyer.deposit(DEPOSIT)
        decimals = buyer.market.token_decimals
        progress(
            f"buyer {name} ({buyer.address}) minted {format_units(MINT, decimals)} tUSD and deposited "
            f"{format_units(DEPOSIT, decimals)} (approve, then deposit)"
        )

    placed: list[Placed] = []
    for plan in PLANS:
        spec, inputs = job_for(plan.job_seconds)
        bid = buyers[plan.buyer].place_bid(
            spec,
            product=plan.product,
            gpus=plan.gpus,
            duration=LEASE_DURATION,
            max_price_per_gpu_hour=plan.max_price,
            inputs=inputs,
        )
        placed.append(Placed(plan, bid.order_hash))
        price = format_units(plan.max_price, buyers[plan.buyer].market.token_decimals)
        progress(
            f"{plan.buyer} bids for {plan.gpus}x {plan.product} at most {price} tUSD/GPU-hour, a "
            f"{plan.job_seconds} s job: order {bid.order_hash[:12]}... ({plan.expect})"
        )

    result = ScenarioResult(buyers, placed)
    threads = [
        threading.Thread(target=_follow, args=(buyers[p.plan.buyer], p, progress, timeout), daemon=True)
        for p in placed
        if p.plan.trades
    ]
    for thread in threads:
        thread.start()

    # the bid under every ask: wait until a batch has considered it, then cancel it
    for p in placed:
        if not p.plan.trades:
            time.sleep(network.batch_interval * 2)
            info = buyers[p.plan.buyer].order(p.order_hash)
            if info.status != "open":
                raise DevnetError(f"the bid under every ask is {info.status}, not open: {info.raw}")
            buyers[p.plan.buyer].cancel(p.order_hash)
            p.stage = Stage.CANCELLED
            progress(f"{p.plan.buyer} cancels order {p.order_hash[:12]}... (open, priced under every ask)")

    withdrawal_requested = False
    deadline = time.monotonic() + timeout + 30
    while any(thread.is_alive() for thread in threads):
        if time.monotonic() > deadline:
            raise DevnetError("the scenario's leases did not all settle in time")
        if not withdrawal_requested and _all_settled(placed, WITHDRAWING_BUYER):
            buyer = buyers[WITHDRAWING_BUYER]
            amount = buyer.escrow_account().available
            buyer.request_withdrawal(amount)
            withdrawal_requested = True
            progress(
                f"{WITHDRAWING_BUYER}'s jobs are settled: requests withdrawal of {amount} base units "
                f"(notice {buyer.market.parameters.withdrawal_notice} s)"
            )
        time.sleep(0.5)
    for p in placed:
        if p.error is not None:
            raise DevnetError(f"{p.plan.buyer}'s order {p.order_hash}: {p.error}")

    buyer = buyers[WITHDRAWING_BUYER]
    if not withdrawal_requested:
        buyer.request_withdrawal(buyer.escrow_account().available)
    result.withdrawn[WITHDRAWING_BUYER] = buyer.withdraw(
        wait=True, on_wait=lambda text: progress(f"{WITHDRAWING_BUYER}'s {text}")
    )
    progress(f"{WITHDRAWING_BUYER} withdrew {result.withdrawn[WITHDRAWING_BUYER]} base units to its wallet")
    return result


def _all_settled(placed: list[Placed], buyer: str) -> bool:
    mine = [p for p in placed if p.plan.buyer == buyer and p.plan.trades]
    return bool(mine) and all(p.stage == Stage.SETTLED for p in mine)


def _follow(buyer: Buyer, placed: Placed, progress: Callable[[str], None], timeout: float) -> None:
    name = placed.plan.buyer
    last: list[str] = []

    def report(update: object) -> None:
        text = str(update)
        if not last or last[-1] != text:
            last.append(text)
            progress(f"{name} {placed.order_hash[:12]}...: {text}")

    try:
        outcome = buyer.follow(placed.order_hash, until=Stage.SETTLED, timeout=timeout, on_progress=report)
        placed.stage = outcome.stage
        placed.lease_id = outcome.lease.lease_id if outcome.lease is not None else None
        if outcome.stage != Stage.SETTLED:
            placed.error = f"ended {outcome.stage}, not settled"
    except Exception as exc:  # reported by the main thread, with the order it concerns
        log.exception("following %s failed", placed.order_hash)
        placed.error = f"{type(exc).__name__}: {exc}"
