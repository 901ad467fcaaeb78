"""Settlement trees: building a batch's tree and its proofs, as the matcher does after every batch.

For N lease leaves (default 1k, 10k, 100k; distinct leases of one batch), prints the time to build the
`SettlementLeaf` values, to build the tree (`gpuspot.protocol.settlement_tree`: leaf hashes, canonical order,
OpenZeppelin StandardMerkleTree), to make one multiproof for 100 leases (what a provider's `lockLeases` call
takes), and to verify it. Median of `--runs`.

    source scripts/lib.sh && python bench/settlement_tree.py
    python bench/settlement_tree.py --sizes 10000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuspot.protocol import (  # noqa: E402
    SettlementLeaf,
    keccak256,
    product_id,
    settlement_multiproof,
    settlement_tree,
)
from gpuspot.protocol.leaves import LEAF_ENCODING  # noqa: E402
from gpuspot.protocol.merkle import verify_multiproof  # noqa: E402

T = TypeVar("T")
BUYERS = [f"0x{n:040x}" for n in range(1, 201)]
PROVIDER = "0x" + "ab" * 20


def leaves(count: int) -> list[SettlementLeaf]:
    product = product_id("H100-80GB")
    return [
        SettlementLeaf(
            kind=0,
            batch_id=7,
            lease_id=1_000 + i,
            bid_digest=keccak256(i.to_bytes(8, "big")),
            buyer=BUYERS[i % len(BUYERS)],
            provider=PROVIDER,
            product=product,
            gpus=1 + i % 8,
            duration=3_600,
            price_per_gpu_hour=2_500_000 + i % 1_000,
            used_gpu_seconds=0,
        )
        for i in range(count)
    ]


def timed(runs: int, work: Callable[[], T]) -> tuple[float, T]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(times), result


def measure(n: int, runs: int) -> str:
    """One table row for a tree of `n` leaves."""
    built_in, values = timed(runs, lambda: leaves(n))
    tree_in, tree = timed(runs, lambda: settlement_tree(values))
    chosen = values[:: max(1, n // 100)][:100]
    proof_in, _ = timed(runs, lambda: settlement_multiproof(tree, chosen))
    proof = tree.get_multiproof([leaf.values() for leaf in chosen])  # leaf values, as verified
    verify_in, ok = timed(runs, lambda: verify_multiproof(tree.root, LEAF_ENCODING, proof))
    if not ok:
        raise SystemExit("settlement_tree: a multiproof did not verify")
    ms = [built_in * 1e3, tree_in * 1e3, proof_in * 1e3, verify_in * 1e3]
    return f"{n:>8} {ms[0]:>10.1f} {ms[1]:>9.1f} {ms[2]:>14.2f} {ms[3]:>10.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="leaves per tree"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size; the median is printed")
    args = parser.parse_args(argv)
    if any(not 100 <= n <= 1_000_000 for n in args.sizes) or not 1 <= args.runs <= 50:
        parser.error("bounds: --sizes 100..1000000, --runs 1..50")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"{'leaves':>8} {'values ms':>10} {'tree ms':>9} {'proof(100) ms':>14} {'verify ms':>10}")
    for n in args.sizes:
        print(measure(n, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
