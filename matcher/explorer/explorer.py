"""`Explorer`: what each page shows, gathered from the store (through `ExplorerReads`), the chain (through a
`ChainReader`) and the evidence verifier's judgement, as plain template contexts. Routes only render them.

Anything a page names by id that does not exist raises `PageNotFoundError` (an HTML 404 with the search box);
a node that does not answer leaves the chain's figures out and says so, and the page still renders.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpuspot.catalog import Catalog
from gpuspot.deployment import Deployment
from gpuspot.protocol import Eip712Domain, StandardMerkleTree, settlement_tree
from gpuspot.protocol.errors import ProtocolError
from gpuspot.protocol.evidence import JobState, recover_receipt_signer
from gpuspot.protocol.leaves import cost
from matcher.errors import MatcherError
from matcher.evidence.verifier import LeaseEvidence
from matcher.explorer.chain import BlockHead, ChainReader, ChainUnavailableError
from matcher.explorer.charts import price_chart
from matcher.explorer.format import Formatter, hex0x
from matcher.explorer.search import Query, classify
from matcher.explorer.verify import LEAF_FIELDS, leaf_fields, tampered, verify_leaf
from matcher.store import LeaseNotFoundError, LeaseRecord, Store, StoreError
from matcher.store.explorer import ExplorerReads

__all__ = ["Explorer", "PageNotFoundError", "SearchOutcome"]

log = logging.getLogger(__name__)

PRICE_HISTORY_BATCHES = 500
"""The chart's window: the clearing prices of the last this many batch ids."""
LATEST_BATCHES = 10
PAGE = 25
_TREES = 32


class PageNotFoundError(MatcherError, LookupError):
    """The page names an order, batch, lease, address or transaction the market does not know."""


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Where a search leads: `redirect` to one page, a list of `choices`, or nothing (`message` says why)."""

    query: str
    redirect: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    message: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: int | None
    label: str
    detail: Any = ""
    tx: bytes | None = None
    block: int | None = None
    tone: str = ""  # "", "good", "bad"


@dataclass
class _Chain:
    """The chain's part of one page: the head (None when the node did not answer) and the error."""

    head: BlockHead | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _id(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise PageNotFoundError(f"{text!r} is not a {what} id: {what} ids are positive integers")
    return int(text)


def _hash32(text: str, what: str) -> bytes:
    if not (text.startswith("0x") and len(text) == 66):
        raise PageNotFoundError(f"{text!r} is not a {what}: expected 0x and 64 hex digits")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise PageNotFoundError(f"{text!r} is not a {what}: expected 0x and 64 hex digits") from None


class Explorer:
    """The explorer's data source; `from_service` builds it around a running `MatcherService`."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        deployment: Deployment,
        chain: ChainReader,
        judge: Callable[[int], LeaseEvidence],
        clock: Callable[[], int],
        batch_interval: float | None = None,
    ) -> None:
        self.store = store
        self.reads = ExplorerReads(store.engine)
        self.catalog = catalog
        self.deployment = deployment
        self.chain = chain
        self.judge = judge
        self.clock = clock
        self.batch_interval = batch_interval
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.escrow)
        self._trees: OrderedDict[int, StandardMerkleTree] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_service(cls, service: Any) -> Explorer:
        from matcher.explorer.chain import Web3ChainReader

        deployment: Deployment = service.deployment
        return cls(
            store=service.store,
            catalog=service.catalog,
            deployment=deployment,
            chain=Web3ChainReader(
                service.web3, escrow=deployment.escrow, registry=deployment.registry, token=deployment.token
            ),
            judge=service.evidence.evidence,
            clock=service.clock,
            batch_interval=service.batch_interval,
        )

    # --- shared

    def formatter(self) -> Formatter:
        return Formatter(
            self.deployment.token_decimals, self.chain.token_symbol(), self.catalog, self.clock()
        )

    def _chain(self) -> _Chain:
        try:
            return _Chain(head=self.chain.head())
        except ChainUnavailableError as exc:
            log.warning("explorer: %s", exc)
            return _Chain(error=str(exc))

    def base(self) -> dict[str, Any]:
        """What every page's frame shows: the formatter, the deployment, the chain head."""
        chain = self._chain()
        return {"f": self.formatter(), "deployment": self.deployment, "chain": chain}

    def tree(self, batch_id: int) -> StandardMerkleTree:
        """The batch's settlement tree, rebuilt from its stored leaves (immutable once recorded: cached)."""
        with self._lock:
            found = self._trees.get(batch_id)
            if found is not None:
                self._trees.move_to_end(batch_id)
                return found
        leaves = self.store.settlement_leaves(batch_id)
        if not leaves:
            raise PageNotFoundError(f"batch {batch_id} has no settlement leaves")
        tree = settlement_tree(leaves)
        with self._lock:
            self._trees[batch_id] = tree
            while len(self._trees) > _TREES:
                self._trees.popitem(last=False)
        return tree

    # --- Home

    def home(self) -> dict[str, Any]:
        now = self.clock()
        totals = self.reads.totals(now)
        history = self.reads.price_history(PRICE_HISTORY_BATCHES)
        f = self.formatter()
        series: dict[str, list[tuple[int, int]]] = {}
        for point in history:
            series.setdefault(f.product(point.product), []).append((point.batch_id, point.price))
        depth: dict[bytes, dict[str, Any]] = {}
        for row in totals.depth:
            depth.setdefault(row.product, {})[row.kind] = row
        products = []
        for product in self.catalog:
            latest = self.reads.latest_price(product.id)
            products.append(
                {
                    "name": product.name,
                    "id": product.id,
                    "latest": latest,
                    "bids": depth.get(product.id, {}).get("bid"),
                    "asks": depth.get(product.id, {}).get("ask"),
                }
            )
        return self.base() | {
            "f": f,
            "totals": totals,
            "batches": self.store.list_batches(limit=LATEST_BATCHES).items,
            "products": products,
            "chart": price_chart(
                series,
                decimals=self.deployment.token_decimals,
                symbol=f.symbol,
                title="Clearing price per product",
            ),
            "history_window": PRICE_HISTORY_BATCHES,
            "live": True,
        }

    # --- Batches

    def batches(self, cursor: str | None) -> dict[str, Any]:
        page = self._page(lambda: self.store.list_batches(limit=PAGE, cursor=cursor))
        return self.base() | {"page": page, "live": cursor is None}

    def batch(self, batch_text: str, cursors: Mapping[str, str | None]) -> dict[str, Any]:
        batch_id = _id(batch_text, "batch")
        batch = self.store.get_batch(batch_id)
        if batch is None:
            raise PageNotFoundError(f"no batch has id {batch_id}")
        base = self.base()
        f: Formatter = base["f"]
        matches = self._page(lambda: self.reads.batch_leases(batch_id, PAGE, cursors.get("leases")))
        considered = self._page(lambda: self.reads.considered_orders(batch_id, 50, cursors.get("orders")))
        leaves = self._page(lambda: self.store.batch_leaves(batch_id, limit=50, cursor=cursors.get("leaves")))
        return base | {
            "batch": batch,
            "clearings": self.reads.clearings(batch_id),
            "matches": matches,
            "considered": considered,
            "leaves": leaves,
            "mirrored_root": self.store.posted_root(batch_id),
            "f": f,
        }

    def verify(self, batch_text: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Checks one leaf of the batch against the root read from the escrow now (see verify.py)."""
        batch_id = _id(batch_text, "batch")
        batch = self.store.get_batch(batch_id)
        if batch is None:
            raise PageNotFoundError(f"no batch has id {batch_id}")
        index_text = params.get("leaf", "")
        if not index_text.isdigit() or int(index_text) >= batch.leaf_count:
            raise PageNotFoundError(
                f"batch {batch_id} has no leaf {index_text!r} (it has {batch.leaf_count})"
            )
        index = int(index_text)
        record = self.store.batch_leaves(
            batch_id, limit=1, cursor=None if index == 0 else str(index - 1)
        ).items[0]
        tree = self.tree(batch_id)
        proof = tree.get_proof(tree.leaf_lookup(record.leaf.values()))
        stored = leaf_fields(record.leaf)
        submitted = {name: params[name] for name in LEAF_FIELDS if name in params}
        fields = stored | submitted
        if params.get("tamper"):
            fields = tampered(fields) if fields["price_per_gpu_hour"].strip().isdigit() else fields
        base = self.base()
        chain: _Chain = base["chain"]
        verdict = None
        if chain.head is not None:
            try:
                root, posted_at = self.chain.batch_root(batch_id, chain.head.number)
                verdict = verify_leaf(fields, proof, root, chain.head.number)
                chain.extra["posted_at"] = posted_at
            except ChainUnavailableError as exc:
                chain.error = str(exc)
        return base | {
            "batch": batch,
            "index": index,
            "record": record,
            "stored": stored,
            "fields": fields,
            "edited": {name for name in LEAF_FIELDS if fields[name] != stored[name]},
            "field_names": LEAF_FIELDS,
            "verdict": verdict,
        }

    # --- Orders

    def order(self, hash_text: str) -> dict[str, Any]:
        order_hash = _hash32(hash_text.lower(), "order hash")
        record = self.store.get_order(order_hash)
        if record is None:
            raise PageNotFoundError(f"no order has hash {hash_text}")
        leases = []
        for lease_id in self.reads.order_leases(order_hash)[:50]:
            leases.append(self.store.get_lease(lease_id))
        try:
            order_json = json.dumps(json.loads(record.order_json), indent=2)
        except ValueError:
            order_json = record.order_json
        return self.base() | {
            "order": record,
            "history": self.store.order_history(order_hash),
            "considered": self.reads.order_batches(order_hash),
            "leases": leases,
            "explanation": self.store.explanation(order_hash),
            "order_json": order_json,
        }

    # --- Leases

    def lease(self, lease_text: str, receipts_cursor: str | None) -> dict[str, Any]:
        lease_id = _id(lease_text, "lease")
        try:
            lease = self.store.get_lease(lease_id)
        except LeaseNotFoundError:
            raise PageNotFoundError(f"no lease has id {lease_id}") from None
        base = self.base()
        chain: _Chain = base["chain"]
        evidence: LeaseEvidence | None = None
        try:
            evidence = self.judge(lease_id)
        except (MatcherError, StoreError) as exc:
            log.warning("explorer: lease %d evidence: %s", lease_id, exc)
        receipts = self._page(lambda: self.reads.receipts(lease_id, 50, receipts_cursor))
        checked = self._check_receipts(lease, receipts.items)
        events = self.reads.lease_events(lease_id)
        times: dict[int, int | None] = {}
        for event in events:
            if event.block_number not in times:
                times[event.block_number] = self._block_time(event.block_number, chain)
        batch = self.store.get_batch(lease.batch_id)
        bid = self.store.get_order(lease.bid_hash)
        reserved_cap = None if bid is None or bid.max_cost is None else bid.max_cost
        proven = 0 if evidence is None or evidence.proven is None else evidence.proven.proven_gpu_seconds
        money = {
            "cost_at_price": cost(lease.gpus * lease.duration, lease.price_per_gpu_hour),
            "bid_cap": reserved_cap,
            "locked": lease.chain.reserved,
            "paid": lease.chain.paid,
            "refunded": lease.chain.refunded,
            "proven_cost": cost(proven, lease.price_per_gpu_hour),
            "proven": proven,
        }
        return base | {
            "lease": lease,
            "batch": batch,
            "evidence": evidence,
            "receipts": receipts,
            "checked": checked,
            "events": events,
            "event_times": times,
            "money": money,
            "timeline": self._timeline(
                lease, batch, evidence, events, times, receipts_cursor is None, checked
            ),
            "live": True,
        }

    def _block_time(self, number: int, chain: _Chain) -> int | None:
        if chain.head is None:
            return None
        try:
            return self.chain.block_time(number)
        except ChainUnavailableError:
            return None

    def _check_receipts(self, lease: LeaseRecord, records: Any) -> list[dict[str, Any]]:
        """Re-checks each receipt on the page: its hash, its signer (the lease's provider), its link to the
        previous receipt's hash."""
        out = []
        previous: bytes | None = None
        for i, r in enumerate(records):
            receipt = r.receipt
            if i == 0 and receipt.sequence > 0:
                before = self.store.get_receipt(lease.lease_id, receipt.sequence - 1)
                previous = None if before is None else before.receipt_hash
            hash_ok = receipt.hash(self.domain) == r.receipt_hash
            try:
                signer = recover_receipt_signer(receipt, r.signature, self.domain)
            except ProtocolError:
                signer = None
            link_ok = receipt.sequence == 0 or (previous is not None and receipt.previous == previous)
            out.append(
                {
                    "record": r,
                    "state": JobState(receipt.job_state).name.lower(),
                    "hash_ok": hash_ok,
                    "signer": signer,
                    "signer_ok": signer == lease.provider,
                    "link_ok": link_ok,
                    "ok": hash_ok and signer == lease.provider and link_ok,
                }
            )
            previous = r.receipt_hash
        return out

    def _timeline(
        self,
        lease: LeaseRecord,
        batch: Any,
        evidence: LeaseEvidence | None,
        events: Any,
        times: Mapping[int, int | None],
        first_page: bool,
        checked: list[dict[str, Any]],
    ) -> list[TimelineEntry]:
        f = self.formatter()
        entries: list[TimelineEntry] = []
        if batch is not None:
            entries.append(TimelineEntry(batch.recorded_at, "matched", f.batch(batch.batch_id)))
            if batch.posted_tx_hash is not None:
                entries.append(
                    TimelineEntry(
                        batch.posted_at,
                        "root posted (lease starts)",
                        "",
                        batch.posted_tx_hash,
                        batch.posted_block,
                    )
                )
        for event in events:
            at = times.get(event.block_number)
            args = event.args
            if event.name == "LeaseLocked":
                detail = f.money(int(args["reserved"])) + " reserved from the buyer's balance"
                entries.append(
                    TimelineEntry(at, "locked on-chain", detail, event.tx_hash, event.block_number)
                )
            elif event.name == "LeaseSettled":
                detail = (
                    f.money(int(args["paid"]))
                    + f" paid for {int(args['used_gpu_seconds']):,} GPU-seconds, "
                    + f.money(int(args["refunded"]))
                    + " refunded"
                )
                label = "claim (final)" if args.get("closed") else "claim"
                entries.append(TimelineEntry(at, label, detail, event.tx_hash, event.block_number, "good"))
            elif event.name == "LeaseReclaimed":
                detail = f.money(int(args["refunded"])) + " refunded to the buyer"
                entries.append(
                    TimelineEntry(at, "reclaimed (refund)", detail, event.tx_hash, event.block_number)
                )
        if evidence is not None:
            record = evidence.record
            if first_page and checked:
                first = checked[0]["record"].receipt
                if first.job_state == JobState.RUNNING:
                    entries.append(TimelineEntry(first.time, "running", "first receipt: job running"))
            if record.receipts:
                last = record.receipts[-1]
                entries.append(
                    TimelineEntry(
                        last.time,
                        f"receipts: {len(record.receipts)}",
                        f"last: #{last.sequence}, {JobState(last.job_state).name.lower()}",
                    )
                )
            for c in record.challenges:
                if c.outcome is None:
                    label, tone = f"challenge {c.sequence} open", ""
                elif c.outcome == "passed":
                    label, tone = f"challenge {c.sequence} passed", "good"
                else:
                    label, tone = f"challenge {c.sequence} failed ({c.outcome})", "bad"
                at = (c.resolved_at_ms if c.resolved_at_ms is not None else c.issued_at_ms) // 1000
                entries.append(TimelineEntry(at, label, f"n = {c.n}; {c.reason or ''}", tone=tone))
            for u in record.usage:
                kind = "final usage" if u.final else "usage"
                entries.append(
                    TimelineEntry(
                        u.recorded_at,
                        f"{kind} committed",
                        f.batch(u.batch_id) + f" {u.used_gpu_seconds:,} GPU-seconds",
                    )
                )
            if record.stop_requested_at is not None:
                entries.append(TimelineEntry(record.stop_requested_at, "stop requested by the buyer"))
            if record.end is not None:
                tone = "bad" if record.end.reason in ("challenge_failed", "gap") else ""
                entries.append(
                    TimelineEntry(
                        record.end.ended_at,
                        f"evidence ended: {record.end.reason}",
                        f"{record.end.proven_gpu_seconds:,} GPU-seconds proven",
                        tone=tone,
                    )
                )
            if record.lapsed_at is not None:
                entries.append(
                    TimelineEntry(record.lapsed_at, "lapsed: not locked within the lock window", tone="bad")
                )
        return sorted(entries, key=lambda e: (e.at is None, e.at or 0))

    # --- Addresses and providers

    def address(self, text: str, cursors: Mapping[str, str | None]) -> dict[str, Any]:
        query = classify(text)
        if query is None or query.kind != "address" or query.address is None:
            raise PageNotFoundError(f"{text!r} is not an address")
        who = query.address
        base = self.base()
        chain: _Chain = base["chain"]
        balance: tuple[int, int] | None = None
        stake: int | None = None
        if chain.head is not None:
            try:
                balance = self.chain.escrow_account(who)
                stake = self.chain.provider_stake(who)
            except ChainUnavailableError as exc:
                chain.error = str(exc)
        provider = self.reads.provider(who)
        earned, spent, refunded = self.reads.settled_totals(who)
        return base | {
            "who": who,
            "balance": balance,
            "stake": stake,
            "provider": provider,
            "earned": earned,
            "spent": spent,
            "refunded": refunded,
            "orders": self._page(lambda: self.reads.orders_of(who, PAGE, cursors.get("orders"))),
            "leases": self._page(lambda: self.store.leases_of(who, limit=PAGE, cursor=cursors.get("leases"))),
            "events": self.reads.account_events(who),
            "known": self.reads.is_known_account(who),
        }

    def providers(self, cursor: str | None) -> dict[str, Any]:
        return self.base() | {"page": self._page(lambda: self.reads.providers(PAGE, cursor))}

    # --- Transactions and search

    def tx(self, text: str) -> dict[str, Any]:
        tx_hash = _hash32(text.lower(), "transaction hash")
        finding = self.reads.find_tx(tx_hash)
        if not finding.found:
            raise PageNotFoundError(f"no market transaction has hash {text}")
        base = self.base()
        times = {e.block_number: self._block_time(e.block_number, base["chain"]) for e in finding.events}
        post = None if finding.root_batch_id is None else self.reads.root_post(finding.root_batch_id)
        return base | {"finding": finding, "post": post, "event_times": times}

    def search(self, text: str) -> SearchOutcome:
        query = classify(text)
        if query is None:
            return SearchOutcome(text, message=_nothing(text))
        if query.kind == "address":
            return SearchOutcome(text, redirect=f"/address/{query.address}")
        if query.kind == "hash32":
            return self._search_hash(text, query)
        return self._search_number(text, query)

    def _search_hash(self, text: str, query: Query) -> SearchOutcome:
        h = query.hash32
        assert h is not None
        choices: list[tuple[str, str]] = []
        if self.store.get_order(h) is not None:
            choices.append((f"/orders/{hex0x(h)}", f"order {hex0x(h)}"))
        if self.reads.find_tx(h).found:
            choices.append((f"/tx/{hex0x(h)}", f"transaction {hex0x(h)}"))
        batch_id = self.reads.batch_of_root(h)
        if batch_id is not None:
            choices.append((f"/batches/{batch_id}", f"batch {batch_id} (its settlement root)"))
        lease_id = self.reads.lease_of_receipt(h)
        if lease_id is not None:
            choices.append((f"/leases/{lease_id}", f"lease {lease_id} (one of its receipts)"))
        return self._outcome(text, choices)

    def _search_number(self, text: str, query: Query) -> SearchOutcome:
        n = query.number
        assert n is not None
        choices: list[tuple[str, str]] = []
        if query.only in (None, "batch") and self.reads.batch_exists(n):
            choices.append((f"/batches/{n}", f"batch {n}"))
        if query.only in (None, "lease") and self.reads.lease_exists(n):
            choices.append((f"/leases/{n}", f"lease {n}"))
        return self._outcome(text, choices)

    @staticmethod
    def _outcome(text: str, choices: list[tuple[str, str]]) -> SearchOutcome:
        if not choices:
            return SearchOutcome(text, message=_nothing(text))
        if len(choices) == 1:
            return SearchOutcome(text, redirect=choices[0][0])
        return SearchOutcome(text, choices=tuple(choices))

    def search_page(self, outcome: SearchOutcome) -> dict[str, Any]:
        return self.base() | {"outcome": outcome}

    def not_found(self, message: str) -> dict[str, Any]:
        return self.base() | {"message": message}

    @staticmethod
    def _page(load: Callable[[], Any]) -> Any:
        try:
            return load()
        except StoreError as exc:  # a bad cursor in the URL: the id exists, the cursor does not
            raise PageNotFoundError(f"that page does not exist: {exc}") from None


def _nothing(text: str) -> str:
    return (
        f"Nothing found for {text.strip()!r}. Search takes an address (0x and 40 hex digits), a transaction "
        "hash, an order hash, a batch root or a receipt hash (0x and 64 hex digits), a batch or lease id."
    )
