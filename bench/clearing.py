"""Clearing time of one batch for 1k, 10k and 100k open orders (the pure core only: no I/O, no signatures).

Books are synthetic but shaped like the market's: half bids, half asks, spread over four products with
their own price levels; bids want 1 to 8 GPUs (mostly few) for 15 min to 8 h, asks offer hosts of 1 to 8
GPUs (mostly 8) for 15 min to 8 h; prices scatter about 15% around each product's level, quoted in whole
cents of tUSD (so equal prices, and seeded tie-breaks, are common). Prints the median and best of a few runs
per size, the leases made, and the machine.

    source scripts/lib.sh && python bench/clearing.py
    python bench/clearing.py --sizes 100000 --runs 5 --rule mcafee
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time

from gpuspot.protocol import product_id
from matcher.clearing import BookAsk, BookBid, PricingRule, ProductBook, clear_batch

# Catalog names and price levels in tUSD base units (6 decimals) per GPU-hour, with their share of orders.
PRODUCTS = {
    "H100-80GB": (2_500_000, 0.4),
    "A100-80GB": (1_400_000, 0.3),
    "L40S-48GB": (900_000, 0.2),
    "RTX4090-24GB": (400_000, 0.1),
}
CENT = 10_000
QUARTER_HOUR = 900
BID_GPUS = (1, 1, 1, 2, 2, 4, 8)
ASK_GPUS = (1, 2, 4, 8, 8, 8)


def _price(rng: random.Random, level: int) -> int:
    return max(CENT, round(level * rng.gauss(1.0, 0.15) / CENT) * CENT)


def _duration(rng: random.Random) -> int:
    return QUARTER_HOUR * rng.randint(1, 32)  # 15 min to 8 h


def make_books(orders: int, seed: int) -> dict[bytes, ProductBook]:
    """`orders` open orders, half bids and half asks, split across the products by their shares."""
    rng = random.Random(seed)
    names = list(PRODUCTS)
    weights = [share for _, share in PRODUCTS.values()]
    sides: dict[str, tuple[list[BookBid], list[BookAsk]]] = {name: ([], []) for name in names}
    for n in range(orders):
        name = rng.choices(names, weights)[0]
        level = PRODUCTS[name][0]
        if n % 2 == 0:
            sides[name][0].append(
                BookBid(
                    order_hash=rng.randbytes(32),
                    buyer=f"0x{rng.randrange(1 << 160):040x}",
                    gpus=rng.choice(BID_GPUS),
                    duration=_duration(rng),
                    max_price=_price(rng, level),
                )
            )
        else:
            sides[name][1].append(
                BookAsk(
                    order_hash=rng.randbytes(32),
                    provider=f"0x{rng.randrange(1 << 160):040x}",
                    host_id=rng.randbytes(32),
                    gpus=rng.choice(ASK_GPUS),
                    max_duration=_duration(rng),
                    min_price=_price(rng, level),
                )
            )
    return {
        product_id(name): ProductBook(bids=tuple(bids), asks=tuple(asks))
        for name, (bids, asks) in sides.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="open orders per batch"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per size (the median is reported)")
    parser.add_argument(
        "--rule", choices=[rule.value for rule in PricingRule], default=PricingRule.UNIFORM.value
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic books")
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"rule: {args.rule}, {args.runs} runs per size")
    print(f"{'orders':>8} {'products':>8} {'leases':>7} {'unmatched':>9} {'median s':>9} {'best s':>8}")
    batch_seed = b"\x42" * 32
    for size in args.sizes:
        books = make_books(size, args.seed)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = clear_batch(books, batch_seed, args.rule)
            times.append(time.perf_counter() - start)
        unmatched = sum(len(product.unmatched) for product in result.products)
        print(
            f"{size:>8} {len(books):>8} {result.totals.leases:>7} {unmatched:>9} "
            f"{statistics.median(times):>9.3f} {min(times):>8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
