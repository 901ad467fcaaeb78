"""What the SDK returns: frozen dataclasses over the matcher's JSON and the chain's reads. Amounts are
integers in the token's base units, times unix seconds. Each keeps the matcher's `raw` body for the rest.

`from_json` constructors are pure (no I/O), so that the stage logic and the CLI's output are unit-tested on
plain dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from gpuspot.deployment import MarketParameters
from gpuspot.protocol import Bid, Eip712Domain, Signature
from gpuspot.protocol.evidence import JobState, Receipt

__all__ = [
    "Book",
    "Check",
    "EscrowAccount",
    "EvidenceInfo",
    "FollowResult",
    "LeaseInfo",
    "LeaseVerification",
    "MarketInfo",
    "OrderInfo",
    "PendingWithdrawal",
    "PlacedBid",
    "PriceLevel",
    "Progress",
    "Stage",
    "VerifiedReceipt",
    "derive_stage",
]


class Stage(IntEnum):
    """Where a bid is, from the buyer's side. Progress stages are ordered (OPEN < MATCHED < LOCKED < RUNNING
    < FINISHED < SETTLED); the others are terminal failures (`failed`), numbered after them."""

    OPEN = 1
    """In the book, waiting for a batch that matches it."""
    MATCHED = 2
    """A batch matched it with a provider: a lease exists (its root may still be on its way)."""
    LOCKED = 3
    """The lease is locked on-chain: the bid's cost at its cap is reserved in the escrow."""
    RUNNING = 4
    """The provider sends receipts: the job is being prepared or runs."""
    FINISHED = 5
    """The lease's evidence ended (the job ended, was stopped, or the provider stopped proving)."""
    SETTLED = 6
    """The final usage is paid on-chain: the provider got proven time x price, the buyer the rest back."""
    CANCELLED = 10
    """The order was cancelled (by the buyer, or by the matcher after a withdrawal request or nonce use)."""
    EXPIRED = 11
    """The order expired unmatched."""
    REJECTED = 12
    """The provider refused the lease before starting it (a `rejected` receipt): nobody pays anything."""
    RECLAIMED = 13
    """Nobody settled the lease in time; it was reclaimed and the buyer got back what was not paid."""
    LAPSED = 14
    """The lease was never locked within the lock window: nobody owes anything."""

    @property
    def failed(self) -> bool:
        return self >= Stage.CANCELLED

    @property
    def label(self) -> str:
        return self.name.lower()


def derive_stage(order: dict[str, Any], lease: dict[str, Any] | None) -> Stage:
    """The stage of a bid from `GET /v1/orders/{hash}` and, once matched, `GET /v1/leases/{id}` (pure)."""
    status = order.get("status")
    if lease is None:
        if status == "cancelled":
            return Stage.CANCELLED
        if status == "expired":
            return Stage.EXPIRED
        return Stage.MATCHED if status == "matched" else Stage.OPEN
    chain = lease.get("chain") or {}
    evidence = lease.get("evidence") or {}
    if chain.get("reclaimed"):
        return Stage.RECLAIMED
    if evidence.get("end_reason") == "rejected":
        return Stage.REJECTED
    if chain.get("closed"):
        return Stage.SETTLED
    if evidence.get("state") == "lapsed":
        return Stage.LAPSED
    if evidence.get("state") == "ended":
        return Stage.FINISHED
    if evidence.get("last_sequence") is not None:
        return Stage.RUNNING
    if chain.get("locked"):
        return Stage.LOCKED
    return Stage.MATCHED


def _int(value: Any) -> int:
    return int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class MarketInfo:
    """`GET /v1/market`: the chain, contracts, token, products, and the EIP-712 domain to sign with."""

    chain_id: int
    escrow: str
    registry: str
    token: str
    token_decimals: int
    products: tuple[str, ...]
    domain: Eip712Domain
    batch_interval: float
    pricing_rule: str
    min_order_lifetime: int
    parameters: MarketParameters
    evidence: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> MarketInfo:
        domain = body["eip712"]["domain"]
        return cls(
            chain_id=int(body["chain_id"]),
            escrow=str(body["contracts"]["escrow"]),
            registry=str(body["contracts"]["registry"]),
            token=str(body["token"]["address"]),
            token_decimals=int(body["token"]["decimals"]),
            products=tuple(str(p["name"]) for p in body["products"]),
            domain=Eip712Domain(
                chain_id=int(domain["chainId"]),
                verifying_contract=str(domain["verifyingContract"]),
                name=str(domain["name"]),
                version=str(domain["version"]),
            ),
            batch_interval=float(body["batch_interval"]),
            pricing_rule=str(body.get("pricing_rule", "")),
            min_order_lifetime=int(body.get("min_order_lifetime", 0)),
            parameters=MarketParameters(**body["parameters"]),
            evidence=dict(body.get("evidence") or {}),
            raw=body,
        )


@dataclass(frozen=True)
class PendingWithdrawal:
    amount: int
    ready_at: int
    """Unix time (chain clock) from which `withdraw` pays it."""


@dataclass(frozen=True)
class EscrowAccount:
    """The buyer's ledger entry in the escrow (`accountOf`, `pendingWithdrawal`), base units."""

    available: int
    reserved: int
    pending_withdrawal: PendingWithdrawal | None


@dataclass(frozen=True)
class PriceLevel:
    price_per_gpu_hour: int
    gpus: int
    orders: int


@dataclass(frozen=True)
class Book:
    """`GET /v1/book/{product}`: open depth per price level, best first on each side."""

    product: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Book:
        def levels(items: list[dict[str, Any]]) -> tuple[PriceLevel, ...]:
            return tuple(
                PriceLevel(int(i["price_per_gpu_hour"]), int(i["gpus"]), int(i["orders"])) for i in items
            )

        return cls(str(body["product"]), levels(body["bids"]), levels(body["asks"]))


@dataclass(frozen=True)
class PlacedBid:
    """A bid the matcher accepted: its order hash (the EIP-712 digest, 0x hex), the signed bid, and the
    hash of the job spec it carries."""

    order_hash: str
    bid: Bid
    job_spec_hash: bytes
    signature: Signature | None = None

    @property
    def max_cost(self) -> int:
        """What locking its lease reserves: the whole duration at the price cap."""
        return self.bid.reservation


@dataclass(frozen=True)
class OrderInfo:
    """`GET /v1/orders/{hash}`, plus the lease that fills it once matched."""

    order_hash: str
    status: str
    product_name: str | None
    gpus: int
    duration: int
    price_per_gpu_hour: int
    max_cost: int | None
    expiry: int
    history: tuple[dict[str, Any], ...]
    explanation: str | None
    lease_id: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any], lease_id: int | None = None) -> OrderInfo:
        explanation = body.get("explanation")
        return cls(
            order_hash=str(body["hash"]),
            status=str(body["status"]),
            product_name=body.get("product_name"),
            gpus=int(body["gpus"]),
            duration=int(body["duration"]),
            price_per_gpu_hour=int(body["price_per_gpu_hour"]),
            max_cost=_opt_int(body.get("max_cost")),
            expiry=int(body["expiry"]),
            history=tuple(body.get("history") or ()),
            explanation=None
            if not explanation
            else str(explanation.get("text") or explanation.get("reason")),
            lease_id=lease_id,
            raw=body,
        )

    @property
    def matched_batch(self) -> int | None:
        """The batch that matched the order, from its history."""
        for change in self.history:
            if change.get("status") == "matched" and change.get("batch_id") is not None:
                return int(change["batch_id"])
        return None


@dataclass(frozen=True)
class EvidenceInfo:
    """A lease's delivery evidence as the matcher judges it now (docs/evidence.md, "Proven time")."""

    state: str
    end_reason: str | None
    proven_until: int | None
    proven_gpu_seconds: int
    committed_gpu_seconds: int
    held_by_challenge: bool
    receipts: int
    last_receipt_time: int | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> EvidenceInfo:
        last = body.get("last_sequence")
        return cls(
            state=str(body.get("state")),
            end_reason=body.get("end_reason"),
            proven_until=_opt_int(body.get("proven_until")),
            proven_gpu_seconds=int(body.get("proven_gpu_seconds") or 0),
            committed_gpu_seconds=int(body.get("committed_gpu_seconds") or 0),
            held_by_challenge=bool(body.get("held_by_challenge")),
            receipts=0 if last is None else int(last) + 1,
            last_receipt_time=_opt_int(body.get("last_receipt_time")),
        )


@dataclass(frozen=True)
class LeaseInfo:
    """`GET /v1/leases/{id}`: the lease's terms, its state on-chain (as the matcher's mirror of the chain
    sees it), its evidence and usage leaves."""

    lease_id: int
    batch_id: int
    bid_hash: str
    buyer: str
    provider: str
    product_name: str | None
    gpus: int
    duration: int
    price_per_gpu_hour: int
    status: str
    locked: bool
    reserved: int | None
    paid: int
    refunded: int
    closed: bool
    reclaimed: bool
    used_gpu_seconds: int
    start: int | None
    ends_at: int | None
    job_spec_hash: str | None
    stop_requested: bool
    evidence: EvidenceInfo
    usage: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LeaseInfo:
        chain = body.get("chain") or {}
        return cls(
            lease_id=int(body["lease_id"]),
            batch_id=int(body["batch_id"]),
            bid_hash=str(body["bid_hash"]),
            buyer=str(body["buyer"]),
            provider=str(body["provider"]),
            product_name=body.get("product_name"),
            gpus=int(body["gpus"]),
            duration=int(body["duration"]),
            price_per_gpu_hour=int(body["price_per_gpu_hour"]),
            status=str(body["status"]),
            locked=bool(chain.get("locked")),
            reserved=_opt_int(chain.get("reserved")),
            paid=int(chain.get("paid") or 0),
            refunded=int(chain.get("refunded") or 0),
            closed=bool(chain.get("closed")),
            reclaimed=bool(chain.get("reclaimed")),
            used_gpu_seconds=int(chain.get("used_gpu_seconds") or 0),
            start=_opt_int(body.get("start")),
            ends_at=_opt_int(body.get("ends_at")),
            job_spec_hash=body.get("job_spec_hash"),
            stop_requested=bool(body.get("stop_requested")),
            evidence=EvidenceInfo.from_json(body.get("evidence") or {}),
            usage=tuple(body.get("usage") or ()),
            raw=body,
        )


@dataclass(frozen=True)
class Progress:
    """What `follow` reports on each change: the stage and the figures a buyer watches."""

    stage: Stage
    order_hash: str
    lease_id: int | None = None
    receipts: int = 0
    challenges_passed: int = 0
    challenges_failed: int = 0
    proven_gpu_seconds: int = 0

    def __str__(self) -> str:
        if self.lease_id is None:
            return self.stage.label
        return (
            f"{self.stage.label}: lease {self.lease_id}, {self.receipts} receipt(s), challenges "
            f"{self.challenges_passed} passed / {self.challenges_failed} failed, "
            f"{self.proven_gpu_seconds} GPU-seconds proven"
        )


@dataclass(frozen=True)
class FollowResult:
    stage: Stage
    order: OrderInfo
    lease: LeaseInfo | None


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose provider signature and place in the hash chain were checked locally."""

    receipt: Receipt
    signature: Signature
    hash: bytes
    signer: str
    received_at: int | None

    @property
    def sequence(self) -> int:
        return self.receipt.sequence

    @property
    def time(self) -> int:
        return self.receipt.time

    @property
    def job_state(self) -> JobState:
        return self.receipt.job_state

    @property
    def outputs(self) -> dict[str, Any] | None:
        return self.receipt.outputs


@dataclass(frozen=True)
class Check:
    """One check of `verify_lease`: its name, whether it held, and what was compared."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LeaseVerification:
    ok: bool
    checks: list[Check]
