"""What intake reads about the market: a `MarketView`, filled by the service from its store and chain watcher.

The validator only queries it, never changes it. Accounts are passed as EIP-55 checksummed strings (the form
`gpuspot.protocol` normalizes every order's address to), amounts as ints in token base units.

`MarketSnapshot` is a frozen, in-memory `MarketView`: tests use it, and so can a service that copies the
few figures it needs for one request. `with_accepted` gives the snapshot that results from adding an accepted
order to the book, which is what `validate_many` does between the items of a batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from gpuspot.catalog import Catalog
from gpuspot.protocol import abi
from gpuspot.protocol.errors import AbiEncodingError
from matcher.clearing.book import OrderHash
from matcher.intake.errors import InvalidMarketViewError

if TYPE_CHECKING:
    from matcher.intake.validate import AcceptedOrder

__all__ = ["MarketContext", "MarketSnapshot", "MarketTerms", "MarketView"]


class MarketContext(Protocol):
    """The market's terms at a moment: all that checks 1-8 (`verify_submission`) read."""

    @property
    def chain_id(self) -> int: ...

    @property
    def escrow(self) -> str:
        """The escrow's address: the EIP-712 domain's `verifyingContract`."""
        ...

    @property
    def now(self) -> int: ...

    @property
    def catalog(self) -> Catalog: ...


@dataclass(frozen=True)
class MarketTerms:
    """A `MarketContext` held in memory: what a service hands `verify_many` before it reads any state."""

    chain_id: int
    escrow: str
    now: int
    catalog: Catalog


class MarketView(MarketContext, Protocol):
    """The market state one validation reads. Every query is about now (`now`, unix seconds)."""

    def available_balance(self, buyer: str) -> int:
        """The buyer's `available` balance in the escrow, on-chain (confirmed), in base units."""
        ...

    def reserved(self, buyer: str) -> int:
        """What the matcher already holds back for the buyer: the sum of `max_cost` over the buyer's open bids
        (including a bid being resubmitted, which intake then discounts)."""
        ...

    def nonce_closed(self, account: str, nonce: int) -> bool:
        """Whether `(account, nonce)` is no longer Open on-chain (locked, closed, or invalidated)."""
        ...

    def open_order_with_nonce(self, account: str, nonce: int) -> OrderHash | None:
        """The hash of the matcher's open order (bid or ask) that holds `(account, nonce)`, if any."""
        ...

    def provider_active(self, provider: str) -> bool:
        """Whether the provider is registered, staked and has not requested its exit."""
        ...

    def withdrawal_pending(self, buyer: str) -> bool:
        """Whether the buyer has requested a withdrawal that is neither withdrawn nor cancelled."""
        ...


def _checksummed(address: str) -> str:
    try:
        return abi.normalize_address(address, "account")
    except AbiEncodingError as exc:
        raise InvalidMarketViewError(str(exc)) from None


@dataclass(frozen=True)
class MarketSnapshot:
    """A `MarketView` held in memory. Account keys may be in any valid hex form; they are checksummed."""

    chain_id: int
    escrow: str
    now: int
    catalog: Catalog
    balances: Mapping[str, int] = field(default_factory=dict)
    reservations: Mapping[str, int] = field(default_factory=dict)
    closed_nonces: frozenset[tuple[str, int]] = frozenset()
    open_nonces: Mapping[tuple[str, int], OrderHash] = field(default_factory=dict)
    active_providers: frozenset[str] = frozenset()
    pending_withdrawals: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "escrow", _checksummed(self.escrow))
        set_(self, "balances", {_checksummed(a): v for a, v in self.balances.items()})
        set_(self, "reservations", {_checksummed(a): v for a, v in self.reservations.items()})
        set_(self, "closed_nonces", frozenset((_checksummed(a), n) for a, n in self.closed_nonces))
        set_(self, "open_nonces", {(_checksummed(a), n): h for (a, n), h in self.open_nonces.items()})
        set_(self, "active_providers", frozenset(_checksummed(a) for a in self.active_providers))
        set_(self, "pending_withdrawals", frozenset(_checksummed(a) for a in self.pending_withdrawals))

    def available_balance(self, buyer: str) -> int:
        return self.balances.get(buyer, 0)

    def reserved(self, buyer: str) -> int:
        return self.reservations.get(buyer, 0)

    def nonce_closed(self, account: str, nonce: int) -> bool:
        return (account, nonce) in self.closed_nonces

    def open_order_with_nonce(self, account: str, nonce: int) -> OrderHash | None:
        return self.open_nonces.get((account, nonce))

    def provider_active(self, provider: str) -> bool:
        return provider in self.active_providers

    def withdrawal_pending(self, buyer: str) -> bool:
        return buyer in self.pending_withdrawals

    def with_accepted(self, accepted: AcceptedOrder) -> MarketSnapshot:
        """This snapshot with `accepted` in the book: its nonce held and, for a bid, its max cost reserved.
        Adding an order that is already open changes nothing."""
        if accepted.already_open:
            return self
        key = (accepted.signer, accepted.order.nonce)
        reservations = dict(self.reservations)
        if accepted.max_cost is not None:
            reservations[accepted.signer] = reservations.get(accepted.signer, 0) + accepted.max_cost
        return replace(
            self, open_nonces={**self.open_nonces, key: accepted.order_hash}, reservations=reservations
        )
