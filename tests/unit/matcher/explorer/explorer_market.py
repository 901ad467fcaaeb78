"""A small market in a real SQLite store for the explorer's tests: an ask and two bids cleared in batch 1
(two leases), its root posted and mirrored, lease 1 locked with two signed receipts, a passed challenge, a
usage leaf in batch 2 and a settle event; a fake chain that answers from the store; and a FastAPI app
with only the explorer installed, driven by TestClient."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from matcher.api import errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from store_market import (  # noqa: E402
    DOMAIN,
    ESCROW,
    NOW,
    accepted,
    address,
    ask,
    bid,
    cleared_batch,
    event,
    key,
)

from gpuspot.catalog import Catalog  # noqa: E402
from gpuspot.deployment import Deployment, MarketParameters  # noqa: E402
from gpuspot.protocol import keccak256  # noqa: E402
from gpuspot.protocol.evidence import JobState, Receipt, sign_receipt  # noqa: E402
from matcher import explorer  # noqa: E402
from matcher.chain import ChainCursor, LeaseLocked, LeaseSettled, PostedRoot, RootPosted  # noqa: E402
from matcher.evidence.verifier import EvidencePolicy, EvidenceVerifier  # noqa: E402
from matcher.explorer import BlockHead, ChainUnavailableError, Explorer  # noqa: E402
from matcher.store import ChallengeRecord, Store  # noqa: E402

ZERO = b"\x00" * 32
START = NOW + 30
HEAD = 120


@dataclass
class FakeChain:
    """Answers like the escrow would: a batch's root is what `roots` holds (the posted ones)."""

    roots: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    down: bool = False
    root_reads: list[tuple[int, int]] = field(default_factory=list)

    def _up(self) -> None:
        if self.down:
            raise ChainUnavailableError("the node did not answer: connection refused")

    def head(self) -> BlockHead:
        self._up()
        return BlockHead(HEAD, keccak256(b"head"), NOW + 100)

    def batch_root(self, batch_id: int, block: int) -> tuple[bytes, int]:
        self._up()
        self.root_reads.append((batch_id, block))
        return self.roots.get(batch_id, (ZERO, 0))

    def escrow_account(self, address: str) -> tuple[int, int]:
        self._up()
        return 1_000_000_000, 7_500_000

    def provider_stake(self, address: str) -> int:
        self._up()
        return 100_000_000

    def block_time(self, number: int) -> int:
        self._up()
        return NOW + number

    def token_symbol(self) -> str:
        return "tUSD"


def deployment() -> Deployment:
    return Deployment(
        chain_id=31337,
        block_number=1,
        token=address("token"),
        token_decimals=6,
        registry=address("registry"),
        escrow=ESCROW,
        owner=address("owner"),
        operator=address("operator"),
        arbiter=address("owner"),
        parameters=MarketParameters(),
    )


@dataclass
class Market:
    store: Store
    chain: FakeChain
    client: TestClient
    explorer: Explorer
    bid_hashes: list[bytes]
    ask_hash: bytes
    receipt_hashes: list[bytes]


def make_client(
    store: Store, chain: FakeChain, clock: Callable[[], int] = lambda: NOW + 100
) -> tuple[TestClient, Explorer]:
    verifier = EvidenceVerifier(
        store=store,
        domain=DOMAIN,
        lock_window=600,
        policy=EvidencePolicy(challenge_n=16, evidence_timeout=90),
        clock=clock,
        clock_ms=lambda: clock() * 1000,
        latest_block=lambda: (keccak256(b"block"), 7),
    )
    view = Explorer(
        store=store,
        catalog=Catalog.default(),
        deployment=deployment(),
        chain=chain,
        judge=verifier.evidence,
        clock=clock,
    )
    app = FastAPI()
    errors.install(app)  # the matcher app's error handlers, as create_app installs them
    explorer.install(app, view)
    return TestClient(app), view


def fill(store: Store, chain: FakeChain) -> tuple[list[bytes], bytes, list[bytes]]:
    a = accepted(ask())
    bids = [accepted(bid(gpus=2, nonce=1)), accepted(bid("buyer-2", gpus=1, nonce=1))]
    store.add_order(a, NOW)
    for b in bids:
        store.add_order(b, NOW)
    batch = cleared_batch(store, at=NOW)
    assert len(batch.leases) == 2 and batch.root is not None
    store.record_batch(batch)
    post_tx = keccak256(b"post 1")
    store.mark_root_posted(1, PostedRoot(1, batch.root, post_tx, 40, 50_000, START))
    chain.roots[1] = (batch.root, START)
    lease = store.get_lease(1)
    store.apply_chain(
        [
            event(RootPosted, 40, 0, batch_id=1, root=batch.root, posted_at=START),
            event(
                LeaseLocked,
                50,
                0,
                lease_id=1,
                buyer=lease.buyer,
                provider=lease.provider,
                batch_id=1,
                nonce=1,
                bid_digest=bytes(lease.bid_hash),
                reserved=5_000_000,
            ),
        ],  # fmt: skip
        ChainCursor(51),
        at=START,
    )
    receipts: list[bytes] = []
    previous = ZERO
    for sequence, state in enumerate([JobState.RUNNING, JobState.RUNNING]):
        r = Receipt(
            lease_id=1,
            sequence=sequence,
            time=START + 10 + 30 * sequence,
            job_state=state,
            telemetry={"backend": "cpu-simulated", "samples": [{"t": sequence}]},
            output_digest=ZERO,
            previous=previous,
        )
        previous = r.hash(DOMAIN)
        store.add_receipt(r, previous, sign_receipt(r, key("provider"), DOMAIN), START + 11 + 30 * sequence)
        receipts.append(previous)
    store.add_challenge(
        ChallengeRecord.issued(
            1, 0, block_hash=keccak256(b"b"), block_number=45, n=16, issued_at_ms=(START + 20) * 1000,
            deadline_ms=10_000,
        )
    )  # fmt: skip
    store.resolve_challenge(
        1, 0, outcome="passed", reason="3 rows checked", resolved_at_ms=(START + 21) * 1000
    )
    usage_leaf = cleared_batch(store).leaves  # nothing open: an empty clearing
    assert not usage_leaf
    leaf = store.evidence_of(1).lease_leaf.usage(60)
    batch2 = cleared_batch(store, at=START + 50, usage=[leaf])
    store.record_batch(batch2)
    assert batch2.root is not None
    store.mark_root_posted(2, PostedRoot(2, batch2.root, keccak256(b"post 2"), 60, 50_000, START + 55))
    chain.roots[2] = (batch2.root, START + 55)
    store.apply_chain(
        [
            event(RootPosted, 60, 0, batch_id=2, root=batch2.root, posted_at=START + 55),
            event(
                LeaseSettled, 70, 0, lease_id=1, used_gpu_seconds=60, paid=41_666, refunded=0, closed=False
            ),
        ],
        ChainCursor(71),
        at=START + 60,
    )
    return [bytes(b.order_hash) for b in bids], bytes(a.order_hash), receipts
