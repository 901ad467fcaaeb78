"""Order intake over HTTP: signed orders accepted per second by the matcher's API, end to end.

Starts `anvil` on a free loopback port, deploys the token, the provider registry and the escrow with web3 from
ape's compiled artifacts (.build/__local__.json), funds the buyers (`depositFor` from one funder), writes the
deployment file and starts the real matcher, `python -m matcher`, as its own process (SQLite in a temporary
directory, API on 127.0.0.1). Then, for N pre-signed bids:

- single: `POST /v1/orders`, one order per request, from `--clients` concurrent connections spread over
  `--client-procs` processes (http.client, one thread per keep-alive connection);
- batch: `POST /v1/orders/batch`, `--batch-size` orders per request, over `--batch-clients` connections.

Each phase uses its own fresh orders (distinct nonces), and every order must be accepted; the matcher checks
each one in full (schema, domain, signature, nonce, balance, reservation) and stores it durably before it
answers. Clients, matcher and Anvil share the machine's cores: the figures include the clients' own cost.
Prints the machine and the figures.

    source scripts/lib.sh && python bench/intake_http.py
    python bench/intake_http.py --orders 200            # a quick check
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import coincurve  # noqa: E402
import httpx  # noqa: E402
from eth_utils.address import to_checksum_address  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402

from gpuspot.deployment import Deployment, MarketParameters  # noqa: E402
from gpuspot.protocol import Bid, Eip712Domain, keccak256, product_id, sign, to_json  # noqa: E402

# Anvil's first development account (public mnemonic): deployer, operator and funder. Devnet only.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
BUYERS = 200
DEPOSIT = 10**15
TIMEOUT = 600.0  # seconds, the whole run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_anvil() -> tuple[subprocess.Popen[bytes], str]:
    anvil = shutil.which("anvil")
    if anvil is None:
        sys.exit("intake_http: anvil is not on PATH: `source scripts/lib.sh` first")
    port = free_port()
    proc = subprocess.Popen(
        [anvil, "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if Web3(HTTPProvider(url)).is_connected():
                return proc, url
        except Exception:
            pass
        if proc.poll() is not None:
            sys.exit("intake_http: anvil exited at start")
        time.sleep(0.1)
    proc.terminate()
    sys.exit("intake_http: anvil did not answer within 30 s")


def _artifact(name: str) -> tuple[list[dict[str, Any]], str]:
    manifest = json.loads((ROOT / ".build" / "__local__.json").read_text())
    kind = manifest["contractTypes"][name]
    return kind["abi"], kind["deploymentBytecode"]["bytecode"]


def _send(web3: Web3, call: Any, sender: str) -> Any:
    receipt = web3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))
    if receipt.status != 1:
        raise RuntimeError(f"transaction reverted: {receipt}")
    return receipt


def deploy(web3: Web3, sender: str) -> Deployment:
    params = MarketParameters()
    addresses: dict[str, str] = {}
    first_block = None
    for name, args in (
        ("TestStablecoin", lambda: ()),
        (
            "ProviderRegistry",
            lambda: (addresses["TestStablecoin"], params.min_stake, params.exit_delay, sender, sender),
        ),
        (
            "Escrow",
            lambda: (
                addresses["TestStablecoin"],
                addresses["ProviderRegistry"],
                sender,
                sender,
                params.withdrawal_notice,
                params.lock_window,
                params.settle_window,
            ),
        ),
    ):
        abi, bytecode = _artifact(name)
        receipt = _send(web3, web3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args()), sender)
        addresses[name] = receipt.contractAddress
        first_block = first_block or receipt.blockNumber
    return Deployment(
        chain_id=web3.eth.chain_id,
        block_number=first_block,
        token=addresses["TestStablecoin"],
        token_decimals=6,
        registry=addresses["ProviderRegistry"],
        escrow=addresses["Escrow"],
        owner=sender,
        operator=sender,
        arbiter=sender,
        parameters=params,
    )


def fund(web3: Web3, deployment: Deployment, sender: str, buyers: list[str]) -> None:
    token = web3.eth.contract(address=deployment.token, abi=_artifact("TestStablecoin")[0])
    escrow = web3.eth.contract(address=deployment.escrow, abi=_artifact("Escrow")[0])
    total = DEPOSIT * len(buyers)
    _send(web3, token.functions.mint(sender, total), sender)
    _send(web3, token.functions.approve(deployment.escrow, total), sender)
    for buyer in buyers:
        _send(web3, escrow.functions.depositFor(buyer, DEPOSIT), sender)


def accounts(count: int) -> list[tuple[bytes, str]]:
    out = []
    for n in range(count):
        key = keccak256(f"intake_http buyer {n}".encode())
        public = coincurve.PrivateKey(key).public_key.format(compressed=False)[1:]
        out.append((key, str(to_checksum_address(keccak256(public)[12:]))))
    return out


def signed_bids(
    count: int, first_nonce: int, buyers: list[tuple[bytes, str]], domain: Eip712Domain
) -> list[dict[str, Any]]:
    product = product_id("H100-80GB")
    expiry = int(time.time()) + 86_400
    out = []
    for i in range(count):
        key, address = buyers[i % len(buyers)]
        bid = Bid(
            buyer=address,
            product=product,
            gpus=1 + i % 4,
            duration=3_600,
            max_price_per_gpu_hour=1_000_000 + i % 1000,
            job_spec_hash=b"\x00" * 32,
            nonce=first_nonce + i,
            expiry=expiry,
        )
        out.append({"type": "bid", "order": to_json(bid), "signature": sign(bid, key, domain).hex()})
    return out


def _post_all(base: str, path: str, bodies: list[bytes], connections: int) -> int:
    """POSTs every body to `path` over `connections` concurrent keep-alive connections (threads); raises on
    any refused order. The stdlib's http.client and pre-encoded bodies keep the clients' own CPU cost low:
    they share the cores with the matcher. Returns the number of requests."""
    host, port = base.removeprefix("http://").split(":")

    def post(chunk: list[bytes]) -> int:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            for body in chunk:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                text = response.read()
                if response.status != 200 or b'"error"' in text:  # a batch answers 200 with per-order errors
                    raise RuntimeError(f"rejected: {text[:500]!r}")
        finally:
            connection.close()
        return len(chunk)

    with ThreadPoolExecutor(connections) as pool:
        return sum(pool.map(post, [bodies[i::connections] for i in range(connections)]))


def _single_worker(base: str, bodies: list[bytes], connections: int) -> int:
    """One client process of the single phase: one order per request."""
    return _post_all(base, "/v1/orders", bodies, connections)


def run_single(base: str, orders: list[dict[str, Any]], clients: int, procs: int) -> float:
    bodies = [json.dumps(order).encode() for order in orders]
    parts = [bodies[i::procs] for i in range(procs)]
    per_proc = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(procs) as pool:
        started = time.perf_counter()
        accepted = sum(
            pool.starmap(_single_worker, [(base, part, n) for part, n in zip(parts, per_proc, strict=True)])
        )
        elapsed = time.perf_counter() - started
    assert accepted == len(orders)
    return elapsed


def run_batch(base: str, orders: list[dict[str, Any]], size: int, connections: int) -> float:
    """`size` orders per request over `connections` connections: a client encodes and decodes while the
    matcher works on another request."""
    bodies = [json.dumps(orders[start : start + size]).encode() for start in range(0, len(orders), size)]
    started = time.perf_counter()
    _post_all(base, "/v1/orders/batch", bodies, connections)
    return time.perf_counter() - started


def start_matcher(rpc: str, deployment: Deployment, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m matcher` on a free loopback port, on a fresh SQLite store; its base URL once it answers."""
    deployment_file = workdir / "deployment.json"
    deployment.save(deployment_file)
    port = free_port()
    log = (workdir / "matcher.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matcher",
            "--rpc-url",
            rpc,
            "--deployment-file",
            str(deployment_file),
            "--database-url",
            f"sqlite:///{workdir / 'matcher.db'}",
            "--batch-interval",
            "3600",  # no batch clears while the orders come in: intake alone is measured
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "GPUSPOT_MATCHER_OPERATOR_KEY": DEV_KEY},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"intake_http: the matcher exited at start:\n{(workdir / 'matcher.log').read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"intake_http: the matcher did not answer within 60 s:\n{(workdir / 'matcher.log').read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=5_000, help="orders per phase (default 5000)")
    parser.add_argument(
        "--clients", type=int, default=32, help="concurrent connections, single phase (default 32)"
    )
    parser.add_argument(
        "--client-procs", type=int, default=2, help="client processes they are spread over (default 2)"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="orders per batch request (default 500)")
    parser.add_argument(
        "--batch-clients", type=int, default=2, help="concurrent connections, batch phase (default 2)"
    )
    args = parser.parse_args(argv)
    if (
        not 1 <= args.orders <= 100_000
        or not 1 <= args.clients <= 256
        or not 1 <= args.client_procs <= min(args.clients, 16)
        or not 1 <= args.batch_size <= 5_000
        or not 1 <= args.batch_clients <= 16
    ):
        parser.error(
            "bounds: --orders 1..100000, --clients 1..256, --client-procs 1..min(clients, 16), "
            "--batch-size 1..5000, --batch-clients 1..16"
        )

    from eth_account import Account

    from matcher.chain.connection import connect

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    anvil, rpc = start_anvil()
    timer = threading.Timer(TIMEOUT, lambda: os._exit(3))  # bounded in time whatever happens
    timer.daemon = True
    timer.start()
    matcher: subprocess.Popen[bytes] | None = None
    tmp = tempfile.TemporaryDirectory(prefix="intake_http-")
    try:
        web3 = connect(rpc)
        operator = Account.from_key(DEV_KEY)
        deployment = deploy(web3, operator.address)
        buyers = accounts(BUYERS)
        fund(web3, deployment, operator.address, [address for _, address in buyers])
        domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.escrow)
        phases = 2
        t0 = time.perf_counter()
        orders = signed_bids(args.orders * phases, 1, buyers, domain)
        print(f"signed {len(orders)} bids in {time.perf_counter() - t0:.1f} s ({BUYERS} funded buyers)")
        matcher, base = start_matcher(rpc, deployment, Path(tmp.name))

        n = args.orders
        cpu0 = cpu_seconds(matcher.pid)
        single = run_single(base, orders[:n], args.clients, args.client_procs)
        cpu1 = cpu_seconds(matcher.pid)
        batch = run_batch(base, orders[n : 2 * n], args.batch_size, args.batch_clients)
        cpu2 = cpu_seconds(matcher.pid)
        print(
            f"single  POST /v1/orders       {n} orders, {args.clients} connections in {args.client_procs} "
            f"processes: {single:6.2f} s  {n / single:8.0f} orders/s  (target 1000); matcher CPU "
            f"{(cpu1 - cpu0) / n * 1e3:.2f} ms/order"
        )
        print(
            f"batch   POST /v1/orders/batch {n} orders, {args.batch_size}/request, {args.batch_clients} "
            f"connections: {batch:6.2f} s  "
            f"{n / batch:8.0f} orders/s  (target 5000); matcher CPU {(cpu2 - cpu1) / n * 1e3:.2f} ms/order"
        )
        metrics = dict(
            line.split()
            for line in httpx.get(f"{base}/metrics", timeout=10.0).text.splitlines()
            if line.startswith("gpuspot_matcher_intake_round")
        )
        rounds = metrics.get("gpuspot_matcher_intake_rounds_total")
        in_rounds = float(metrics.get("gpuspot_matcher_intake_round_seconds_total", 0))
        print(f"matcher: {rounds} intake rounds (state read + commit), {in_rounds:.2f} s in them")
    finally:
        if matcher is not None:
            stop(matcher)
        anvil.terminate()
        try:
            anvil.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anvil.kill()
        tmp.cleanup()
        timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
