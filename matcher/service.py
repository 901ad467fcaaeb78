"""The matcher service: intake, the chain mirror, batches and their roots, proofs. The pure cores (intake,
clearing, protocol) do the thinking; this module wires them to the store and the chain. See docs/matcher.md.

Intake runs in rounds (`GroupCommit`): concurrent submissions are verified, checked against one read of the
market's state and stored in one transaction, one round at a time, which also makes "validate, then add to
the book" atomic (two bids cannot both pass against the same balance). One batch lock lets a single batch run
at a time. A batch never starts while an earlier root
is still unposted, so batch ids reach the escrow in order and no batch ever gets two roots.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpuspot.catalog import Catalog
from gpuspot.deployment import Deployment
from gpuspot.protocol import (
    Bid,
    Eip712Domain,
    InvalidSignatureError,
    SettlementLeaf,
    SignedLease,
    StandardMerkleTree,
    cancellation_message,
    keccak256,
    lease_leaf,
    lock_call,
    settle_call,
    settlement_tree,
)
from matcher.chain import (
    ESCROW,
    ChainError,
    ChainWatcher,
    Reorg,
    RootAlreadyPostedError,
    RootPoster,
    SignedRootTx,
    TransactionTimeoutError,
    load_abi,
)
from matcher.chain.balances import BalanceCache
from matcher.chain.connection import connect
from matcher.clearing import (
    BookAsk,
    BookBid,
    HostId,
    PricePerGpuHour,
    PricingRule,
    ProductBook,
    Seconds,
    clear_batch,
)
from matcher.errors import CancellationRejectedError, NotFoundError
from matcher.evidence.verifier import EvidencePolicy, EvidenceVerifier
from matcher.group_commit import GroupCommit
from matcher.intake import (
    AcceptedOrder,
    IntakePolicy,
    IntakeResult,
    MarketSnapshot,
    MarketTerms,
    OrderRejected,
    RejectCode,
    SignedOrder,
    admit_many,
    verify_many,
)
from matcher.leases import considered_orders_hash, lease_leaves, product_books
from matcher.personal_sign import recover_personal_signer
from matcher.settings import MatcherSettings
from matcher.store import (
    BatchStatus,
    IntakeState,
    LeaseNotFoundError,
    LeaseRecord,
    NewBatch,
    OrderNotOpenError,
    OrderRecord,
    OrderStatus,
    Store,
    StoreError,
    assign_lease_ids,
)

__all__ = [
    "CODE_VERSION",
    "BatchOutcome",
    "LeaseProof",
    "LockCall",
    "LockCalls",
    "MatcherService",
    "SettleCall",
    "SettleCalls",
    "cancellation_message",
    "lease_args_json",
]

log = logging.getLogger(__name__)

CODE_VERSION = "matcher-0.1.0"
ZERO_WORD = b"\x00" * 32
_TREE_CACHE = 64
DEFAULT_POLICY = IntakePolicy()

Admitted = tuple[AcceptedOrder, OrderRecord] | OrderRejected
"""One submission's outcome in an intake round: accepted (and its stored record) or rejected."""


def batch_seed(previous_root: bytes | None, batch_id: int) -> bytes:
    """The batch's tie-breaking seed: keccak256("gpuspot.batch-seed" || previous root (or zeros) || id).
    The matcher cannot choose the previous root after the fact; a block hash after the batch closes would
    also keep it from predicting the seed, and is left for later (docs/matcher.md)."""
    return keccak256(b"gpuspot.batch-seed" + (previous_root or ZERO_WORD) + batch_id.to_bytes(8, "big"))


@dataclass(frozen=True)
class BatchOutcome:
    """What one `run_batch` did: `batch_id` None when no batch was recorded (nothing open and no usage to
    commit, or a root still pending); `root` None for a batch without leaves; `usage` its usage leaves."""

    batch_id: int | None
    root: bytes | None
    leases: int
    expired: int
    posted: bool
    reason: str
    usage: int = 0

    def __str__(self) -> str:
        root = "none" if self.root is None else "0x" + self.root.hex()
        return (
            f"batch {self.batch_id}: {self.reason}, {self.leases} leases, {self.usage} usage leaves, "
            f"{self.expired} expired, root {root}, posted {self.posted}"
        )


@dataclass(frozen=True)
class LeaseProof:
    """What a provider needs to lock a lease: `lockLeases(batch_id, [lease_args], proof_args)`."""

    lease_id: int
    batch_id: int
    root: bytes
    lease: SignedLease
    lease_args: tuple[Any, ...]
    proof: list[bytes]
    proof_flags: list[bool]

    def lock_args(self) -> tuple[int, list[Any], tuple[list[bytes], list[bool]]]:
        return self.batch_id, [self.lease_args], (self.proof, self.proof_flags)

    def to_json(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "batch_id": self.batch_id,
            "root": "0x" + self.root.hex(),
            "lease": lease_args_json(self.lease_args),
            "proof": proof_json((self.proof, self.proof_flags)),
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def lease_args_json(args: tuple[Any, ...]) -> dict[str, Any]:
    """An `IEscrow.SignedLease` tuple as JSON: `{"bid": [...], "r", "vs", "leaseId", "provider",
    "pricePerGpuHour"}`, integers as decimal strings, bytes as 0x hex."""
    bid, r, vs, lease_id, provider, price = args
    return {
        "bid": [_json_value(v) for v in bid],
        "r": "0x" + bytes(r).hex(),
        "vs": "0x" + bytes(vs).hex(),
        "leaseId": str(lease_id),
        "provider": provider,
        "pricePerGpuHour": str(price),
    }


def proof_json(proof: tuple[list[bytes], list[bool]]) -> dict[str, Any]:
    """An `IEscrow.MultiProof` tuple as JSON: `{"proof": [0x..], "proofFlags": [bool]}`."""
    nodes, flags = proof
    return {"proof": ["0x" + bytes(p).hex() for p in nodes], "proofFlags": list(flags)}


@dataclass(frozen=True)
class LockCall:
    """`lockLeases(batch_id, leases, proof)` for some leases of one batch."""

    batch_id: int
    leases: list[Any]
    proof: tuple[list[bytes], list[bool]]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "leases": [lease_args_json(args) for args in self.leases],
            "proof": proof_json(self.proof),
        }


@dataclass(frozen=True)
class LockCalls:
    """The lock calls for a set of leases: one per batch; `missing` the ids no call can lock (unknown, root
    not posted, lock window over), `locked` those the chain mirror already shows locked."""

    calls: list[LockCall]
    missing: list[int]
    locked: list[int]


@dataclass(frozen=True)
class SettleCall:
    """`settleLeases(batch_id, usage_batch_id, leases, usages, lease_proof, usage_proof)`."""

    batch_id: int
    usage_batch_id: int
    leases: list[Any]
    usages: list[tuple[int, bool]]
    lease_proof: tuple[list[bytes], list[bool]]
    usage_proof: tuple[list[bytes], list[bool]]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "usage_batch_id": self.usage_batch_id,
            "leases": [lease_args_json(args) for args in self.leases],
            "usages": [{"usedGpuSeconds": str(used), "isFinal": final} for used, final in self.usages],
            "lease_proof": proof_json(self.lease_proof),
            "usage_proof": proof_json(self.usage_proof),
        }


@dataclass(frozen=True)
class SettleCalls:
    """The settle calls for a set of leases, one per (lease batch, usage batch); `missing` the ids with
    nothing to settle (unknown, no posted usage leaf, closed, or already paid that figure)."""

    calls: list[SettleCall]
    missing: list[int]


def _wall_clock() -> int:
    return int(time.time())


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class MatcherService:
    """The matcher: holds the store, catalog, deployment, web3, root poster and chain watcher."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        deployment: Deployment,
        web3: Web3,
        poster: RootPoster,
        watcher: ChainWatcher,
        rule: PricingRule | str = PricingRule.UNIFORM,
        policy: IntakePolicy = DEFAULT_POLICY,
        root_posting_margin: int = 60,
        batch_interval: float = 5.0,
        intake_round: int = 5_000,
        balance_ttl: float = 30.0,
        evidence_policy: EvidencePolicy | None = None,
        clock: Callable[[], int] = _wall_clock,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.deployment = deployment
        self.web3 = web3
        self.poster = poster
        self.watcher = watcher
        self.rule = PricingRule.parse(rule)
        self.policy = policy
        self.root_posting_margin = root_posting_margin
        self.batch_interval = batch_interval
        self.clock = clock
        if clock_ms is None:  # a test's clock in seconds gives milliseconds at its own resolution
            clock_ms = _wall_clock_ms if clock is _wall_clock else (lambda: clock() * 1000)
        self.clock_ms = clock_ms
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.escrow)
        self._escrow = web3.eth.contract(
            address=Web3.to_checksum_address(deployment.escrow), abi=list(load_abi(ESCROW))
        )
        self.balances = BalanceCache(web3, deployment.escrow, ttl=balance_ttl)
        self.admission: GroupCommit[object, Admitted] = GroupCommit(self._admit, max_items=intake_round)
        self._state_lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._trees: dict[int, StandardMerkleTree] = {}
        self._idle_book: bytes | None = None  # the order set of the last batch, if it had no leases
        self.started_at = clock()
        self.last_batch_at: int | None = None
        self.counters: dict[str, int] = {}
        self.evidence = EvidenceVerifier(
            store=store,
            domain=self.domain,
            lock_window=deployment.parameters.lock_window,
            policy=evidence_policy or EvidencePolicy(),
            clock=clock,
            clock_ms=clock_ms,
            latest_block=self._latest_block,
            count=self._count,
        )

    @classmethod
    def from_settings(cls, settings: MatcherSettings, *, web3: Web3 | None = None) -> MatcherService:
        deployment = Deployment.load(settings.deployment_file)
        operator: LocalAccount = settings.operator_account(deployment.chain_id)
        web3 = web3 or connect(settings.rpc_url)
        catalog = Catalog.load(settings.catalog_file) if settings.catalog_file else Catalog.default()
        return cls(
            store=Store.open(settings.database_url),
            catalog=catalog,
            deployment=deployment,
            web3=web3,
            poster=RootPoster.from_deployment(
                web3, deployment, operator, receipt_timeout=settings.receipt_timeout
            ),
            watcher=ChainWatcher.from_deployment(web3, deployment, confirmations=settings.confirmations),
            rule=settings.pricing_rule,
            policy=IntakePolicy(min_lifetime=settings.min_lifetime),
            root_posting_margin=settings.root_posting_margin,
            batch_interval=settings.batch_interval,
            evidence_policy=settings.evidence_policy(),
        )

    def close(self) -> None:
        self.store.close()

    def _count(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    # --- the market view

    def available_balance(self, buyer: str) -> int:
        """The buyer's `available` in the escrow, read from the chain now."""
        return self.balances.refresh([buyer])[buyer]

    def reserved(self, buyer: str, now: int) -> int:
        """Open bids' max costs, plus the max costs of the buyer's leases that are committed or posted but
        not locked yet (still lockable): `accountOf.available` only drops when a lease is locked."""
        buyer = Web3.to_checksum_address(buyer)
        return self._intake_state([buyer], [], [], now).reservations.get(buyer, 0)

    def _intake_state(
        self,
        buyers: Collection[str],
        providers: Collection[str],
        nonces: Collection[tuple[str, int]],
        now: int,
    ) -> IntakeState:
        return self.store.intake_state(
            buyers=buyers,
            providers=providers,
            nonces=nonces,
            min_stake=self.deployment.parameters.min_stake,
            lock_window=self.deployment.parameters.lock_window,
            now=now,
        )

    def _snapshot(self, state: IntakeState, balances: dict[str, int], now: int) -> MarketSnapshot:
        return MarketSnapshot(
            chain_id=self.deployment.chain_id,
            escrow=self.deployment.escrow,
            now=now,
            catalog=self.catalog,
            balances=balances,
            reservations=state.reservations,
            closed_nonces=state.closed_nonces,
            open_nonces=state.open_nonces,
            active_providers=state.active_providers,
            pending_withdrawals=state.pending_withdrawals,
        )

    def terms(self, now: int) -> MarketTerms:
        """What intake's stateless checks read: chain id, escrow, the clock, the catalog."""
        return MarketTerms(self.deployment.chain_id, self.deployment.escrow, now, self.catalog)

    # --- orders

    def submit(self, payload: object) -> tuple[AcceptedOrder, OrderRecord]:
        """Validates and stores one order; raises `OrderRejected` (nothing changed)."""
        result = self.admit([payload])[0]
        if isinstance(result, OrderRejected):
            raise result
        return result

    def submit_many(self, payloads: Iterable[object]) -> list[IntakeResult]:
        """Validates and stores many orders; one result per item (an accepted order or its rejection)."""
        return [r if isinstance(r, OrderRejected) else r[0] for r in self.admit(list(payloads))]

    def admit(self, payloads: Sequence[object]) -> list[Admitted]:
        """Validates and stores many orders, in intake rounds shared with concurrent callers: one outcome
        per item, the accepted order with its stored record, or its rejection."""
        return self.admission.submit(payloads)

    def _admit(self, payloads: list[object]) -> list[Admitted]:
        """One intake round (see `GroupCommit`): verify every submission (no state read), read the state of
        exactly the accounts and nonces they name, admit them in order, and store the accepted ones in one
        transaction. Rounds run one at a time, so "validate, then add to the book" is atomic: two bids
        cannot both pass against the same balance."""
        started = time.perf_counter()
        now = self.clock()
        verified = verify_many(payloads, self.terms(now), self.policy)
        signed = [item for item in verified if isinstance(item, SignedOrder)]
        with self._state_lock:  # the chain mirror and the balance cache move together, between rounds
            results: list[IntakeResult] = [r for r in verified if isinstance(r, OrderRejected)]
            if signed:
                results = self._admit_signed(verified, signed, now)
            accepted = [r for r in results if isinstance(r, AcceptedOrder)]
            stored = iter(self.store.add_orders(accepted, now))
        out: list[Admitted] = []
        rejections: dict[str, int] = {}
        created = 0
        for result in results:
            if isinstance(result, AcceptedOrder):
                outcome = next(stored)
                if isinstance(outcome, StoreError):  # e.g. a nonce taken by another writer of this store
                    result = OrderRejected(RejectCode.NONCE_USED, str(outcome))
                else:
                    created += outcome[1]
                    out.append((result, outcome[0]))
                    log.debug(
                        "order 0x%s (%s by %s) accepted",
                        result.order_hash.hex(),
                        result.kind.value,
                        result.signer,
                    )
                    continue
            rejections[result.code.value] = rejections.get(result.code.value, 0) + 1
            out.append(result)
        accepted_count = len(payloads) - sum(rejections.values())
        self._count("orders_accepted", accepted_count)
        self._count("orders_rejected", len(payloads) - accepted_count)
        self._count("intake_rounds")
        self._count("intake_round_microseconds", int((time.perf_counter() - started) * 1e6))
        log.info(
            "intake: %d orders, %d accepted (%d new), %d rejected%s",
            len(payloads),
            accepted_count,
            created,
            len(payloads) - accepted_count,
            "".join(f", {code} x{n}" for code, n in sorted(rejections.items())),
        )
        return out

    def _admit_signed(
        self, verified: list[SignedOrder | OrderRejected], signed: list[SignedOrder], now: int
    ) -> list[IntakeResult]:
        """The state checks of a round: one read of the store, balances from the cache (a buyer refused for
        balance on a cached figure is re-read from the chain and the round admitted again)."""
        buyers = {o.signer for o in signed if o.max_cost is not None}
        state = self._intake_state(
            buyers,
            {o.signer for o in signed if o.max_cost is None},
            {(o.signer, o.order.nonce) for o in signed},
            now,
        )
        balances, cached = self.balances.get_many(buyers)
        results = admit_many(verified, self._snapshot(state, balances, now))
        stale = {
            item.signer
            for item, result in zip(verified, results, strict=True)
            if isinstance(result, OrderRejected)
            and result.code is RejectCode.INSUFFICIENT_BALANCE
            and isinstance(item, SignedOrder)
            and item.signer in cached
        }
        if stale:
            balances.update(self.balances.refresh(stale))
            results = admit_many(verified, self._snapshot(state, balances, now))
        return results

    def get_order(self, order_hash: bytes) -> OrderRecord:
        record = self.store.get_order(order_hash)
        if record is None:
            raise NotFoundError(f"no order has hash 0x{bytes(order_hash).hex()}: check the hash")
        return record

    def cancel(self, order_hash: bytes, signature: str | bytes) -> OrderRecord:
        """Cancels an open order, given the signer's `personal_sign` of `cancellation_message(order_hash)`."""
        record = self.get_order(order_hash)
        try:
            recovered = recover_personal_signer(cancellation_message(order_hash), signature)
        except InvalidSignatureError:
            raise CancellationRejectedError(
                "bad_signature", "the cancellation signature is not a valid 65-byte signature"
            ) from None
        if recovered != record.signer:
            raise CancellationRejectedError(
                "bad_signature",
                f"the cancellation is signed by {recovered}, not the order's signer {record.signer}: sign "
                f"{cancellation_message(order_hash)!r} with personal_sign",
            )
        try:
            cancelled = self.store.cancel_order(order_hash, at=self.clock(), reason="signed cancellation")
        except OrderNotOpenError:
            raise CancellationRejectedError(
                "not_open", f"order 0x{bytes(order_hash).hex()} is {record.status.value}, not open"
            ) from None
        log.info("order 0x%s cancelled by its signer", bytes(order_hash).hex())
        self._count("orders_cancelled")
        return cancelled

    # --- chain

    def sync_chain(self) -> int:
        """One watcher poll into the store's mirror; the number of events stored."""
        cursor = self.store.chain_cursor() or self.watcher.start_cursor(self.deployment)
        items, new_cursor = self.watcher.poll(cursor)
        with self._state_lock:  # not in the middle of an intake round
            stored = self.store.apply_chain(
                items, new_cursor, at=self.clock(), min_stake=self.deployment.parameters.min_stake
            )
            if any(isinstance(item, Reorg) for item in items):
                self.balances.clear()
            else:
                self.balances.forget(
                    str(getattr(item, name))
                    for item in items
                    for name in ("account", "buyer", "provider")
                    if hasattr(item, name)
                )
        if stored:
            log.info("chain: %d events up to block %d", stored, new_cursor.next_block - 1)
        return stored

    def last_chain_batch_id(self) -> int:
        return int(self._escrow.functions.lastBatchId().call())

    def _latest_block(self) -> tuple[bytes, int]:
        """The newest block's hash and number: what seeds a challenge (nobody knew it before)."""
        block = self.web3.eth.get_block("latest")
        return bytes(block["hash"]), int(block["number"])

    # --- batches

    def run_batch(self, now: int | None = None) -> BatchOutcome:
        """Posts any pending root first; then expires orders, clears the open ones, adds the usage leaves the
        evidence calls for, records the batch and posts its root. A batch waits while an earlier root is
        unposted; one with usage leaves is recorded (and posts a root) even when no order is open."""
        with self._batch_lock:
            now = self.clock() if now is None else now
            if not self.post_pending_roots():
                return BatchOutcome(None, None, 0, 0, False, "an earlier root is still being posted")
            expired = len(self.store.expire_orders(now))
            if expired:
                log.info("batch: %d orders expired", expired)
            usage = self.evidence.usage_leaves(now)
            records = [
                r for r in self.store.open_orders() if r.expiry >= now + self.root_posting_margin
            ]  # an order that may expire before its root is posted waits (and then expires)
            considered = considered_orders_hash(r.order_hash for r in records)
            if not usage:
                if not records:
                    return BatchOutcome(None, None, 0, expired, False, "no open orders")
                if considered == self._idle_book:
                    return BatchOutcome(
                        None, None, 0, expired, False, "book unchanged since a batch without leases"
                    )
            batch_id = max(self.store.next_batch_id(), self.last_chain_batch_id() + 1)
            previous = self.store.list_batches(limit=1).items
            seed = batch_seed(previous[0].root if previous else None, batch_id)
            clearing = clear_batch(_books(records), seed, self.rule)
            leases = assign_lease_ids(clearing, self.store.next_lease_id())
            by_hash = {bytes(r.order_hash): r for r in records}
            bids: dict[bytes, Bid] = {}
            for lease in leases:
                bid = by_hash[bytes(lease.match.bid_hash)].order()
                assert isinstance(bid, Bid)
                bids[bytes(lease.match.bid_hash)] = bid
            leaves = lease_leaves(leases, bids, self.domain, batch_id) + usage
            tree = settlement_tree(leaves) if leaves else None
            root = None if tree is None else bytes(tree.root)
            self.store.record_batch(NewBatch(batch_id, CODE_VERSION, clearing, leases, leaves, root, now))
            self.last_batch_at = now
            self._count("batches")
            self._count("leases", len(leases))
            self._count("usage_leaves", len(usage))
            log.info(
                "batch %d: %d orders considered, %d leases, %d usage leaves, rule %s, seed 0x%s, root %s",
                batch_id,
                len(records),
                len(leases),
                len(usage),
                self.rule.value,
                seed.hex(),
                "none" if root is None else "0x" + root.hex(),
            )
            # Nothing traded: the same book would clear the same way again (the seed only breaks ties
            # between orders that can trade), so later rounds skip it until an order arrives or leaves, or
            # usage is due.
            self._idle_book = considered if not leases else None
            if tree is None or root is None:
                return BatchOutcome(batch_id, None, 0, expired, False, "no leases")
            self._trees[batch_id] = tree
            posted = self._post(batch_id, root, None)
            reason = "cleared" if leases else "usage only"
            return BatchOutcome(batch_id, root, len(leases), expired, posted, reason, len(usage))

    def post_pending_roots(self) -> bool:
        """Resumes (stored tx) or prepares (none) each batch awaiting its root, oldest first; True when none
        is left pending."""
        for pending in self.store.batches_awaiting_root():
            log.info("batch %d: root 0x%s awaits posting; resuming", pending.batch_id, pending.root.hex())
            if not self._post(pending.batch_id, pending.root, pending.tx):
                return False
        return True

    def _post(self, batch_id: int, root: bytes, tx: SignedRootTx | None) -> bool:
        try:
            if tx is None:
                try:
                    tx = self.poster.prepare(batch_id, root)
                except RootAlreadyPostedError as already:
                    self.store.mark_root_posted(batch_id, already.posted)
                    return True
                self.store.record_root_tx(batch_id, tx, self.clock())
                posted = self.poster.wait(self.poster.send(tx))
            else:
                posted = self.poster.resume(batch_id, root, tx)
        except TransactionTimeoutError as exc:
            log.warning("batch %d: root not mined yet (%s); will resume", batch_id, exc)
            return False
        except ChainError as exc:
            log.error("batch %d: posting the root failed: %s", batch_id, exc)
            return False
        self.store.mark_root_posted(batch_id, posted)
        self._count("roots_posted")
        log.info(
            "batch %d: root posted in tx 0x%s, block %d, gas %d",
            batch_id,
            posted.tx_hash.hex(),
            posted.block_number,
            posted.gas_used,
        )
        return True

    # --- proofs

    def tree(self, batch_id: int) -> StandardMerkleTree:
        tree = self._trees.get(batch_id)
        if tree is None:
            leaves = self.store.settlement_leaves(batch_id)
            if not leaves:
                raise NotFoundError(f"batch {batch_id} has no settlement tree")
            tree = settlement_tree(leaves)
            if len(self._trees) >= _TREE_CACHE:
                self._trees.pop(next(iter(self._trees)))
            self._trees[batch_id] = tree
        return tree

    def _signed_lease(self, lease: LeaseRecord) -> SignedLease:
        """The lease as the market agreed it: the bid as signed, its compact signature, the lease leaf."""
        bid_record = self.get_order(lease.bid_hash)
        bid = bid_record.order()
        assert isinstance(bid, Bid)
        leaf = lease_leaf(
            bid,
            self.domain,
            batch_id=lease.batch_id,
            lease_id=lease.lease_id,
            provider=lease.provider,
            price_per_gpu_hour=lease.price_per_gpu_hour,
        )
        return SignedLease(bid, bid_record.signature.compact(), leaf)

    def proof(self, lease_id: int) -> LeaseProof:
        """The signed lease and its multiproof against its batch's root, for `lockLeases`."""
        try:
            lease = self.store.get_lease(lease_id)
        except LeaseNotFoundError:
            raise NotFoundError(f"no lease has id {lease_id}") from None
        signed = self._signed_lease(lease)
        tree = self.tree(lease.batch_id)
        lease_args, (proof, flags) = lock_call(tree, [signed])
        return LeaseProof(
            lease_id, lease.batch_id, bytes(tree.root), signed, lease_args[0], list(proof), list(flags)
        )

    def lock_calls(self, lease_ids: Iterable[int]) -> LockCalls:
        """`lockLeases` arguments for these leases, one call per batch (in batch order)."""
        now = self.clock()
        groups: dict[int, list[SignedLease]] = {}
        missing: list[int] = []
        locked: list[int] = []
        for lease_id in dict.fromkeys(lease_ids):
            try:
                lease = self.store.get_lease(lease_id)
            except LeaseNotFoundError:
                missing.append(lease_id)
                continue
            batch = self.store.get_batch(lease.batch_id)
            if batch is None or batch.status is not BatchStatus.POSTED or batch.posted_at is None:
                missing.append(lease_id)
            elif lease.chain.locked:
                locked.append(lease_id)
            elif now > batch.posted_at + self.deployment.parameters.lock_window:
                missing.append(lease_id)
            else:
                groups.setdefault(lease.batch_id, []).append(self._signed_lease(lease))
        calls = []
        for batch_id, signed in sorted(groups.items()):
            leases, proof = lock_call(self.tree(batch_id), signed)
            calls.append(LockCall(batch_id, leases, proof))
        return LockCalls(calls, missing, locked)

    def settle_calls(self, lease_ids: Iterable[int], *, with_signatures: bool = False) -> SettleCalls:
        """`settleLeases` arguments for these leases' newest posted usage leaves, one call per (lease batch,
        usage batch). Signatures are sent when asked, or when a lease of the call is not locked yet (the
        call then locks it)."""
        ids = list(dict.fromkeys(lease_ids))
        usage = self.store.posted_usage(ids)
        groups: dict[tuple[int, int], list[tuple[SignedLease, SettlementLeaf, bool]]] = {}
        missing: list[int] = []
        for lease_id in ids:
            found = usage.get(lease_id)
            if found is None:
                missing.append(lease_id)
                continue
            lease = self.store.get_lease(lease_id)
            chain = lease.chain
            if chain.closed or (chain.used_gpu_seconds >= found.used_gpu_seconds and not found.final):
                missing.append(lease_id)
                continue
            key = (lease.batch_id, found.batch_id)
            groups.setdefault(key, []).append((self._signed_lease(lease), found.leaf, chain.locked))
        calls = []
        for (batch_id, usage_batch_id), items in sorted(groups.items()):
            signatures = with_signatures or not all(locked for _, _, locked in items)
            leases, usages, lease_proof, usage_proof = settle_call(
                self.tree(batch_id),
                self.tree(usage_batch_id),
                [(signed, leaf) for signed, leaf, _ in items],
                with_signatures=signatures,
            )
            calls.append(SettleCall(batch_id, usage_batch_id, leases, usages, lease_proof, usage_proof))
        return SettleCalls(calls, missing)

    # --- the loop

    def run_forever(self, stop: threading.Event) -> None:
        """Every `batch_interval` seconds until `stop` is set: sync_chain, expire unanswered challenges,
        run_batch, issue due challenges; errors are logged and the loop goes on (the next round retries)."""
        log.info("batch loop: every %.1f s, rule %s", self.batch_interval, self.rule.value)
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.sync_chain()
                self.evidence.expire_challenges()
                outcome = self.run_batch()
                if outcome.batch_id is not None or outcome.expired:
                    log.info("round: %s", outcome)
                self.evidence.issue_challenges()
            except Exception:
                self._count("loop_errors")
                log.exception("batch round failed; retrying next interval")
            stop.wait(max(0.0, self.batch_interval - (time.monotonic() - started)))
        log.info("batch loop stopped")


def _books(records: Sequence[OrderRecord]) -> dict[bytes, ProductBook]:
    """The open orders' book entries, built from their stored columns."""
    entries: list[tuple[bytes, BookBid | BookAsk]] = []
    for r in records:
        if r.status != OrderStatus.OPEN:
            continue
        if r.kind == "bid":
            entries.append(
                (
                    r.product,
                    BookBid(r.order_hash, r.signer, r.gpus, Seconds(r.duration), PricePerGpuHour(r.price)),
                )
            )
        else:
            assert r.host_id is not None
            entries.append(
                (
                    r.product,
                    BookAsk(
                        r.order_hash,
                        r.signer,
                        HostId(r.host_id),
                        r.gpus,
                        Seconds(r.duration),
                        PricePerGpuHour(r.price),
                    ),
                )
            )
    return product_books(entries)
