"""Order intake over HTTP: signed orders accepted per second by the matcher's API, end to end.

Starts `anvil` on a free loopback port (a subprocess, stopped at exit), deploys the token, the provider
registry and the escrow with web3 from ape's compiled artifacts (.build/__local__.json), funds the buyers
(`depositFor` from one funder), builds the real `MatcherService` (SQLite in a temporary directory) and serves
`create_app(service)` with uvicorn on 127.0.0.1 in a thread of this process. Then, for N pre-signed bids:

- single: `POST /v1/orders`, one order per request, from `--clients` concurrent httpx clients (threads);
- batch: `POST /v1/orders/batch`, `--batch-size` orders per request, one client.

Each phase uses its own fresh orders (distinct nonces), and every order must be accepted. The clients run in
this process too (one GIL for server and clients: the figures are a floor). Prints the machine and the
figures.

    source scripts/lib.sh && python bench/intake_http.py
    python bench/intake_http.py --orders 200            # a quick check
"""

from __future__ import annotations

import argparse
import json
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

from gpuspot.catalog import Catalog  # noqa: E402
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


def run_single(base: str, orders: list[dict[str, Any]], clients: int) -> float:
    chunks = [orders[i::clients] for i in range(clients)]

    def worker(chunk: list[dict[str, Any]]) -> int:
        ok = 0
        with httpx.Client(base_url=base, timeout=60.0) as client:
            for order in chunk:
                response = client.post("/v1/orders", json=order)
                if response.status_code != 200:
                    raise RuntimeError(f"rejected: {response.text}")
                ok += 1
        return ok

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(worker, chunks))
    elapsed = time.perf_counter() - started
    assert accepted == len(orders)
    return elapsed


def run_batch(base: str, orders: list[dict[str, Any]], size: int) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=120.0) as client:
        for start in range(0, len(orders), size):
            response = client.post("/v1/orders/batch", json=orders[start : start + size])
            results = response.json()["results"]
            bad = [r for r in results if "error" in r]
            if response.status_code != 200 or bad:
                raise RuntimeError(f"rejected: {bad[:1] or response.text}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=5_000, help="orders per phase (default 5000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, single phase (default 4)")
    parser.add_argument("--batch-size", type=int, default=500, help="orders per batch request (default 500)")
    args = parser.parse_args(argv)
    if not 1 <= args.orders <= 100_000 or not 1 <= args.clients <= 32 or not 1 <= args.batch_size <= 5_000:
        parser.error("bounds: --orders 1..100000, --clients 1..32, --batch-size 1..5000")

    import uvicorn
    from eth_account import Account

    from matcher.api import create_app
    from matcher.chain import ChainWatcher, RootPoster
    from matcher.chain.connection import connect
    from matcher.service import MatcherService
    from matcher.store import Store

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    print(f"keccak backend: {os.environ.get('ETH_HASH_BACKEND', 'default')}")
    anvil, rpc = start_anvil()
    timer = threading.Timer(TIMEOUT, lambda: os._exit(3))  # bounded in time whatever happens
    timer.daemon = True
    timer.start()
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
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

        service = MatcherService(
            store=Store.open(f"sqlite:///{Path(tmp.name) / 'matcher.db'}"),
            catalog=Catalog.default(),
            deployment=deployment,
            web3=web3,
            poster=RootPoster.from_deployment(web3, deployment, operator),
            watcher=ChainWatcher.from_deployment(web3, deployment, confirmations=0),
        )
        service.sync_chain()
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        while not server.started:
            time.sleep(0.05)

        n = args.orders
        single = run_single(base, orders[:n], args.clients)
        batch = run_batch(base, orders[n : 2 * n], args.batch_size)
        print(
            f"single  POST /v1/orders       {n} orders, {args.clients} clients: {single:6.2f} s  "
            f"{n / single:8.0f} orders/s  (target 1000)"
        )
        print(
            f"batch   POST /v1/orders/batch {n} orders, {args.batch_size}/request:  {batch:6.2f} s  "
            f"{n / batch:8.0f} orders/s  (target 5000)"
        )
        service.close()
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
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
