"""What a proof-of-work challenge costs the prover and the verifier, per matrix size n.

For each n: generating A and B from the seed (Philox4x32-10 in numpy), the CPU reference product (float64
BLAS, exact), committing to C (keccak256 row tree), verifying a whole product (Freivalds over every row,
n <= 4096 only: larger products do not travel) and verifying a row opening (the default audit), with the
wire sizes of both answers and the device memory a GPU needs for A, B and C. With torch and CUDA present,
also the GPU product: the int8 kernel alone (CUDA events, operands on the device) and the whole backend call
(host to device, kernel, device to host), checked against the reference. Prints the median of a few runs.

    source scripts/lib.sh && python bench/challenge.py
    python bench/challenge.py --sizes 4096 8192 --runs 1 --rows 32 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from gpuspot.protocol import keccak256
from gpuspot.protocol.challenge import (
    DEFAULT_OPENED_ROWS,
    DEFAULT_ROUNDS,
    MAX_PRODUCT_RESPONSE_N,
    Challenge,
    MatmulBackend,
    ProductResponse,
    answer,
    challenge_matrices,
    draw_audit,
    numpy_matmul,
    product_root,
    verify,
    verify_opening,
)

ISSUED_MS = 1_700_000_000_000
VERIFIER_SEED = keccak256(b"bench verifier")
Matrix = npt.NDArray[Any]


def timed(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The median wall time of `runs` calls, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cuda_backend() -> tuple[MatmulBackend, Callable[[Matrix, Matrix, int], float], str] | None:
    """The GPU hook: a `MatmulBackend` on torch's int8 matmul (int32 accumulation, exact), a kernel-only
    timer, and the device's name; None without torch or CUDA. The provider agent's own backend replaces it."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    device = torch.device("cuda")

    def matmul(a: Matrix, b: Matrix) -> Matrix:
        product = torch._int_mm(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device))
        result: Matrix = product.cpu().numpy()
        return result

    def kernel_seconds(a: Matrix, b: Matrix, runs: int) -> float:
        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        torch._int_mm(ta, tb)  # warm-up: cuBLASLt picks its algorithm
        times: list[float] = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch._int_mm(ta, tb)
            end.record()
            torch.cuda.synchronize()
            times.append(float(start.elapsed_time(end)) / 1000)
        return statistics.median(times)

    return matmul, kernel_seconds, torch.cuda.get_device_name(device)


def measure(n: int, args: argparse.Namespace, gpu: tuple[Any, ...] | None) -> str:
    """One table line for size n."""
    challenge = Challenge.derive(keccak256(b"bench block"), 1, n, n, issued_at_ms=ISSUED_MS)
    gen_s, (a, b) = timed(args.runs, lambda: challenge_matrices(challenge))
    cpu_s, product = timed(args.runs, lambda: numpy_matmul(a, b))
    commit_s, _ = timed(args.runs, lambda: product_root(product))
    solved = answer(challenge, lambda a, b: product)  # the product just timed, not a second one

    verify_c, c_bytes = "-", "-"
    if n <= MAX_PRODUCT_RESPONSE_N:
        response = solved.response()
        seconds, verdict = timed(
            args.runs,
            lambda: verify(
                challenge, response, answered_at_ms=ISSUED_MS, verifier_seed=VERIFIER_SEED, rounds=args.rounds
            ),
        )
        assert verdict.passed, verdict
        assert len(response.to_bytes()) <= ProductResponse.max_size()
        verify_c, c_bytes = f"{seconds * 1e3:.1f}", str(len(response.to_bytes()))

    rows = min(args.rows, n)
    audit = draw_audit(challenge, solved.root, VERIFIER_SEED, rows=rows, rounds=args.rounds)
    opening = solved.open(audit.rows)
    rows_s, verdict = timed(
        args.runs,
        lambda: verify_opening(
            challenge,
            solved.root,
            opening,
            committed_at_ms=ISSUED_MS,
            verifier_seed=VERIFIER_SEED,
            rows=rows,
            rounds=args.rounds,
        ),
    )
    assert verdict.passed, verdict
    device_memory = f"{6 * n * n / 2**20:.0f} MiB"  # A and B int8, C int32
    line = (
        f"{n:>6} {gen_s * 1e3:>10.1f} {cpu_s * 1e3:>9.1f} {commit_s * 1e3:>9.1f} {verify_c:>11} "
        f"{rows_s * 1e3:>14.1f} {c_bytes:>10} {len(opening.to_bytes()):>10} {device_memory:>8}"
    )
    if gpu:
        matmul, kernel_seconds, _ = gpu
        # The first call also warms the CUDA context up; it must match the reference bit for bit.
        assert np.array_equal(matmul(a, b), product), "the GPU product differs from the reference"
        call_s, _ = timed(args.runs, lambda: matmul(a, b))
        line += f" {kernel_seconds(a, b, args.runs) * 1e3:>13.3f} {call_s * 1e3:>11.1f}"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096], help="n")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (the median is reported)")
    parser.add_argument("--rows", type=int, default=DEFAULT_OPENED_ROWS, help="rows a row audit opens")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="Freivalds vectors per check")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU figures even if CUDA is there")
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"
    )
    gpu = None if args.no_gpu else cuda_backend()
    print(f"gpu: {gpu[2] if gpu else 'none (torch with CUDA not available): GPU product not timed'}")
    print(f"audit: {args.rows} opened rows, {args.rounds} Freivalds rounds; median of {args.runs} runs")
    header = (
        f"{'n':>6} {'gen A,B ms':>10} {'CPU C ms':>9} {'commit ms':>9} {'verify C ms':>11} "
        f"{'verify rows ms':>14} {'C bytes':>10} {'rows bytes':>10} {'GPU mem':>8}"
    )
    if gpu:
        header += f" {'GPU kernel ms':>13} {'GPU call ms':>11}"
    print(header)
    for n in args.sizes:
        print(measure(n, args, gpu), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
