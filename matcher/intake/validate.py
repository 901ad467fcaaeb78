"""Order intake: a submitted order in, an `AcceptedOrder` or an `OrderRejected` out; pure, nothing is kept.

Checks run cheapest and stateless first, the signature next, and only then the checks that read an account's
state, so that nothing about an account is revealed to someone who cannot sign for it:

 1. `malformed`            the body, the order's fields (gpuspot.protocol's checks) or the signature's shape
 2. `wrong_domain`         a `domain` was sent and is not this market's (name, version, chainId, escrow)
 3. `zero_quantity`        gpus or duration is 0
 4. `unknown_product`      the product id is not in the catalog
 5. `expired`              expiry <= now
 6. `expires_too_soon`     expiry - now < policy.min_lifetime
 7. `price_out_of_range`   a bid whose maximum cost rounds down to 0 base units
 8. `bad_signature`        a signature the escrow would refuse, or one that recovers someone other than the
                           order's buyer/provider
 9. `nonce_used`           the nonce is closed on-chain, or held by another open order of the matcher
10. `provider_inactive`    (asks) the provider is not active in the registry
11. `withdrawal_pending`   (bids) the buyer has a withdrawal pending
12. `insufficient_balance` (bids) available - reserved by other open bids < this bid's max cost

Resubmitting an order that is already open (same order hash) is not an error: it is validated as if it were
not in the book yet (its own nonce and reservation do not count against it) and comes back with the same
`order_hash` and `already_open=True`, so the service dedups by hash and reserves nothing twice.

The service must run `validate` and the insertion of its result into the book atomically (one writer, or
a lock per account): two bids validated against the same balance could otherwise both pass. `validate_many`
does this within a batch: each item sees the ones accepted before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from eth_utils.address import to_checksum_address

from gpuspot.catalog import Catalog
from gpuspot.protocol.errors import InvalidOrderError
from gpuspot.protocol.orders import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    Bid,
    Eip712Domain,
    Order,
    Signature,
    digest,
    recover_digest_address,
)
from matcher.clearing.book import Amount, OrderHash
from matcher.intake.errors import InvalidIntakePolicyError, InvalidMarketViewError, OrderRejected, RejectCode
from matcher.intake.view import MarketContext, MarketView
from matcher.intake.wire import OrderKind, SignedDomain, parse_submission

__all__ = [
    "AcceptedOrder",
    "IntakePolicy",
    "IntakeResult",
    "SignedOrder",
    "admit_many",
    "market_domain",
    "validate",
    "validate_many",
    "verify_many",
    "verify_submission",
]


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    """The matcher's own acceptance rules, from its settings.

    `min_lifetime`: seconds an order must still have to live when it arrives (`expires_too_soon` otherwise).
    0 only refuses orders already expired; a service sets its batch interval plus the time it takes to post a
    root, so that every accepted bid can still be locked on-chain (`bid.expiry >= postedAt`) after the batch
    it arrives in.
    """

    min_lifetime: int = 0

    def __post_init__(self) -> None:
        if (
            isinstance(self.min_lifetime, bool)
            or not isinstance(self.min_lifetime, int)
            or self.min_lifetime < 0
        ):
            raise InvalidIntakePolicyError(
                f"min_lifetime must be a whole number of seconds >= 0, got {self.min_lifetime!r}"
            )


@dataclass(frozen=True, slots=True)
class AcceptedOrder:
    """A valid signed order, ready for the book.

    `order_hash` is its EIP-712 digest (its identity everywhere); `signer` is the buyer or provider,
    checksummed; `max_cost` is what a bid reserves against the buyer's balance,
    `gpus * duration * max_price // 3600` (the escrow's reservation when the lease is locked), None for an
    ask; `already_open` says the matcher's book already holds this very order (a resubmission: store nothing,
    reserve nothing).
    """

    kind: OrderKind
    order: Order
    order_hash: OrderHash
    signer: str
    signature: Signature
    max_cost: Amount | None
    already_open: bool


IntakeResult = AcceptedOrder | OrderRejected
"""One item of `validate_many`'s answer."""


@lru_cache(maxsize=16)
def market_domain(chain_id: int, escrow: str) -> Eip712Domain:
    """The market's EIP-712 domain (cached: its separator costs three keccaks)."""
    try:
        return Eip712Domain(chain_id=chain_id, verifying_contract=escrow)
    except InvalidOrderError as exc:
        raise InvalidMarketViewError(f"the market view's chain id or escrow is unusable: {exc}") from None


def _reject(code: RejectCode, message: str, **details: int | str) -> OrderRejected:
    return OrderRejected(code, message, details)


def _check_domain(signed: SignedDomain, market: Eip712Domain) -> None:
    if (
        signed.name != DOMAIN_NAME
        or signed.version != DOMAIN_VERSION
        or signed.chain_id != market.chain_id
        or signed.verifying_contract.lower() != market.verifying_contract.lower()
    ):
        raise _reject(
            RejectCode.WRONG_DOMAIN,
            f"the order was signed for domain (name {signed.name!r}, version {signed.version!r}, chainId "
            f"{signed.chain_id}, verifyingContract {signed.verifying_contract}), not this market's (name "
            f"{DOMAIN_NAME!r}, version {DOMAIN_VERSION!r}, chainId {market.chain_id}, verifyingContract "
            f"{market.verifying_contract}): sign it again for this market's domain (the API publishes it)",
            chain_id=market.chain_id,
            verifying_contract=market.verifying_contract,
        )


def _check_terms(order: Order, catalog: Catalog, now: int, policy: IntakePolicy) -> int | None:
    """Checks 3-7; returns a bid's max cost."""
    is_bid = isinstance(order, Bid)
    duration = order.duration if isinstance(order, Bid) else order.max_duration
    if order.gpus == 0 or duration == 0:
        what = "gpus" if order.gpus == 0 else ("duration" if is_bid else "maxDuration")
        raise _reject(
            RejectCode.ZERO_QUANTITY,
            f"{order.TYPE_NAME.lower()} {what} is 0: an order must trade at least one GPU for at least "
            "one second",
        )
    if catalog.get(order.product) is None:
        raise _reject(
            RejectCode.UNKNOWN_PRODUCT,
            f"product 0x{order.product.hex()} is not in this market's catalog: set product to "
            f"keccak256 of one of {', '.join(catalog.names)} (gpuspot.protocol.product_id)",
            product="0x" + order.product.hex(),
        )
    if order.expiry <= now:
        raise _reject(
            RejectCode.EXPIRED,
            f"the order expired at {order.expiry} and it is now {now}: sign a new order with a later expiry",
            expiry=order.expiry,
            now=now,
        )
    if order.expiry - now < policy.min_lifetime:
        raise _reject(
            RejectCode.EXPIRES_TOO_SOON,
            f"the order expires in {order.expiry - now} s, but this market needs at least "
            f"{policy.min_lifetime} s (one batch and its settlement root) to trade it: sign it again with "
            f"expiry >= {now + policy.min_lifetime}",
            expiry=order.expiry,
            now=now,
            min_lifetime=policy.min_lifetime,
        )
    if not isinstance(order, Bid):
        return None
    max_cost = order.gpus * order.duration * order.max_price_per_gpu_hour // 3600
    if max_cost == 0:
        raise _reject(
            RejectCode.PRICE_OUT_OF_RANGE,
            f"the bid's maximum cost, {order.gpus} GPUs x {order.duration} s x "
            f"{order.max_price_per_gpu_hour} per GPU-hour / 3600, rounds down to 0 base units: a provider "
            "would run it for nothing; raise maxPricePerGpuHour (token base units per GPU-hour, e.g. "
            "2500000 = 2.50 tUSD)",
        )
    return max_cost


def _check_signer(order: Order, signature: Signature, message_digest: bytes, market: Eip712Domain) -> str:
    account: str = order.buyer if isinstance(order, Bid) else order.provider
    recovered = recover_digest_address(message_digest, signature)
    if recovered is None:
        raise _reject(
            RejectCode.BAD_SIGNATURE,
            "the signature recovers no public key for this order: sign the order's typed data with "
            "eth_signTypedData_v4 and send the signature unchanged",
        )
    if recovered != bytes.fromhex(account[2:]):
        role = "buyer" if isinstance(order, Bid) else "provider"
        signer = to_checksum_address(recovered)
        raise _reject(
            RejectCode.BAD_SIGNATURE,
            f"the signature is by {signer}, not the order's {role} {account}: sign with the {role}'s key, "
            f"over exactly these fields, for this market's domain (chainId {market.chain_id}, "
            f"verifyingContract {market.verifying_contract})",
            recovered=signer,
        )
    return account


def _check_state(
    order: Order, account: str, order_hash: OrderHash, max_cost: int | None, view: MarketView
) -> bool:
    """Checks 9-12; returns whether the order is already open (a resubmission)."""
    if view.nonce_closed(account, order.nonce):
        raise _reject(
            RejectCode.NONCE_USED,
            f"nonce {order.nonce} of {account} is already used or invalidated on-chain: sign the order again "
            "with a nonce never used by this account",
            nonce=str(order.nonce),
        )
    holder = view.open_order_with_nonce(account, order.nonce)
    already_open = holder == order_hash
    if holder is not None and not already_open:
        raise _reject(
            RejectCode.NONCE_USED,
            f"nonce {order.nonce} of {account} is held by the open order 0x{holder.hex()}: cancel that order "
            "first, or sign this one with a fresh nonce",
            nonce=str(order.nonce),
            holder="0x" + holder.hex(),
        )
    if max_cost is None:
        if not view.provider_active(account):
            raise _reject(
                RejectCode.PROVIDER_INACTIVE,
                f"provider {account} is not active in the registry: register with at least the minimum stake "
                "(or cancel your exit) before posting asks",
            )
        return already_open
    if view.withdrawal_pending(account):
        raise _reject(
            RejectCode.WITHDRAWAL_PENDING,
            f"buyer {account} has a withdrawal pending, and the notice only protects leases committed before "
            "it: cancel the withdrawal (cancelWithdrawal) or wait until it is withdrawn, then bid again",
        )
    available = view.available_balance(account)
    reserved = view.reserved(account) - (max_cost if already_open else 0)
    free = available - reserved
    if free < max_cost:
        short = max_cost - free
        raise _reject(
            RejectCode.INSUFFICIENT_BALANCE,
            f"this bid can cost up to {max_cost} base units, but buyer {account} has {available} available "
            f"in the escrow of which {reserved} is held for open bids: deposit at least {short} more base "
            "units, or cancel open bids, or bid for less",
            needed=max_cost,
            available=available,
            reserved=reserved,
            short=short,
        )
    return already_open


@dataclass(frozen=True, slots=True)
class SignedOrder:
    """An order that passed the checks that read nothing about any account (1-8): well-formed, for this
    market, on its terms, and signed by its buyer or provider. `admit_many` finishes the job against the
    market's state."""

    kind: OrderKind
    order: Order
    order_hash: OrderHash
    signer: str
    signature: Signature
    max_cost: Amount | None


def verify_submission(
    payload: object, view: MarketContext, policy: IntakePolicy = IntakePolicy()
) -> SignedOrder:
    """Checks 1-8 of one submission (a parsed JSON body, or its text); reads only the market's chain id,
    escrow, clock and catalog. Returns the `SignedOrder` or raises `OrderRejected`."""
    submission = parse_submission(payload)
    market = market_domain(view.chain_id, view.escrow)
    if submission.domain is not None:
        _check_domain(submission.domain, market)
    order = submission.order
    max_cost = _check_terms(order, view.catalog, view.now, policy)
    order_hash = OrderHash(digest(order, market))
    account = _check_signer(order, submission.signature, order_hash, market)
    return SignedOrder(
        kind=submission.kind,
        order=order,
        order_hash=order_hash,
        signer=account,
        signature=submission.signature,
        max_cost=None if max_cost is None else Amount(max_cost),
    )


def _admit(signed: SignedOrder, view: MarketView) -> AcceptedOrder:
    """Checks 9-12 of a signed order against the market's state."""
    already_open = _check_state(signed.order, signed.signer, signed.order_hash, signed.max_cost, view)
    return AcceptedOrder(
        kind=signed.kind,
        order=signed.order,
        order_hash=signed.order_hash,
        signer=signed.signer,
        signature=signed.signature,
        max_cost=signed.max_cost,
        already_open=already_open,
    )


def validate(payload: object, view: MarketView, policy: IntakePolicy = IntakePolicy()) -> AcceptedOrder:
    """Validates one submitted order (a parsed JSON body, or its text) against the market; see the module doc.

    Returns the `AcceptedOrder` or raises `OrderRejected` (with its `code`); changes nothing.
    """
    return _admit(verify_submission(payload, view, policy), view)


class _BatchView:
    """`view` plus the orders accepted earlier in the same batch: their nonces held, their costs reserved."""

    def __init__(self, view: MarketView):
        self._view = view
        self.chain_id = view.chain_id
        self.escrow = view.escrow
        self.now = view.now
        self.catalog = view.catalog
        self._reserved: dict[str, int] = {}
        self._nonces: dict[tuple[str, int], OrderHash] = {}
        self._balances: dict[str, int] = {}
        self._base_reserved: dict[str, int] = {}

    def add(self, accepted: AcceptedOrder) -> None:
        if accepted.already_open:
            return
        self._nonces[(accepted.signer, accepted.order.nonce)] = accepted.order_hash
        if accepted.max_cost is not None:
            self._reserved[accepted.signer] = self._reserved.get(accepted.signer, 0) + accepted.max_cost

    def available_balance(self, buyer: str) -> int:
        # Read once per buyer and batch: the balance is a chain read that nothing in the batch changes.
        if buyer not in self._balances:
            self._balances[buyer] = self._view.available_balance(buyer)
        return self._balances[buyer]

    def reserved(self, buyer: str) -> int:
        # The store's reservation is read once per buyer and batch; the batch's own orders are added here.
        if buyer not in self._base_reserved:
            self._base_reserved[buyer] = self._view.reserved(buyer)
        return self._base_reserved[buyer] + self._reserved.get(buyer, 0)

    def nonce_closed(self, account: str, nonce: int) -> bool:
        return self._view.nonce_closed(account, nonce)

    def open_order_with_nonce(self, account: str, nonce: int) -> OrderHash | None:
        return self._nonces.get((account, nonce)) or self._view.open_order_with_nonce(account, nonce)

    def provider_active(self, provider: str) -> bool:
        return self._view.provider_active(provider)

    def withdrawal_pending(self, buyer: str) -> bool:
        return self._view.withdrawal_pending(buyer)


def admit_many(items: Iterable[SignedOrder | OrderRejected], view: MarketView) -> list[IntakeResult]:
    """Checks 9-12 for a batch of verified submissions, one result per item in order (a rejection passes
    through unchanged). Items are admitted in order as if each accepted one had already entered the book: a
    later bid of the same buyer sees the earlier ones' reservations, a later order with the same
    (account, nonce) is `nonce_used`, and the same order twice comes back twice with the same hash (the
    second `already_open`). Nothing is changed in `view`.

    Splitting `verify_submission` from this lets a service verify a whole batch first, then read the state of
    exactly the accounts and nonces it names in one go (a `MarketSnapshot`), then admit."""
    batch = _BatchView(view)
    results: list[IntakeResult] = []
    for item in items:
        if isinstance(item, OrderRejected):
            results.append(item)
            continue
        try:
            accepted = _admit(item, batch)
        except OrderRejected as rejection:
            results.append(rejection)
            continue
        batch.add(accepted)
        results.append(accepted)
    return results


def verify_many(
    payloads: Iterable[object], view: MarketContext, policy: IntakePolicy = IntakePolicy()
) -> list[SignedOrder | OrderRejected]:
    """`verify_submission` for each payload; a rejection takes the item's place."""
    out: list[SignedOrder | OrderRejected] = []
    for payload in payloads:
        try:
            out.append(verify_submission(payload, view, policy))
        except OrderRejected as rejection:
            out.append(rejection)
    return out


def validate_many(
    payloads: Iterable[object], view: MarketView, policy: IntakePolicy = IntakePolicy()
) -> list[IntakeResult]:
    """Validates a batch of submissions, one result per item in order: an `AcceptedOrder` or the item's
    `OrderRejected`. One bad item rejects only itself; see `admit_many` for how the items see each other."""
    return admit_many(verify_many(payloads, view, policy), view)
