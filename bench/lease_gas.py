"""Gas a lease costs on-chain, from real transactions on Anvil (calldata and the 21,000 base included).

For 1, 10 and 100 leases in one call it deploys the market, signs bids with real keys, posts the settlement
roots and sends, as a provider would:
  - lock then settle: `lockLeases` at the start, `settleLeases` with final usage at the end (two calls);
  - lock-and-settle: one `settleLeases` for leases still open inside the lock window;
  - reclaim: `reclaimLeases` after the settle window for locked leases nobody settled.
Buyers are either all distinct (worst case: every lease touches a cold account and nonce word) or ten buyers
whose nonce words are already in use (steady state). Prints a table; run with --help for options.

    source scripts/lib.sh && python bench/lease_gas.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from eth_account import Account

from gpuspot.deploy import deploy_market
from gpuspot.deployment import MarketParameters
from gpuspot.protocol import (
    Bid,
    Eip712Domain,
    SettlementLeaf,
    SignedLease,
    lease_leaf,
    lock_call,
    product_id,
    reclaim_call,
    settle_call,
    settlement_tree,
    sign,
)

PRICE = 2_500_000  # 2.50 tUSD per GPU-hour
CAP = 3_000_000
GPUS = 1
DURATION = 3_600
PARAMS = MarketParameters(
    min_stake=1_000_000, exit_delay=86_400, withdrawal_notice=7_200, lock_window=3_700, settle_window=600
)


class Bench:
    def __init__(self, project, chain, accounts):
        self.project, self.chain = project, chain
        self.funder, self.provider = accounts[0], accounts[1]
        deployment = deploy_market(project, self.funder, chain.chain_id, PARAMS, progress=lambda _: None)
        self.token = project.TestStablecoin.at(deployment.token)
        self.escrow = project.Escrow.at(deployment.escrow)
        registry = project.ProviderRegistry.at(deployment.registry)
        self.domain = Eip712Domain(chain_id=chain.chain_id, verifying_contract=deployment.escrow)
        self.token.mint(self.provider, PARAMS.min_stake, sender=self.provider)
        self.token.approve(registry, PARAMS.min_stake, sender=self.provider)
        registry.register(b"\x01" * 32, PARAMS.min_stake, sender=self.provider)
        self.token.approve(self.escrow, 2**255, sender=self.funder)
        self.batch = 0
        self.lease_id = 0
        self.nonces: dict[str, int] = {}
        self.trees: dict[int, object] = {}

    def buyers(self, count: int) -> list:
        keys = [Account.create() for _ in range(count)]
        for key in keys:
            amount = 10**12
            self.token.mint(self.funder, amount, sender=self.funder)
            self.escrow.depositFor(key.address, amount, sender=self.funder)
        return keys

    def leases(self, buyers: list, count: int) -> tuple[int, list[SignedLease]]:
        self.batch += 1
        out = []
        for i in range(count):
            key = buyers[i % len(buyers)]
            nonce = self.nonces.get(key.address, 0)
            self.nonces[key.address] = nonce + 1
            self.lease_id += 1
            bid = Bid(
                buyer=key.address,
                product=product_id("H100-80GB"),
                gpus=GPUS,
                duration=DURATION,
                max_price_per_gpu_hour=CAP,
                job_spec_hash=b"\x42" * 32,
                nonce=nonce,
                expiry=self.chain.pending_timestamp + 86_400,
            )
            leaf = lease_leaf(
                bid,
                self.domain,
                batch_id=self.batch,
                lease_id=self.lease_id,
                provider=self.provider.address,
                price_per_gpu_hour=PRICE,
            )
            out.append(SignedLease(bid, sign(bid, key.key, self.domain).compact(), leaf))
        return self.batch, out

    def post(self, batch: int, leaves: list[SettlementLeaf]) -> tuple[int, int]:
        tree = settlement_tree(leaves)
        self.trees[batch] = tree
        receipt = self.escrow.postRoot(batch, tree.root, sender=self.funder)
        return int(self.escrow.batchRoot(batch).postedAt), receipt.gas_used

    def lock(self, batch: int, leases: list[SignedLease]):
        return self.escrow.lockLeases(batch, *lock_call(self.trees[batch], leases), sender=self.provider)

    def settle(
        self,
        batch: int,
        usage_batch: int,
        leases: list[SignedLease],
        usages: list[SettlementLeaf],
        *,
        signed: bool,
    ):
        args = settle_call(
            self.trees[batch],
            self.trees[usage_batch],
            list(zip(leases, usages, strict=True)),
            with_signatures=signed,
        )
        return self.escrow.settleLeases(batch, usage_batch, *args, sender=self.provider)

    def reclaim(self, batch: int, leases: list[SignedLease]):
        return self.escrow.reclaimLeases(batch, *reclaim_call(self.trees[batch], leases), sender=self.funder)

    def warp(self, timestamp: int) -> None:
        self.chain.pending_timestamp = timestamp

    def run(self, buyers: list, n: int) -> dict[str, int]:
        """One round of each path for `n` leases; returns gas per call."""
        gas: dict[str, int] = {}
        # lock, then settle at the end
        batch, leases = self.leases(buyers, n)
        start, gas["postRoot"] = self.post(batch, [x.leaf for x in leases])
        gas["lock"] = self.lock(batch, leases).gas_used
        self.warp(start + DURATION)
        usages = [x.leaf.usage(GPUS * DURATION, final=True) for x in leases]
        usage_batch = self.batch = self.batch + 1
        self.post(usage_batch, usages)
        gas["settle (locked)"] = self.settle(batch, usage_batch, leases, usages, signed=False).gas_used
        # lock and settle in one call (a lease still open inside the lock window)
        batch, leases = self.leases(buyers, n)
        start, _ = self.post(batch, [x.leaf for x in leases])
        self.warp(start + DURATION)
        usages = [x.leaf.usage(GPUS * DURATION, final=True) for x in leases]
        usage_batch = self.batch = self.batch + 1
        self.post(usage_batch, usages)
        gas["lock+settle (one call)"] = self.settle(batch, usage_batch, leases, usages, signed=True).gas_used
        # reclaim after the settle window
        batch, leases = self.leases(buyers, n)
        start, _ = self.post(batch, [x.leaf for x in leases])
        self.lock(batch, leases)
        self.warp(start + DURATION + PARAMS.settle_window)
        gas["reclaim"] = self.reclaim(batch, leases).gas_used
        return gas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1,10,100", help="leases per call, comma-separated (default 1,10,100)"
    )
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    logging.getLogger("ape").setLevel(logging.WARNING)

    import ape  # imported late: loading ape takes a second and is not needed for --help

    rows = []
    with ape.networks.parse_network_choice("ethereum:local:foundry"):
        bench = Bench(ape.project, ape.chain, ape.accounts.test_accounts)
        for scenario in ("distinct buyers", "10 buyers, warm nonce words"):
            for n in sizes:
                t0 = time.monotonic()
                if scenario == "distinct buyers":
                    buyers = bench.buyers(n)
                else:
                    buyers = bench.buyers(min(n, 10))
                    batch, warm_up = bench.leases(buyers, len(buyers))  # one earlier lock each: words in use
                    bench.post(batch, [x.leaf for x in warm_up])
                    bench.lock(batch, warm_up)
                gas = bench.run(buyers, n)
                print(f"  measured {scenario}, {n} leases in {time.monotonic() - t0:.1f}s", file=sys.stderr)
                rows.append((scenario, n, gas))

    print(f"\nLease gas on Anvil (real transactions; {GPUS} GPU x {DURATION}s leases, one provider)\n")
    print(
        "| buyers | leases/call | postRoot | lock | settle (locked) | lock+settle | reclaim |"
        " per lease: lock + settle | per lease: one call |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario, n, g in rows:
        two = (g["lock"] + g["settle (locked)"]) / n
        one = g["lock+settle (one call)"] / n
        print(
            f"| {scenario} | {n} | {g['postRoot']:,} | {g['lock']:,} | {g['settle (locked)']:,} | "
            f"{g['lock+settle (one call)']:,} | {g['reclaim']:,} | {two:,.0f} | {one:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
