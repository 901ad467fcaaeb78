"""Order intake throughput: signed orders validated per second, one by one and through `validate_many`.

Generates signed orders (60% bids, 40% asks, 200 buyers and 50 providers, all funded and active, so every
order is accepted and runs every check), as the API receives them: one JSON body per order for the single
endpoint, one JSON array for the batch endpoint. Times, per order:

- single: `validate(body_text, view)` for each body (JSON parsing included);
- batch: `validate_many(json.loads(array_text), view)`;
- the share of the single path spent in JSON parsing (`json.loads` of the body), the order's schema and
  field validation (`parse_submission`: gpuspot.protocol's checks), the EIP-712 digest, signer recovery, and
  the rest (domain, terms and state checks);
- for reference, eth-account's generic path (`encode_typed_data` + `Account.recover_message`) on a sample.

Prints the machine and the medians of a few runs.

    source scripts/lib.sh && python bench/intake.py
    python bench/intake.py --orders 20000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import coincurve

from gpuspot.catalog import Catalog
from gpuspot.protocol import Ask, Bid, Eip712Domain, digest, keccak256, sign, to_json, typed_data
from gpuspot.protocol.orders import recover_digest_address
from matcher.intake import MarketSnapshot, OrderRejected, validate, validate_many
from matcher.intake.wire import parse_submission

CHAIN_ID = 31337
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = 1_800_000_000
PRICES = {"H100-80GB": 2_500_000, "A100-80GB": 1_400_000, "L40S-48GB": 900_000, "RTX4090-24GB": 400_000}


def _account(label: str) -> tuple[bytes, str]:
    from eth_utils.address import to_checksum_address

    private_key = keccak256(label.encode())
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return private_key, str(to_checksum_address(keccak256(public)[12:]))


def make_orders(count: int, seed: int) -> tuple[list[dict[str, Any]], MarketSnapshot, Eip712Domain]:
    """`count` signed submissions and a market view in which all of them are acceptable."""
    rng = random.Random(seed)
    domain = Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW)
    catalog = Catalog.default()
    buyers = [_account(f"bench buyer {n}") for n in range(200)]
    providers = [_account(f"bench provider {n}") for n in range(50)]
    nonces: dict[str, int] = {}
    payloads: list[dict[str, Any]] = []
    for _ in range(count):
        product = rng.choice(catalog.products)
        level = PRICES[product.name]
        price = max(10_000, round(level * rng.gauss(1.0, 0.15) / 10_000) * 10_000)
        order: Bid | Ask
        if rng.random() < 0.6:
            key, account = rng.choice(buyers)
            order = Bid(
                buyer=account,
                product=product.id,
                gpus=rng.choice((1, 1, 2, 4, 8)),
                duration=900 * rng.randint(1, 32),
                max_price_per_gpu_hour=price,
                job_spec_hash=rng.randbytes(32),
                nonce=nonces.setdefault(account, 0),
                expiry=NOW + rng.randint(60, 3600),
            )
        else:
            key, account = rng.choice(providers)
            order = Ask(
                provider=account,
                product=product.id,
                host_id=rng.randbytes(32),
                gpus=rng.choice((1, 2, 4, 8, 8)),
                max_duration=900 * rng.randint(1, 32),
                min_price_per_gpu_hour=price,
                nonce=nonces.setdefault(account, 0),
                expiry=NOW + rng.randint(60, 3600),
            )
        nonces[account] += 1
        payloads.append(
            {
                "type": order.TYPE_NAME.lower(),
                "order": json.loads(to_json(order)),
                "signature": sign(order, key, domain).hex(),
            }
        )
    view = MarketSnapshot(
        chain_id=CHAIN_ID,
        escrow=ESCROW,
        now=NOW,
        catalog=catalog,
        balances={account: 10**15 for _, account in buyers},
        active_providers=frozenset(account for _, account in providers),
    )
    return payloads, view, domain


def _median_seconds(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stage_times(bodies: Sequence[str], domain: Eip712Domain, runs: int) -> dict[str, float]:
    """Median seconds over all orders of each stage of the single path, run in isolation."""
    documents = [json.loads(body) for body in bodies]
    submissions = [parse_submission(document) for document in documents]
    digests = [digest(s.order, domain) for s in submissions]
    pairs = list(zip(digests, (s.signature for s in submissions), strict=True))
    return {
        "JSON parsing": _median_seconds(runs, lambda: [json.loads(body) for body in bodies]),
        "schema + fields": _median_seconds(runs, lambda: [parse_submission(d) for d in documents]),
        "digest": _median_seconds(runs, lambda: [digest(s.order, domain) for s in submissions]),
        "recovery": _median_seconds(runs, lambda: [recover_digest_address(d, sig) for d, sig in pairs]),
    }


def _reference_rate(payloads: Sequence[dict[str, Any]], domain: Eip712Domain) -> float:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    submissions = [parse_submission(p) for p in payloads]
    start = time.perf_counter()
    for s in submissions:
        Account.recover_message(
            encode_typed_data(full_message=typed_data(s.order, domain)), signature=s.signature.value
        )
    return len(submissions) / (time.perf_counter() - start)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="signed orders generated and validated")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument(
        "--reference", type=int, default=1_000, help="orders for eth-account's path (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated orders")
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.platform()}, {_cpu_model()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, coincurve {coincurve.__version__}"
    )
    start = time.perf_counter()
    payloads, view, domain = make_orders(args.orders, args.seed)
    print(f"generated and signed {len(payloads)} orders in {time.perf_counter() - start:.1f} s")
    bodies = [json.dumps(payload) for payload in payloads]
    array = json.dumps(payloads)

    results = validate_many(json.loads(array), view)
    rejected = [r for r in results if isinstance(r, OrderRejected)]
    assert not rejected, rejected[:3]

    single = _median_seconds(args.runs, lambda: [validate(body, view) for body in bodies])
    batch = _median_seconds(args.runs, lambda: validate_many(json.loads(array), view))
    n = len(bodies)
    print(f"{'path':<34} {'orders/s':>9} {'us/order':>9}")
    print(f"{'validate, one JSON body each':<34} {n / single:>9,.0f} {single / n * 1e6:>9.1f}")
    print(f"{'validate_many, one JSON array':<34} {n / batch:>9,.0f} {batch / n * 1e6:>9.1f}")

    stages = _stage_times(bodies, domain, args.runs)
    stages["checks and the rest"] = max(0.0, single - sum(stages.values()))
    print("share of the single path:")
    for name, seconds in stages.items():
        print(f"  {name:<22} {seconds / single:>6.1%} {seconds / n * 1e6:>7.1f} us/order")
    if args.reference:
        rate = _reference_rate(payloads[: args.reference], domain)
        print(f"eth-account encode_typed_data + recover_message: {rate:,.0f} orders/s (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
