"""`python -m provider_agent check`: the host's self-test, before it sells anything.

It runs the agent's GPU path without a chain or a matcher and prints what it found:
1. discovery: the backend (NVML or the labelled CPU stand-in), each device, the catalog product it sells as;
2. per device, a proof-of-work challenge answered on that device, with the time to answer (generation,
   product, commitment) and the time to verify it as the matcher does (a fresh audit, Freivalds over the
   opened rows), and what the answer costs a lease that is challenged every `--every` seconds;
3. a short job pinned to the first device, which prints what it sees (`CUDA_VISIBLE_DEVICES`, and the GPU
   through torch when torch is installed).
Exit status 0 when every challenge passed and the job succeeded. docs/gpu.md records runs on real GPUs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

from gpuspot.catalog import Catalog
from gpuspot.protocol import challenge as pow
from gpuspot.protocol import keccak256
from gpuspot.protocol.jobspec import JobSpec
from provider_agent import jobs
from provider_agent.host import HostError, discover, product_for

__all__ = ["main"]

JOB = (
    "import os, sys\n"
    "print('CUDA_VISIBLE_DEVICES=' + os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)'))\n"
    "print('GPUSPOT_BACKEND=' + os.environ.get('GPUSPOT_BACKEND', '(unset)'))\n"
    "try:\n"
    "    import torch\n"
    "except ImportError:\n"
    "    print('torch: not installed'); sys.exit(0)\n"
    "n = torch.cuda.device_count()\n"
    "names = ''.join(f'; {i}: {torch.cuda.get_device_name(i)}' for i in range(n))\n"
    "print(f'torch sees {n} CUDA device(s)' + names)\n"
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpuspot-provider check",
        description="Self-test of this host: GPU discovery, a proof-of-work challenge on each GPU (timed, "
        "verified as the matcher does), and a short job pinned to a GPU. No chain or matcher needed.",
    )
    parser.add_argument("--backend", choices=["auto", "nvml", "cpu"], default="auto", help="default auto")
    parser.add_argument("--simulates", help="with --backend cpu: the catalog product the CPU stands in for")
    parser.add_argument("--cpu-gpus", type=int, default=1, help="with --backend cpu: devices to simulate")
    parser.add_argument("--n", type=int, default=pow.DEFAULT_N, help=f"challenge size ({pow.DEFAULT_N})")
    parser.add_argument(
        "--every", type=int, default=300, help="seconds between a lease's challenges, for the cost (300)"
    )
    parser.add_argument("--catalog-file", type=Path, help="products TOML (default config/products.toml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    catalog = Catalog.load(args.catalog_file) if args.catalog_file else Catalog.default()
    try:
        host = discover(args.backend, cpu_gpus=args.cpu_gpus, simulates=args.simulates)
        devices = host.devices()
        product = product_for(devices, catalog)
    except HostError as exc:
        print(f"discovery failed: {exc}", file=sys.stderr)
        return 1
    print(f"gpuspot host check, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"backend: {host.backend}; sells as {product.name}")
    for key, value in sorted(host.describe().items()):
        if key != "devices":
            print(f"  {key}: {value}")
    for device in devices:
        print(f"  device {device.index}: {device.name}, {device.uuid}, {device.memory_bytes // 2**20} MiB")

    ok = True
    block = keccak256(b"gpuspot host check %d" % time.time_ns())
    print(f"challenges (n = {args.n}, {pow.DEFAULT_OPENED_ROWS} opened rows, {pow.DEFAULT_ROUNDS} rounds):")
    for sequence, device in enumerate(devices):
        issued = time.time_ns() // 1_000_000
        challenge = pow.Challenge.derive(block, 0, sequence, args.n, issued_at_ms=issued)
        backend = host.matmul(device)
        started = time.perf_counter()
        answer = pow.answer(challenge, backend)
        answered = time.perf_counter()
        committed_at = time.time_ns() // 1_000_000
        verifier_seed = os.urandom(32)
        rows = pow.draw_audit(challenge, answer.root, verifier_seed).rows
        opening = pow.RowOpening.from_bytes(answer.open(rows).to_bytes())
        opened = time.perf_counter()
        verdict = pow.verify_opening(
            challenge, answer.root, opening, committed_at_ms=committed_at, verifier_seed=verifier_seed
        )
        verified = time.perf_counter()
        answer_ms = (answered - started) * 1000
        share = answer_ms / 1000 / args.every * 100
        print(
            f"  device {device.index}: {verdict.outcome} in {answer_ms:.0f} ms (deadline "
            f"{challenge.deadline_ms} ms); opening {(opened - answered) * 1000:.0f} ms; verify "
            f"{(verified - opened) * 1000:.0f} ms; {share:.3f}% of a lease challenged every {args.every} s"
        )
        ok = ok and verdict.passed and answer_ms <= challenge.deadline_ms

    with tempfile.TemporaryDirectory(prefix="gpuspot-check-") as tmp:
        workdir = Path(tmp) / "job"
        spec = JobSpec.build([sys.executable, "-c", JOB])
        jobs.prepare_workdir(spec, workdir, lambda _hash: b"")
        handle = jobs.start_job(0, spec, workdir, host.job_env(devices[:1]), time.time() + 60)
        status = handle.wait(90)
        print(f"job pinned to device {devices[0].index}: {status}")
        for line in handle.log_files()["stdout"].read_text(errors="replace").splitlines():
            print(f"  | {line}")
        ok = ok and status.exit_code == 0
    host.close()
    print("check passed" if ok else "check FAILED")
    return 0 if ok else 1
