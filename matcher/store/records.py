"""What the store hands back: frozen storage records, separate from the API's request/response models.

Amounts are exact ints, hashes bytes, accounts checksummed strings, times unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from gpuspot.protocol.challenge import Challenge
from gpuspot.protocol.evidence import JobState, Receipt
from gpuspot.protocol.leaves import SettlementLeaf
from gpuspot.protocol.orders import Order, Signature, from_json
from matcher.chain.poster import SignedRootTx
from matcher.clearing.book import OrderHash
from matcher.clearing.outcome import BatchClearing, Match, Reason, Side, Unmatched

__all__ = [
    "BatchRecord",
    "BatchStatus",
    "ChainLeaseState",
    "ChallengeRecord",
    "EvidenceEnd",
    "EvidenceRecord",
    "EvidenceSummary",
    "Explanation",
    "IntakeState",
    "LeafRecord",
    "LeaseRecord",
    "NewBatch",
    "NewLease",
    "PendingRoot",
    "OrderRecord",
    "ReceiptHead",
    "ReceiptRecord",
    "UsageRecord",
    "OrderStatus",
    "Page",
    "StatusChange",
]

T = TypeVar("T")


class OrderStatus(StrEnum):
    OPEN = "open"
    MATCHED = "matched"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class BatchStatus(StrEnum):
    EMPTY = "empty"
    """No leaves: nothing to post."""
    AWAITING_TX = "awaiting_tx"
    """A root to post, no signed transaction stored yet."""
    TX_STORED = "tx_stored"
    """A signed transaction is stored; it may or may not have been sent."""
    POSTED = "posted"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_hash: OrderHash
    kind: str  # "bid" | "ask"
    signer: str
    product: bytes
    nonce: int
    price: int
    """A bid's max price or an ask's min price, per GPU-hour."""
    gpus: int
    duration: int
    """A bid's duration or an ask's max duration, seconds."""
    host_id: bytes | None
    job_spec_hash: bytes | None
    expiry: int
    max_cost: int | None
    order_json: str
    signature: Signature
    status: OrderStatus
    received_at: int
    status_at: int

    def order(self) -> Order:
        """The signed order itself (parsed on demand: the book reads many records and few orders)."""
        return from_json(self.order_json)


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: OrderStatus
    at: int
    batch_id: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class NewLease:
    """A match to record as a lease, with the id the matcher gave it (the leaves carry the same id)."""

    lease_id: int
    product: bytes
    match: Match


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A cleared batch to record in one transaction.

    `leases` are `clearing.matches` with their ids (`assign_lease_ids`), `leaves` the batch's settlement
    leaves (its new leases' lease leaves and any usage leaves), `root` the root of `settlement_tree(leaves)`,
    None when there are no leaves. The seed and rule are the clearing's own."""

    batch_id: int
    code_version: str
    clearing: BatchClearing
    leases: Sequence[NewLease]
    leaves: Sequence[SettlementLeaf]
    root: bytes | None
    recorded_at: int


@dataclass(frozen=True, slots=True)
class PendingRoot:
    """A batch whose root is not known to be on-chain yet, and the signed transaction stored for it (None:
    prepare one, store it, then send it)."""

    batch_id: int
    root: bytes
    tx: SignedRootTx | None


@dataclass(frozen=True, slots=True)
class IntakeState:
    """What intake needs to know about the accounts and nonces of one round of submissions, read in one
    transaction (`Store.intake_state`). Accounts checksummed; amounts in base units.

    `reservations`: per buyer, open bids' max costs plus the max costs of its still-lockable, unlocked
    leases. `closed_nonces`: pairs no longer Open on-chain. `open_nonces`: the open order holding a pair."""

    reservations: dict[str, int]
    closed_nonces: frozenset[tuple[str, int]]
    open_nonces: dict[tuple[str, int], OrderHash]
    pending_withdrawals: frozenset[str]
    active_providers: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChainLeaseState:
    """What the chain says about a lease so far (from the mirrored events)."""

    locked: bool
    reserved: int | None
    used_gpu_seconds: int
    paid: int
    refunded: int
    closed: bool
    reclaimed: bool


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    lease_id: int
    batch_id: int
    product: bytes
    bid_hash: OrderHash
    ask_hash: OrderHash
    buyer: str
    provider: str
    host_id: bytes
    gpus: int
    duration: int
    price_per_gpu_hour: int
    status: str
    """Derived, never stored: `committed` (root not posted), `posted`, `locked`, `settling` (paid in part),
    `closed` (final usage settled) or `reclaimed`; see docs/store.md."""
    chain: ChainLeaseState


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: int
    seed: bytes
    rule: str
    code_version: str
    commitment: bytes
    root: bytes | None
    lease_count: int
    leaf_count: int
    totals: dict[str, int]
    recorded_at: int
    status: BatchStatus
    root_tx_hash: bytes | None
    posted_tx_hash: bytes | None
    posted_block: int | None
    posted_at: int | None


@dataclass(frozen=True, slots=True)
class LeafRecord:
    batch_id: int
    leaf_index: int
    leaf_hash: bytes
    leaf: SettlementLeaf


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an order did not trade in the last batch that considered it."""

    order_hash: OrderHash
    batch_id: int
    side: Side
    reason: Reason
    gap: int | None

    def text(self) -> str:
        return Unmatched(self.order_hash, self.side, self.reason, self.gap).explain()  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: pass `next_cursor` back to get the next one; None means this was the last."""

    items: Sequence[T]
    next_cursor: str | None


# --- Delivery evidence


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A stored receipt exactly as signed, its hash under the market's domain, and when it arrived."""

    receipt: Receipt
    receipt_hash: bytes
    signature: Signature
    received_at: int


@dataclass(frozen=True, slots=True)
class ReceiptHead:
    """What the proven-time rule reads of a receipt (`ReceiptRecord` without the documents)."""

    sequence: int
    time: int
    job_state: JobState
    receipt_hash: bytes


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """A proof-of-work challenge as issued, committed (root, signature, arrival, verifier seed, audited rows)
    and resolved (`outcome` None while open). Times are the matcher's clock in milliseconds."""

    lease_id: int
    sequence: int
    block_hash: bytes
    block_number: int
    n: int
    issued_at_ms: int
    deadline_ms: int
    root: bytes | None
    commit_signature: Signature | None
    committed_at_ms: int | None
    verifier_seed: bytes | None
    rows: tuple[int, ...] | None
    has_opening: bool
    outcome: str | None
    reason: str | None
    resolved_at_ms: int | None

    @classmethod
    def issued(
        cls,
        lease_id: int,
        sequence: int,
        *,
        block_hash: bytes,
        block_number: int,
        n: int,
        issued_at_ms: int,
        deadline_ms: int,
    ) -> ChallengeRecord:
        """A challenge just issued: nothing committed, opened or resolved yet."""
        return cls(
            lease_id=lease_id,
            sequence=sequence,
            block_hash=block_hash,
            block_number=block_number,
            n=n,
            issued_at_ms=issued_at_ms,
            deadline_ms=deadline_ms,
            root=None,
            commit_signature=None,
            committed_at_ms=None,
            verifier_seed=None,
            rows=None,
            has_opening=False,
            outcome=None,
            reason=None,
            resolved_at_ms=None,
        )

    def challenge(self) -> Challenge:
        """The protocol's challenge (its seed re-derived from the block hash, lease and sequence)."""
        return Challenge(
            self.lease_id, self.sequence, self.block_hash, self.n, self.issued_at_ms, self.deadline_ms
        )

    @property
    def is_open(self) -> bool:
        return self.outcome is None


@dataclass(frozen=True, slots=True)
class EvidenceEnd:
    """Why and where a lease's evidence ended, as recorded once (docs/evidence.md, "Proven time")."""

    lease_id: int
    reason: str
    proven_until: int | None
    proven_gpu_seconds: int
    ended_at: int


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """A usage leaf committed for a lease: in batch `batch_id`, recorded at `recorded_at`, posted or not."""

    batch_id: int
    leaf: SettlementLeaf
    recorded_at: int
    posted: bool

    @property
    def used_gpu_seconds(self) -> int:
        return self.leaf.used_gpu_seconds

    @property
    def final(self) -> bool:
        return self.leaf.kind == 2


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """Everything the proven-time rule and the lease views read about one lease, in one snapshot.

    `start` is the lease root's `postedAt` (None until posted); `receipts` in sequence order; `usage` in
    batch order; `lease_leaf` the kind-0 leaf its batch committed."""

    lease: LeaseRecord
    start: int | None
    lease_leaf: SettlementLeaf
    receipts: tuple[ReceiptHead, ...]
    challenges: tuple[ChallengeRecord, ...]
    end: EvidenceEnd | None
    lapsed_at: int | None
    usage: tuple[UsageRecord, ...]
    stop_requested_at: int | None
    job_spec_hash: bytes

    @property
    def committed_gpu_seconds(self) -> int:
        return max((u.used_gpu_seconds for u in self.usage), default=0)

    @property
    def final_usage(self) -> UsageRecord | None:
        return next((u for u in self.usage if u.final), None)


@dataclass(frozen=True, slots=True)
class EvidenceSummary:
    """A provider's published record for the arbiter: challenge verdicts and the ends that were failures."""

    challenges_passed: int
    challenges_failed: int
    challenges_open: int
    failed_ends: tuple[EvidenceEnd, ...]
