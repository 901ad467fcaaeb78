"""The explorer's home page with a long history: server render time with N batches in the store.

Fills a fresh SQLite store (on /dev/shm when there is one, else a temporary directory) the way the matcher
would: per batch, an ask and two bids stored as orders, cleared by the real `clear_batch` (prices on a random
walk), two leases with their lease leaves plus a final usage leaf for a lease of an earlier batch, the root
posted, and the mirrored chain events (RootPosted, two LeaseLocked, one LeaseSettled). A few hundred open
orders stay in the book. Orders carry one real signature, reused (the store does not re-check signatures).

Then renders the home page (totals, book depth, prices, the 500-batch price chart, latest batches) and times:
- render: `Explorer.home()` plus the Jinja template, in process: the server's own work;
- http: `GET /` through the ASGI app (FastAPI's TestClient, no network), the whole request.
The chain reader is a stand-in that answers at once, so the figures are the matcher's, not the node's (a
local Anvil adds about a millisecond for `eth_getBlockByNumber`). Prints the machine and the figures.

    source scripts/lib.sh && python bench/explorer.py              # 10,000 batches
    python bench/explorer.py --batches 1000 --runs 50             # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from gpuspot.catalog import Catalog  # noqa: E402
from gpuspot.deployment import Deployment, MarketParameters  # noqa: E402
from gpuspot.protocol import Ask, Bid, Eip712Domain, keccak256, product_id, sign  # noqa: E402
from gpuspot.protocol.leaves import LeafKind, SettlementLeaf, settlement_tree  # noqa: E402
from matcher import explorer  # noqa: E402
from matcher.chain import ChainCursor, LeaseLocked, LeaseSettled, PostedRoot, RootPosted  # noqa: E402
from matcher.chain.events import ChainEvent  # noqa: E402
from matcher.clearing import BookAsk, BookBid, ProductBook, clear_batch  # noqa: E402
from matcher.clearing.book import HostId, OrderHash, PricePerGpuHour, Seconds  # noqa: E402
from matcher.explorer import BlockHead, Explorer  # noqa: E402
from matcher.explorer.routes import templates  # noqa: E402
from matcher.intake import AcceptedOrder, OrderKind  # noqa: E402
from matcher.store import NewBatch, Store, assign_lease_ids  # noqa: E402

ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract=ESCROW)
PRODUCTS = [product_id(name) for name in ("H100-80GB", "A100-80GB", "L40S-48GB")]
START_PRICE = 2_500_000
OPEN_ORDERS = 300
JOB = keccak256(b"job")


class InstantChain:
    """A `ChainReader` that answers at once: the benchmark times the matcher, not the node."""

    def __init__(self, now: int) -> None:
        self.now = now

    def head(self) -> BlockHead:
        return BlockHead(1_000_000, keccak256(b"head"), self.now)

    def batch_root(self, batch_id: int, block: int) -> tuple[bytes, int]:
        return b"\x00" * 32, 0

    def escrow_account(self, address: str) -> tuple[int, int]:
        return 0, 0

    def provider_stake(self, address: str) -> int:
        return 0

    def block_time(self, number: int) -> int:
        return self.now

    def token_symbol(self) -> str:
        return "tUSD"


def accounts(n: int, label: str) -> list[str]:
    return [str(Account.from_key(keccak256(f"{label} {i}".encode())).address) for i in range(n)]


def fill(store: Store, batches: int, now: int, seed: int) -> None:
    rng = random.Random(seed)
    buyers, providers = accounts(50, "buyer"), accounts(8, "provider")
    signature = sign(
        Bid(buyers[0], PRODUCTS[0], 1, 3600, START_PRICE, keccak256(b"job"), 1, now + 10**6),
        keccak256(b"buyer 0"),
        DOMAIN,
    )
    prices = dict.fromkeys(PRODUCTS, START_PRICE)
    nonce = 0
    block = 100
    lease_history: list[tuple[int, NewLeaseInfo]] = []

    def accepted(order: Bid | Ask, signer: str) -> AcceptedOrder:
        nonlocal nonce
        nonce += 1
        is_bid = isinstance(order, Bid)
        return AcceptedOrder(
            kind=OrderKind.BID if is_bid else OrderKind.ASK,
            order=order,
            order_hash=OrderHash(keccak256(b"order %d" % nonce)),
            signer=signer,
            signature=signature,
            max_cost=order.reservation if isinstance(order, Bid) else None,
            already_open=False,
        )

    for batch_id in range(1, batches + 1):
        at = now - (batches - batch_id) * 5
        product = PRODUCTS[batch_id % len(PRODUCTS)]
        prices[product] = max(1_000_000, prices[product] + rng.randint(-60_000, 60_000))
        price = prices[product]
        provider = providers[batch_id % len(providers)]
        host = keccak256(b"host %d" % (batch_id % 16))
        ask = Ask(provider, product, host, 8, 8 * 3600, price - 200_000, batch_id, at + 600)
        bids = [
            Bid(buyer, product, gpus, 3600, cap, JOB, 2 * batch_id + gpus, at + 600)
            for buyer, gpus, cap in (
                (buyers[rng.randrange(50)], 2, price + rng.randint(0, 400_000)),
                (buyers[rng.randrange(50)], 1, price + rng.randint(0, 400_000)),
            )
        ]
        orders = [accepted(ask, provider)] + [accepted(b, b.buyer) for b in bids]
        store.add_orders(orders, at)
        book_bids = tuple(
            BookBid(o.order_hash, b.buyer, b.gpus, Seconds(3600), PricePerGpuHour(b.max_price_per_gpu_hour))
            for o, b in zip(orders[1:], bids, strict=True)
        )
        floor = PricePerGpuHour(price - 200_000)
        book_ask = BookAsk(orders[0].order_hash, provider, HostId(host), 8, Seconds(8 * 3600), floor)
        book = ProductBook(book_bids, (book_ask,))
        clearing = clear_batch({product: book}, keccak256(b"seed %d" % batch_id), "uniform")
        leases = assign_lease_ids(clearing, store.next_lease_id())
        leaves = [
            SettlementLeaf(
                LeafKind.LEASE, batch_id, lease.lease_id, bytes(lease.match.bid_hash), lease.match.buyer,
                lease.match.provider, lease.product, lease.match.gpus, lease.match.duration,
                lease.match.price_per_gpu_hour, 0,
            )
            for lease in leases
        ]  # fmt: skip
        settled: list[tuple[int, SettlementLeaf]] = []
        if len(lease_history) > 6:
            old_batch, old = lease_history[-6]
            usage = old.leaf.usage(old.leaf.gpus * 1800, final=True)
            leaves.append(usage)
            settled.append((old.leaf.lease_id, usage))
        root = settlement_tree(leaves).root
        store.record_batch(NewBatch(batch_id, "bench-1", clearing, leases, leaves, root, at))
        block += 3
        tx = keccak256(b"root tx %d" % batch_id)
        store.mark_root_posted(batch_id, PostedRoot(batch_id, root, tx, block, 51_000, at + 2))
        events: list[ChainEvent] = [
            RootPosted(
                block_number=block, block_hash=keccak256(b"b%d" % block), tx_hash=tx, log_index=0,
                batch_id=batch_id, root=root, posted_at=at + 2,
            )
        ]  # fmt: skip
        for i, lease in enumerate(leases):
            events.append(
                LeaseLocked(
                    block_number=block + 1, block_hash=keccak256(b"b%d" % (block + 1)),
                    tx_hash=keccak256(b"lock %d" % batch_id), log_index=i, lease_id=lease.lease_id,
                    buyer=lease.match.buyer, provider=lease.match.provider, batch_id=batch_id,
                    nonce=batch_id, bid_digest=bytes(lease.match.bid_hash), reserved=10_000_000,
                )
            )  # fmt: skip
            lease_history.append((batch_id, NewLeaseInfo(leaves[i])))
        for i, (lease_id, usage) in enumerate(settled):
            paid = usage.used_gpu_seconds * usage.price_per_gpu_hour // 3600
            events.append(
                LeaseSettled(
                    block_number=block + 2, block_hash=keccak256(b"b%d" % (block + 2)),
                    tx_hash=keccak256(b"settle %d" % batch_id), log_index=i, lease_id=lease_id,
                    used_gpu_seconds=usage.used_gpu_seconds, paid=paid, refunded=1_000, closed=True,
                )
            )  # fmt: skip
        store.apply_chain(events, ChainCursor(block + 3), at=at + 3)
    # an open book: bids and asks that did not cross
    extra = []
    for i in range(OPEN_ORDERS):
        product = PRODUCTS[i % len(PRODUCTS)]
        if i % 2:
            order: Bid | Ask = Bid(
                buyers[i % 50], product, 1, 3600, 900_000, keccak256(b"job"), 10**6 + i, now + 10**6
            )
            extra.append(accepted(order, order.buyer))
        else:
            order = Ask(
                providers[i % 8],
                product,
                keccak256(b"host %d" % i),
                4,
                3600,
                9_000_000,
                10**6 + i,
                now + 10**6,
            )
            extra.append(accepted(order, order.provider))
    store.add_orders(extra, now)


class NewLeaseInfo:
    def __init__(self, leaf: SettlementLeaf) -> None:
        self.leaf = leaf


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base, prefix="gpuspot-bench-explorer-") as tmp:
        store = Store.open(f"sqlite:///{tmp}/matcher.db")
        now = int(time.time())
        started = time.perf_counter()
        fill(store, args.batches, now, args.seed)
        filled = time.perf_counter() - started
        size = os.path.getsize(f"{tmp}/matcher.db") + os.path.getsize(f"{tmp}/matcher.db-wal")
        deployment = Deployment(
            chain_id=31337, block_number=1, token=ESCROW, token_decimals=6, registry=ESCROW, escrow=ESCROW,
            owner=ESCROW, operator=ESCROW, arbiter=ESCROW, parameters=MarketParameters(),
        )  # fmt: skip
        view = Explorer(
            store=store,
            catalog=Catalog.default(),
            deployment=deployment,
            chain=InstantChain(now),
            judge=lambda lease_id: (_ for _ in ()).throw(RuntimeError("not used by the home page")),
            clock=lambda: now,
        )
        app = FastAPI()
        explorer.install(app, view)
        client = TestClient(app)
        template = templates.get_template("home.html")

        def render() -> str:
            return template.render(**view.home(), request_path="/")

        html = render()
        assert f'href="/batches/{args.batches}"' in html and "<polyline" in html
        for _ in range(5):
            render()
            assert client.get("/").status_code == 200
        render_ms, http_ms = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            render()
            render_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            answer = client.get("/")
            http_ms.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200
        totals = view.reads.totals(now)
        store.close()

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"store: {args.batches:,} batches, {totals.leases:,} leases, {totals.batches:,} batch rows, "
        f"{OPEN_ORDERS} open orders, {size / 2**20:.1f} MiB (filled in {filled:.0f} s)"
    )
    print(f"home page: {len(html) / 1024:.0f} KiB of HTML, {args.runs} runs")
    print(
        f"  render (Explorer.home + template): median {statistics.median(render_ms):.1f} ms, "
        f"p95 {percentile(render_ms, 95):.1f} ms"
    )
    print(
        f"  http (GET / through the ASGI app): median {statistics.median(http_ms):.1f} ms, "
        f"p95 {percentile(http_ms, 95):.1f} ms"
    )


if __name__ == "__main__":
    main()
