"""The devnet's summary: what the market did (batches, leases, volume, clearing prices, payouts, refunds), as
the matcher and the SDK report it, and checks that every figure agrees with the chain to the base unit.

Figures come from the matcher's API through the SDK; the chain is read directly (events and balances of the
escrow and the token), never through the matcher, so a check compares two independent sources.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from gpuspot.devnet.network import BUYERS, PROVIDERS, Network
from gpuspot.devnet.scenario import DEPOSIT, MINT, Placed, ScenarioResult
from gpuspot.sdk import Stage, format_units


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LeaseLine:
    lease_id: int
    buyer: str
    provider: str
    product: str
    gpus: int
    duration: int
    price: int
    used_gpu_seconds: int
    paid: int
    refunded: int
    challenges_passed: int
    challenges_failed: int


@dataclass
class Summary:
    decimals: int
    symbol: str
    batches: int = 0
    roots_posted: int = 0
    leases: list[LeaseLine] = field(default_factory=list)
    payouts: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def money(self, amount: int) -> str:
        return f"{format_units(amount, self.decimals)} {self.symbol} ({amount} base units)"

    def render(self) -> str:
        contracted = sum(Fraction(line.gpus * line.duration, 3600) for line in self.leases)
        proven = sum(Fraction(line.used_gpu_seconds, 3600) for line in self.leases)
        prices: dict[str, set[int]] = {}
        for line in self.leases:
            prices.setdefault(line.product, set()).add(line.price)
        out = [
            "",
            "=== gpuspot devnet: summary ===",
            f"batches cleared: {self.batches} (roots posted on-chain: {self.roots_posted}); "
            f"leases: {len(self.leases)}",
            f"volume: {float(contracted):.4f} GPU-hours contracted, {float(proven):.4f} GPU-hours proven "
            f"and paid for",
            "clearing prices per GPU-hour: "
            + "; ".join(
                f"{product} {', '.join(self.money(p) for p in sorted(ps))}"
                for product, ps in sorted(prices.items())
            ),
            "",
            f"{'lease':>5}  {'buyer':<5} {'provider':<8} {'product':<10} {'gpus':>4} {'proven s':>8} "
            f"{'paid':>10} {'refunded':>10}  challenges",
        ]
        for line in self.leases:
            out.append(
                f"{line.lease_id:>5}  {line.buyer:<5} {line.provider:<8} {line.product:<10} {line.gpus:>4} "
                f"{line.used_gpu_seconds:>8} {line.paid:>10} {line.refunded:>10}  "
                f"{line.challenges_passed} passed, {line.challenges_failed} failed"
            )
        out.append("")
        out += [f"paid to {name}: {self.money(amount)}" for name, amount in sorted(self.payouts.items())]
        out += [f"refunded to {name}: {self.money(amount)}" for name, amount in sorted(self.refunds.items())]
        out.append("")
        held = sum(check.ok for check in self.checks)
        out.append(f"checks against the chain: {held} of {len(self.checks)} held")
        out += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(out)


def summarise(network: Network, result: ScenarioResult) -> Summary:
    assert network.deployment is not None
    token = network.token()
    escrow = network.escrow()
    summary = Summary(network.deployment.token_decimals, str(token.functions.symbol().call()))
    checks = summary.checks

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    batches = next(iter(result.buyers.values())).api.batches()
    summary.batches = sum(1 for b in batches if b["status"] != "empty")
    summary.roots_posted = sum(1 for b in batches if b["posted_tx_hash"])
    on_chain_roots = int(escrow.functions.lastBatchId().call())
    check(
        "roots",
        summary.roots_posted > 0 and all(_root_matches(escrow, b) for b in batches if b["posted_tx_hash"]),
        f"{summary.roots_posted} roots the matcher reports posted equal the escrow's batchRoot "
        f"(last batch id on-chain {on_chain_roots})",
    )

    provider_names: dict[str, str] = {str(plan.account.address): plan.name for plan in PROVIDERS}
    from_block = network.deployment.block_number
    paid_to: dict[str, int] = {}
    paid_by: dict[str, int] = {}
    for placed in result.placed:
        buyer = result.buyers[placed.plan.buyer]
        if not placed.plan.trades:
            status = buyer.order(placed.order_hash).status
            check(
                f"{placed.plan.buyer}'s bid under every ask",
                status == "cancelled" and placed.lease_id is None,
                f"order {placed.order_hash[:12]}... is {status}, no lease",
            )
            continue
        if placed.lease_id is None:
            check(f"{placed.plan.buyer}'s {placed.plan.product} bid", False, "no lease")
            continue
        lease = buyer.lease(placed.lease_id)
        challenges = buyer.api.challenges(lease.lease_id)
        passed = sum(1 for c in challenges if c["passed"] is True)
        failed = sum(1 for c in challenges if c["passed"] is False)
        provider = provider_names.get(lease.provider, lease.provider)
        line = LeaseLine(
            lease.lease_id, placed.plan.buyer, provider, lease.product_name or "?", lease.gpus,
            lease.duration, lease.price_per_gpu_hour, lease.used_gpu_seconds, lease.paid, lease.refunded,
            passed, failed,
        )  # fmt: skip
        summary.leases.append(line)
        paid_to[provider] = paid_to.get(provider, 0) + lease.paid
        paid_by[placed.plan.buyer] = paid_by.get(placed.plan.buyer, 0) + lease.paid
        summary.refunds[placed.plan.buyer] = summary.refunds.get(placed.plan.buyer, 0) + lease.refunded
        checks.extend(_lease_checks(escrow, from_block, placed, line, lease.closed))
        verification = buyer.verify_lease(lease.lease_id)
        failures = [c.name for c in verification.checks if not c.ok]
        check(
            f"lease {line.lease_id} verified by its buyer",
            verification.ok,
            f"{len(verification.checks)} local checks (root read from the chain, proofs, receipts, challenge "
            f"answers)" + (f"; failed: {', '.join(failures)}" if failures else ""),
        )
        if provider == "charlie":
            check(
                "charlie's faulty GPU caught",
                failed >= 1 and lease.used_gpu_seconds < placed.plan.job_seconds * lease.gpus,
                f"{failed} challenge(s) failed; paid for {lease.used_gpu_seconds} GPU-s of a "
                f"{placed.plan.job_seconds} s job, the rest refunded",
            )
        else:
            check(
                f"lease {line.lease_id} delivered",
                failed == 0 and passed >= 1 and _outputs_ok(buyer, lease.lease_id),
                f"{passed} challenge(s) passed, none failed; out/result.json downloaded and hash-checked",
            )
    summary.payouts = paid_to
    summary.leases.sort(key=lambda line: line.lease_id)

    # balances: every account's escrow entry and wallet, read from the chain
    for plan in PROVIDERS:
        available, reserved = (int(v) for v in escrow.functions.accountOf(plan.account.address).call())
        expected = paid_to.get(plan.name, 0)
        check(
            f"provider {plan.name}'s escrow balance",
            (available, reserved) == (expected, 0),
            f"on-chain {available} available, {reserved} reserved; summary pays it {expected}",
        )
    for name, buyer in result.buyers.items():
        available, reserved = (int(v) for v in escrow.functions.accountOf(buyer.address).call())
        withdrawn = result.withdrawn.get(name, 0)
        expected = DEPOSIT - paid_by.get(name, 0) - withdrawn
        check(
            f"buyer {name}'s escrow balance",
            (available, reserved) == (expected, 0),
            f"on-chain {available} available, {reserved} reserved; deposit {DEPOSIT} - paid "
            f"{paid_by.get(name, 0)} - withdrawn {withdrawn} = {expected}",
        )
        wallet = int(token.functions.balanceOf(buyer.address).call())
        check(
            f"buyer {name}'s wallet",
            wallet == MINT - DEPOSIT + withdrawn,
            f"on-chain {wallet}; minted {MINT} - deposited {DEPOSIT} + withdrawn {withdrawn}",
        )
    held = int(token.functions.balanceOf(escrow.address).call())
    ledger = sum(
        sum(int(v) for v in escrow.functions.accountOf(address).call())
        for address in [p.account.address for p in PROVIDERS] + [b.address for b in result.buyers.values()]
    )
    check(
        "escrow solvency", held == ledger, f"escrow holds {held} tokens; its ledger entries sum to {ledger}"
    )
    assert set(result.buyers) == set(BUYERS)
    return summary


def _lease_checks(escrow: Any, from_block: int, placed: Placed, line: LeaseLine, closed: bool) -> list[Check]:
    locked = escrow.events.LeaseLocked().get_logs(
        from_block=from_block, argument_filters={"leaseId": line.lease_id}
    )
    settled = escrow.events.LeaseSettled().get_logs(
        from_block=from_block, argument_filters={"leaseId": line.lease_id}
    )
    reserved = int(locked[0]["args"]["reserved"]) if len(locked) == 1 else None
    paid = sum(int(e["args"]["paid"]) for e in settled)
    refunded = sum(int(e["args"]["refunded"]) for e in settled)
    last_used = int(settled[-1]["args"]["usedGpuSeconds"]) if settled else 0
    expected_pay = line.used_gpu_seconds * line.price // 3600
    return [
        Check(
            f"lease {line.lease_id} money",
            len(locked) == 1
            and closed
            and placed.stage == Stage.SETTLED
            and (paid, refunded, last_used) == (line.paid, line.refunded, line.used_gpu_seconds)
            and paid == expected_pay
            and reserved == paid + refunded
            and refunded > 0,
            f"locked once ({reserved}); LeaseSettled events pay {paid} and refund {refunded} for "
            f"{last_used} GPU-s, as the summary says ({line.paid}, {line.refunded}); "
            f"{line.used_gpu_seconds} GPU-s x {line.price}/3600 = {expected_pay}",
        )
    ]


def _root_matches(escrow: Any, batch: dict[str, Any]) -> bool:
    root = escrow.functions.batchRoot(int(batch["batch_id"])).call()
    value = root[0] if isinstance(root, (list, tuple)) else root
    return bool("0x" + bytes(value).hex() == batch["root"])


def _outputs_ok(buyer: Any, lease_id: int) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        files = buyer.outputs(lease_id, Path(folder))
        return any(path.name == "result.json" and path.stat().st_size > 0 for path in files)
