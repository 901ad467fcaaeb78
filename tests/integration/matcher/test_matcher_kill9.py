"""kill -9 of the whole matcher: the real `python -m matcher` process, fed signed bids and asks that match
over HTTP, is SIGKILLed at seeded random moments while orders arrive and batches clear and post their
roots, and restarted on the same SQLite database each time (matcher_process.py).

Anvil mines a block a second for this test (not at once, as ape runs it): a root then waits in its
transaction for up to a second, as on a real chain, so a kill can find a batch recorded but its root not
yet posted. Every other kill is aimed at such a moment (the API shows a batch awaiting its root); the
others fall anywhere.

After every restart, and again at the end:
- no lost order: every order the API acknowledged (200 with its hash) is served by GET /v1/orders/{hash},
  and an order that left the book (matched, cancelled, expired) never comes back open or changes again;
- no duplicate root: the escrow's `RootPosted` events name each batch id once and agree with
  `batchRoot(id)`; every root on-chain is the root the matcher's store holds for that batch id; a batch the
  store once served never disappears or changes its root, and a posted batch stays posted.
At the end:
- every batch that awaited its root at a kill was posted after the restart, and the matcher reports no
  pending root;
- every acknowledged bid traded (asks are added to cover the book), in a batch whose root is on-chain, and
  no order was matched in two batches (a bid re-cleared after a crash would be committed under a second
  root).

The default case kills 5 times (about 12 s on 2 cores); the `long` one 20 times (about 50 s).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from market_driver import H100
from matcher_process import MatcherLauncher, MatcherProcess
from polling import wait_for
from web3 import Web3

from gpuspot.deployment import Deployment
from gpuspot.protocol import Ask, Bid, Eip712Domain, keccak256, sign, to_json
from matcher.chain import ESCROW, load_abi

SEED = 0x6B1119
"""Seeds the kill moments and the order flow; a failure message repeats it."""

BLOCK_TIME = 1
"""Seconds between Anvil's blocks while the test runs: roots wait for a block, as on a real chain."""

BATCH_INTERVAL = 1.0
AIMED_KILL_WAIT = 8.0
"""Seconds an aimed kill waits for a batch to await its root before it kills anyway."""

PENDING = frozenset({"awaiting_tx", "tx_stored"})
"""Batch statuses of a root not yet posted (matcher/store/records.py `BatchStatus`)."""

PRODUCT = "H100-80GB"  # market_driver.H100 is its id
ASK_GPUS = 8
BID_PRICE = 3_000_000  # 3 tUSD per GPU-hour: above every ask's floor, so every bid can trade
ASK_FLOOR = 2_000_000
BID_DURATION = 600  # a bid reserves 1 GPU x 10 min x 3 tUSD = 0.5 tUSD: thousands fit in a 1,000 tUSD deposit
ASK_MAX_DURATION = 7_200
ORDERS_PER_ASK = 4  # one ask of 8 GPUs for every 3 bids of 1 GPU: supply leads demand
SAMPLED_OLD_ORDERS = 40
"""Orders already seen after an earlier restart, re-read after each restart (all are read at the end)."""


@dataclass
class Signer:
    """An account's address and key, kept apart from ape's account objects for the flow's thread."""

    address: str
    key: str


@dataclass
class SignedOrders:
    """Signs the flow's orders, each with a fresh nonce of its signer: 1-GPU bids from the buyers in turn,
    and 8-GPU asks from the provider, each on its own host."""

    domain: Eip712Domain
    buyers: list[Signer]
    provider: Signer
    expiry: int
    nonces: Counter[str] = field(default_factory=Counter)
    bids: int = 0
    asks: int = 0

    def _nonce(self, account: str) -> int:
        self.nonces[account] += 1
        return self.nonces[account]

    def bid(self) -> dict[str, Any]:
        buyer = self.buyers[self.bids % len(self.buyers)]
        self.bids += 1
        bid = Bid(
            buyer=buyer.address,
            product=H100,
            gpus=1,
            duration=BID_DURATION,
            max_price_per_gpu_hour=BID_PRICE,
            job_spec_hash=keccak256(b"kill9 job %d" % self.bids),
            nonce=self._nonce(buyer.address),
            expiry=self.expiry,
        )
        return self._submission("bid", bid, buyer.key)

    def ask(self) -> dict[str, Any]:
        self.asks += 1
        ask = Ask(
            provider=self.provider.address,
            product=H100,
            host_id=keccak256(b"kill9 host %d" % self.asks),
            gpus=ASK_GPUS,
            max_duration=ASK_MAX_DURATION,
            min_price_per_gpu_hour=ASK_FLOOR,
            nonce=self._nonce(self.provider.address),
            expiry=self.expiry,
        )
        return self._submission("ask", ask, self.provider.key)

    def _submission(self, kind: str, order: Bid | Ask, key: str) -> dict[str, Any]:
        return {
            "type": kind,
            "order": to_json(order),
            "signature": "0x" + sign(order, key, self.domain).value.hex(),
        }


class OrderFlow(threading.Thread):
    """Submits signed orders to whichever matcher is up, one at a time or in small batch requests, until
    finished; records what the API acknowledged. A request cut short by a kill is counted as unanswered:
    its order may or may not be stored, and the test asks nothing of it."""

    def __init__(self, orders: SignedOrders, rng: random.Random) -> None:
        super().__init__(name="order-flow", daemon=True)
        self._orders = orders
        self._rng = rng
        self._target: str | None = None
        self._finished = False
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._submitted = 0
        self.acknowledged: dict[str, str] = {}
        """order hash (0x hex) -> "bid" or "ask", in acknowledgement order"""
        self.unanswered: Counter[str] = Counter()
        self.unexpected: list[str] = []
        """rejections and error statuses: none is expected, each is a finding"""
        self.crash: BaseException | None = None

    def point_at(self, url: str | None) -> None:
        """Sends the next orders to `url`; None holds them until a matcher is up again."""
        with self._changed:
            self._target = url
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self._finished = True
            self._changed.notify_all()
        self.join(timeout=30)
        assert not self.is_alive(), "the order flow did not stop"

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.acknowledged)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test: a thread's exception is otherwise lost
            self.crash = exc

    def _run(self) -> None:
        client: httpx.Client | None = None
        try:
            while True:
                with self._changed:
                    while self._target is None and not self._finished:
                        self._changed.wait()
                    if self._finished or self._target is None:
                        return
                    target = self._target
                if client is None or str(client.base_url).rstrip("/") != target:
                    if client is not None:
                        client.close()
                    client = httpx.Client(base_url=target, timeout=10.0)
                if self._rng.random() < 0.2:
                    self._submit_many(client, [self._next() for _ in range(self._rng.randint(2, 6))])
                else:
                    self._submit_one(client, self._next())
                time.sleep(self._rng.uniform(0.0, 0.04))  # pacing: about 30 orders a second
        finally:
            if client is not None:
                client.close()

    def _next(self) -> dict[str, Any]:
        self._submitted += 1
        return self._orders.ask() if self._submitted % ORDERS_PER_ASK == 1 else self._orders.bid()

    def _submit_one(self, client: httpx.Client, item: dict[str, Any]) -> None:
        try:
            response = client.post("/v1/orders", json=item)
        except httpx.TransportError:
            self.unanswered[item["type"]] += 1
            return
        if response.status_code == 200:
            self._acknowledge(response.json()["hash"], item["type"])
        else:
            self.unexpected.append(f"POST /v1/orders: {response.status_code} {response.text}")

    def _submit_many(self, client: httpx.Client, items: list[dict[str, Any]]) -> None:
        try:
            response = client.post("/v1/orders/batch", json=items)
        except httpx.TransportError:
            self.unanswered.update(item["type"] for item in items)
            return
        if response.status_code != 200:
            self.unexpected.append(f"POST /v1/orders/batch: {response.status_code} {response.text}")
            return
        for item, result in zip(items, response.json()["results"], strict=True):
            if "hash" in result:
                self._acknowledge(result["hash"], item["type"])
            else:
                self.unexpected.append(f"POST /v1/orders/batch item: {result}")

    def _acknowledge(self, order_hash: str, kind: str) -> None:
        with self._lock:
            self.acknowledged[order_hash.lower()] = kind


@dataclass
class Observed:
    """What the test has seen the matcher serve so far, across restarts: nothing here may be taken back."""

    order_status: dict[str, str] = field(default_factory=dict)
    batch_roots: dict[int, str | None] = field(default_factory=dict)
    posted_batches: set[int] = field(default_factory=set)
    pending_at_kill: set[int] = field(default_factory=set)
    """batches the API showed awaiting their root just before a kill"""
    aimed_hits: int = 0
    """aimed kills that found a root pending"""


def all_batches(api: httpx.Client) -> dict[int, dict[str, Any]]:
    """Every batch the matcher serves, by id (GET /v1/batches, every page); fails on an id served twice."""
    batches: dict[int, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/batches", params=params)
        assert page.status_code == 200, f"GET /v1/batches: {page.status_code} {page.text}"
        body = page.json()
        for batch in body["items"]:
            assert batch["batch_id"] not in batches, f"the API lists batch {batch['batch_id']} twice"
            batches[batch["batch_id"]] = batch
        cursor = body["next_cursor"]
        if cursor is None:
            return batches


def roots_on_chain(web3_escrow: Any, deployment: Deployment) -> dict[int, str]:
    """The escrow's roots by batch id at the latest block, from its `RootPosted` events, each checked against
    `batchRoot(id)` and `lastBatchId()` at that same block; fails if an id was posted twice (the escrow
    refuses that: a failure here would be a broken escrow)."""
    block = web3_escrow.w3.eth.block_number
    roots: dict[int, str] = {}
    events = web3_escrow.events.RootPosted.get_logs(from_block=deployment.block_number, to_block=block)
    for event in events:
        batch_id, root = int(event["args"]["batchId"]), "0x" + bytes(event["args"]["root"]).hex()
        assert batch_id not in roots, f"batch {batch_id} has two roots on-chain: {roots[batch_id]}, {root}"
        roots[batch_id] = root
    views = web3_escrow.functions
    for batch_id, root in roots.items():
        assert "0x" + bytes(views.batchRoot(batch_id).call(block_identifier=block)[0]).hex() == root
    assert int(views.lastBatchId().call(block_identifier=block)) == max(roots, default=0)
    return roots


def check_roots(
    web3_escrow: Any, deployment: Deployment, api: httpx.Client, observed: Observed, context: str
) -> None:
    """No duplicate root: the store and the chain agree on every root, and the store takes nothing back.

    The matcher runs meanwhile, so the chain is read before the store (a root on-chain was recorded in the
    store before it was sent) and again after it (a batch the store calls posted is on-chain by then)."""
    chain_before = roots_on_chain(web3_escrow, deployment)
    batches = all_batches(api)
    chain_after = roots_on_chain(web3_escrow, deployment)
    for batch_id, root in chain_before.items():
        stored = batches.get(batch_id)
        assert stored is not None, f"{context}: batch {batch_id} has root {root} on-chain; the store lost it"
    for batch_id, root in chain_after.items():
        stored = batches.get(batch_id)
        assert stored is None or stored["root"] == root, (
            f"{context}: batch {batch_id} has root {root} on-chain, the store holds {stored['root']}"
        )
    for batch_id, batch in batches.items():
        if batch["status"] == "posted":
            assert chain_after.get(batch_id) == batch["root"], (
                f"{context}: the store says batch {batch_id} is posted with root {batch['root']}; "
                f"the chain has {chain_after.get(batch_id)}"
            )
        first = observed.batch_roots.setdefault(batch_id, batch["root"])
        assert first == batch["root"], (
            f"{context}: batch {batch_id} had root {first}, now {batch['root']}: two roots for one id"
        )
    lost = set(observed.batch_roots) - set(batches)
    assert not lost, f"{context}: the store no longer has batches {sorted(lost)}"
    unposted = {b for b in observed.posted_batches if batches[b]["status"] != "posted"}
    assert not unposted, f"{context}: batches {sorted(unposted)} were posted, now they are not"
    observed.posted_batches |= {b for b, batch in batches.items() if batch["status"] == "posted"}


def read_order(api: httpx.Client, order_hash: str, context: str) -> dict[str, Any]:
    response = api.get(f"/v1/orders/{order_hash}")
    assert response.status_code == 200, (
        f"{context}: acknowledged order {order_hash} is lost: GET answered {response.status_code} "
        f"{response.text}"
    )
    body: dict[str, Any] = response.json()
    return body


def check_orders(api: httpx.Client, hashes: list[str], observed: Observed, context: str) -> None:
    """No lost order: each is served, and one that left the book never changes its status again."""
    for order_hash in hashes:
        status = read_order(api, order_hash, context)["status"]
        before = observed.order_status.get(order_hash)
        assert before in (None, "open", status), (
            f"{context}: order {order_hash} was {before}, now {status}: a restart took back a batch or a "
            "cancellation"
        )
        observed.order_status[order_hash] = status


def pending_batches(api: httpx.Client) -> set[int]:
    page = api.get("/v1/batches", params={"limit": 10})
    if page.status_code != 200:
        return set()
    return {b["batch_id"] for b in page.json()["items"] if b["status"] in PENDING}


@pytest.fixture
def block_time(interval_mining: Callable[[int], None]) -> int:
    """Anvil mines every BLOCK_TIME seconds during the test, then at once again (before ape reverts)."""
    interval_mining(BLOCK_TIME)
    return BLOCK_TIME


@pytest.fixture
def launcher(matcher_launcher: Callable[..., MatcherLauncher], escrow: Any, registry: Any) -> MatcherLauncher:
    """Starts `python -m matcher` processes on one database; ends any still running at teardown."""
    return matcher_launcher(batch_interval=BATCH_INTERVAL)


@pytest.mark.parametrize(
    "kills", [pytest.param(5, id="5-kills"), pytest.param(20, id="20-kills", marks=pytest.mark.long)]
)
def test_matcher_killed_with_sigkill_loses_no_order_and_posts_no_second_root(
    kills: int,
    launcher: MatcherLauncher,
    block_time: int,
    deployment: Deployment,
    web3: Web3,
    domain: Eip712Domain,
    chain: Any,
    buyer: Any,
    other_buyer: Any,
    provider: Any,
) -> None:
    rng = random.Random(SEED)
    web3_escrow = web3.eth.contract(
        address=Web3.to_checksum_address(deployment.escrow), abi=list(load_abi(ESCROW))
    )
    orders = SignedOrders(
        domain=domain,
        buyers=[Signer(b.address, str(b.private_key)) for b in (buyer, other_buyer)],
        provider=Signer(provider.address, str(provider.private_key)),
        expiry=int(max(time.time(), chain.pending_timestamp)) + 86_400,
    )
    flow = OrderFlow(orders, random.Random(SEED + 1))
    observed = Observed()
    checked: set[str] = set()

    def provider_seen(api: httpx.Client) -> bool:
        """The matcher's chain mirror has the provider's registration: its asks will be accepted."""
        answer = api.get(f"/v1/accounts/{provider.address}")
        return answer.status_code == 200 and bool(answer.json()["provider_active"])

    def check_after_restart(api: httpx.Client, context: str) -> None:
        acknowledged = list(flow.snapshot())
        new = [h for h in acknowledged if h not in checked]
        old = [h for h in acknowledged if h in checked]
        check_orders(api, new + rng.sample(old, min(len(old), SAMPLED_OLD_ORDERS)), observed, context)
        checked.update(new)
        check_roots(web3_escrow, deployment, api, observed, context)

    def kill(process: MatcherProcess, aimed: bool) -> None:
        """SIGKILLs the matcher: when `aimed`, as soon as the API shows a batch awaiting its root, else after
        a random delay."""
        if aimed:
            deadline = time.monotonic() + AIMED_KILL_WAIT
            with httpx.Client(base_url=process.url, timeout=2.0) as api:
                pending = pending_batches(api)
                while not pending and time.monotonic() < deadline:
                    time.sleep(0.02)
                    pending = pending_batches(api)
            observed.pending_at_kill |= pending
            observed.aimed_hits += bool(pending)
        else:
            time.sleep(rng.uniform(0.05, 2.5))  # the crash moment, not a wait for a condition
        flow.point_at(None)
        status = process.kill9()
        assert status == -9, f"matcher #{process.number} was not killed but exited: {process.describe()}"

    flow.start()
    try:
        for round_number in range(1, kills + 1):
            process = launcher.start(ready=provider_seen)
            with httpx.Client(base_url=process.url, timeout=10.0) as api:
                check_after_restart(api, f"after restart {round_number - 1} (seed {SEED:#x})")
            flow.point_at(process.url)
            kill(process, aimed=round_number % 2 == 0)

        process = launcher.start(ready=provider_seen)
        context = f"after the last restart ({kills} kills, seed {SEED:#x})"
        with httpx.Client(base_url=process.url, timeout=10.0) as api:
            check_after_restart(api, context)
            flow.point_at(process.url)
            time.sleep(rng.uniform(0.5, 1.5))  # the last matcher takes orders for a while, then the flow ends
            flow.finish()
            assert flow.crash is None, f"the order flow failed: {flow.crash!r}"
            assert not flow.unexpected, f"the matcher refused orders it should take: {flow.unexpected[:5]}"

            # asks for every open bid, so that the whole book can trade
            book = api.get(f"/v1/book/{PRODUCT}").json()
            open_bid_gpus = sum(level["gpus"] for level in book["bids"])
            for _ in range(math.ceil(open_bid_gpus / ASK_GPUS) + 1):
                answer = api.post("/v1/orders", json=orders.ask())
                assert answer.status_code == 200, f"covering ask refused: {answer.text}"

            def settled() -> bool:
                book = api.get(f"/v1/book/{PRODUCT}").json()
                return not book["bids"] and not any(b["status"] in PENDING for b in all_batches(api).values())

            wait_for(
                settled,
                timeout=60,
                failure=lambda: (
                    f"{context}: the book's bids did not all trade, or a root stayed pending; "
                    f"{process.describe()}"
                ),
            )
            final_checks(api, flow, observed, web3_escrow, deployment, context)
        status = process.stop()
        assert status == 0, f"the last matcher did not stop cleanly on SIGTERM: {process.describe()}"
    finally:
        if flow.is_alive():
            flow.finish()
    kinds = Counter(flow.acknowledged.values())
    print(  # shown with -s or -rA: what the campaign reached
        f"kill -9 x{kills} (seed {SEED:#x}): {kinds['bid']} bids and {kinds['ask']} asks acknowledged, "
        f"{sum(flow.unanswered.values())} cut short by a kill; {len(observed.posted_batches)} roots posted; "
        f"aimed kills found {observed.aimed_hits} of {kills // 2} times a root pending "
        f"(batches {sorted(observed.pending_at_kill)})"
    )


def final_checks(
    api: httpx.Client,
    flow: OrderFlow,
    observed: Observed,
    web3_escrow: Any,
    deployment: Deployment,
    context: str,
) -> None:
    """Every acknowledged order is served and every acknowledged bid traded in a posted batch; each root is
    the store's; no order was matched in two batches; every root pending at a kill was posted."""
    check_roots(web3_escrow, deployment, api, observed, context)
    batches = all_batches(api)
    chain_roots = roots_on_chain(web3_escrow, deployment)
    assert not {b for b, batch in batches.items() if batch["status"] in PENDING}, f"{context}: roots pending"

    acknowledged = flow.snapshot()
    check_orders(api, list(acknowledged), observed, context)
    matched_in: dict[str, int] = {}
    for batch_id, batch in sorted(batches.items()):
        if not batch["lease_count"]:
            continue
        inputs = api.get(f"/v1/batches/{batch_id}/inputs").json()
        for order in inputs["orders"]:
            if order["outcome"] != "matched":
                continue
            first = matched_in.setdefault(order["hash"], batch_id)
            assert first == batch_id, (
                f"{context}: order {order['hash']} matched in batch {first} and again in batch {batch_id}"
            )
    for order_hash, kind in acknowledged.items():
        if kind != "bid":
            continue
        body = read_order(api, order_hash, context)
        assert body["status"] == "matched", f"{context}: acknowledged bid {order_hash} is {body['status']}"
        traded_in = matched_in.get(order_hash)
        assert traded_in is not None, f"{context}: bid {order_hash} is matched but no batch's inputs say so"
        assert traded_in in chain_roots, (
            f"{context}: bid {order_hash} traded in batch {traded_in}, not posted"
        )
        history = [c["batch_id"] for c in body["history"] if c["status"] == "matched"]
        assert history == [traded_in], (
            f"{context}: bid {order_hash}'s history says {history}, not {traded_in}"
        )

    not_posted = {b for b in observed.pending_at_kill if b not in chain_roots}
    assert not not_posted, f"{context}: batches {sorted(not_posted)} awaited their root at a kill: not posted"
    # the campaign reached what it tests: roots posted, orders acknowledged, a kill with a root pending
    assert len(chain_roots) >= 2, f"{context}: only {len(chain_roots)} roots posted; the test proves little"
    assert sum(kind == "bid" for kind in acknowledged.values()) >= 10, f"{context}: too few bids acknowledged"
    assert observed.pending_at_kill, f"{context}: no kill found a root pending; the aimed kills never aimed"
