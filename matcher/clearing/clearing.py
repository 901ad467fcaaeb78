"""Batch clearing: a pure function of (orders, seed, rule), with no I/O.

`clear_product` clears one product's book: the clearing price from the aggregate curves (`curves`), the
allocation at that price (`allocation`), the leases priced by the rule, and an explanation for every order
that did not trade. `clear_batch` clears every product of a batch, each under the seed
`keccak256(batch_seed || product)`. Orders are put in order-hash order before anything else, so neither the
order in which they arrived nor their position in the lists can change the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import attrgetter

from gpuspot.protocol.hashing import keccak256
from matcher.clearing.allocation import allocate
from matcher.clearing.book import (
    Amount,
    BookAsk,
    BookBid,
    GpuSeconds,
    PricePerGpuHour,
    ProductBook,
    ProductId,
    Seed,
    check_bytes32,
)
from matcher.clearing.commitment import batch_commitment, product_commitment
from matcher.clearing.curves import clearing_interval
from matcher.clearing.errors import DuplicateOrderError, InvalidClearingInputError
from matcher.clearing.outcome import (
    BatchClearing,
    Match,
    ProductClearing,
    Reason,
    Side,
    Totals,
    Unmatched,
    cost,
)
from matcher.clearing.rules import PricingRule

__all__ = ["clear_batch", "clear_product", "product_seed"]

_by_hash = attrgetter("order_hash")


def product_seed(batch_seed: bytes, product: bytes) -> Seed:
    """`keccak256(batch_seed || product)`: the seed that breaks one product's ties in one batch."""
    return Seed(keccak256(check_bytes32(batch_seed, "batch_seed") + check_bytes32(product, "product")))


def _canonical(
    bids: Iterable[BookBid], asks: Iterable[BookAsk]
) -> tuple[tuple[BookBid, ...], tuple[BookAsk, ...]]:
    """Bids and asks sorted by order hash, after checking their types and that no hash repeats."""
    bid_list, ask_list = list(bids), list(asks)
    for bid in bid_list:
        if not isinstance(bid, BookBid):
            raise InvalidClearingInputError(f"bids must be BookBid, got {type(bid).__name__}: {bid!r}")
    for ask in ask_list:
        if not isinstance(ask, BookAsk):
            raise InvalidClearingInputError(f"asks must be BookAsk, got {type(ask).__name__}: {ask!r}")
    bid_list.sort(key=_by_hash)
    ask_list.sort(key=_by_hash)
    for hashes in ([bid.order_hash for bid in bid_list], [ask.order_hash for ask in ask_list]):
        for first, second in zip(hashes, hashes[1:], strict=False):
            if first == second:
                raise DuplicateOrderError(
                    f"order hash 0x{first.hex()} appears twice: an order may be in a batch once"
                )
    shared = {bid.order_hash for bid in bid_list}.intersection(ask.order_hash for ask in ask_list)
    if shared:
        raise DuplicateOrderError(
            f"order hash 0x{min(shared).hex()} is both a bid and an ask: an order may be in a batch once"
        )
    return tuple(bid_list), tuple(ask_list)


def _no_trade(bids: tuple[BookBid, ...], asks: tuple[BookAsk, ...]) -> list[Unmatched]:
    best_ask = min((ask.min_price for ask in asks), default=None)
    best_bid = max((bid.max_price for bid in bids), default=None)
    unmatched = [
        Unmatched(
            bid.order_hash,
            Side.BID,
            Reason.NO_COUNTERPARTY,
            None if best_ask is None else PricePerGpuHour(best_ask - bid.max_price),
        )
        for bid in bids
    ]
    unmatched += [
        Unmatched(
            ask.order_hash,
            Side.ASK,
            Reason.NO_COUNTERPARTY,
            None if best_bid is None else PricePerGpuHour(ask.min_price - best_bid),
        )
        for ask in asks
    ]
    return unmatched


def _trade_reduction(
    bids: tuple[BookBid, ...],
    asks: tuple[BookAsk, ...],
    placements: list[tuple[int, int]],
    used_gpus: tuple[int, ...],
) -> tuple[PricePerGpuHour | None, tuple[int, int] | None]:
    """The mcafee rule's one lease price, and the placement it drops (None when p0 fits every trade).

    p0 = (b_next + s_next) // 2, from the best bid that did not match and the cheapest ask with nothing
    allocated; if it lies within every matched bid's cap and every used ask's floor, all leases trade at p0.
    Otherwise the marginal trade (the last placement: the lowest cap, ties by the seeded hash) is dropped and
    every other lease trades at its cap, which is at or below every remaining cap and at or above every used
    floor (floors are at or below the clearing price, itself at or below every placed cap).
    """
    if not placements:
        return None, None
    placed = {bid for bid, _ in placements}
    b_next = max((bid.max_price for i, bid in enumerate(bids) if i not in placed), default=None)
    s_next = min((ask.min_price for i, ask in enumerate(asks) if not used_gpus[i]), default=None)
    lowest_cap = bids[placements[-1][0]].max_price
    highest_floor = max(asks[ask].min_price for _, ask in placements)
    if b_next is not None and s_next is not None:
        p0 = (b_next + s_next) // 2
        if highest_floor <= p0 <= lowest_cap:
            return PricePerGpuHour(p0), None
    return PricePerGpuHour(lowest_cap), placements[-1]


def clear_product(
    product: bytes,
    bids: Iterable[BookBid],
    asks: Iterable[BookAsk],
    seed: bytes,
    rule: PricingRule | str = PricingRule.UNIFORM,
) -> ProductClearing:
    """Clears one product's book under `seed` and `rule` (see docs/clearing.md for the rules).

    Raises `ClearingError` subclasses for malformed inputs: a seed or product that is not 32 bytes, an
    element that is not a `BookBid`/`BookAsk`, an order hash that appears twice, an unknown rule.
    """
    product = ProductId(check_bytes32(product, "product"))
    seed = Seed(check_bytes32(seed, "seed"))
    rule = PricingRule.parse(rule)
    bids, asks = _canonical(bids, asks)
    commitment = product_commitment(product, seed, rule, bids, asks)

    interval = clearing_interval(
        [bid.max_price for bid in bids],
        [bid.gpus * bid.duration for bid in bids],
        [ask.min_price for ask in asks],
        [ask.gpus * ask.max_duration for ask in asks],
    )
    if interval is None:
        return ProductClearing(
            product=product,
            seed=seed,
            rule=rule,
            clearing_price=None,
            interval=None,
            lease_price=None,
            matches=(),
            unmatched=tuple(_no_trade(bids, asks)),
            totals=Totals(),
            commitment=commitment,
        )

    price = interval.midpoint
    allocation = allocate(bids, asks, price, seed)
    placements = list(allocation.placements)
    used = list(allocation.used_gpus)
    lease_price: PricePerGpuHour | None = price if placements else None
    dropped: tuple[int, int] | None = None
    if rule is PricingRule.MCAFEE:
        lease_price, dropped = _trade_reduction(bids, asks, placements, allocation.used_gpus)
        if dropped is not None:
            placements.pop()
            used[dropped[1]] -= bids[dropped[0]].gpus
            if not placements:
                lease_price = None
    elif rule is PricingRule.PAY_AS_BID:
        lease_price = None

    matches: list[Match] = []
    gpu_seconds = payments = value = floor_cost = 0
    for b, a in placements:
        bid, ask = bids[b], asks[a]
        lease = bid.max_price if lease_price is None else lease_price
        volume = bid.gpus * bid.duration
        matches.append(
            Match(
                bid.order_hash,
                ask.order_hash,
                bid.buyer,
                ask.provider,
                ask.host_id,
                bid.gpus,
                bid.duration,
                lease,
            )
        )
        gpu_seconds += volume
        payments += cost(volume, lease)
        value += cost(volume, bid.max_price)
        floor_cost += cost(volume, ask.min_price)

    placed = {b for b, _ in placements}
    unmatched: list[Unmatched] = []
    for i, bid in enumerate(bids):
        if i in placed:
            continue
        if bid.max_price < price:
            unmatched.append(
                Unmatched(
                    bid.order_hash,
                    Side.BID,
                    Reason.BELOW_CLEARING_PRICE,
                    PricePerGpuHour(price - bid.max_price),
                )
            )
        elif dropped is not None and i == dropped[0]:
            unmatched.append(Unmatched(bid.order_hash, Side.BID, Reason.TRADE_REDUCTION))
        else:
            unmatched.append(Unmatched(bid.order_hash, Side.BID, Reason.NO_HOST_FITS))
    for i, ask in enumerate(asks):
        if used[i]:
            continue
        if ask.min_price > price:
            unmatched.append(
                Unmatched(
                    ask.order_hash,
                    Side.ASK,
                    Reason.ABOVE_CLEARING_PRICE,
                    PricePerGpuHour(ask.min_price - price),
                )
            )
        elif dropped is not None and i == dropped[1]:
            unmatched.append(Unmatched(ask.order_hash, Side.ASK, Reason.TRADE_REDUCTION))
        else:
            unmatched.append(Unmatched(ask.order_hash, Side.ASK, Reason.NO_COUNTERPARTY))

    return ProductClearing(
        product=product,
        seed=seed,
        rule=rule,
        clearing_price=price,
        interval=interval,
        lease_price=lease_price,
        matches=tuple(matches),
        unmatched=tuple(unmatched),
        totals=Totals(
            leases=len(matches),
            gpu_seconds=GpuSeconds(gpu_seconds),
            buyer_payments=Amount(payments),
            provider_earnings=Amount(payments),
            buyer_value=Amount(value),
            provider_cost=Amount(floor_cost),
        ),
        commitment=commitment,
    )


def clear_batch(
    books: Mapping[bytes, ProductBook],
    batch_seed: bytes,
    rule: PricingRule | str = PricingRule.UNIFORM,
) -> BatchClearing:
    """Clears every product's book; product `p` under the seed `keccak256(batch_seed || p)`.

    An order hash may appear once in the whole batch, not merely once per product.
    """
    batch_seed = Seed(check_bytes32(batch_seed, "batch_seed"))
    rule = PricingRule.parse(rule)
    products: list[ProductClearing] = []
    seen: set[bytes] = set()
    count = 0
    for product in sorted(check_bytes32(product, "product") for product in books):
        book = books[product]
        if not isinstance(book, ProductBook):
            raise InvalidClearingInputError(
                f"the book of product 0x{product.hex()} must be a ProductBook, got {type(book).__name__}"
            )
        products.append(clear_product(product, book.bids, book.asks, product_seed(batch_seed, product), rule))
        seen.update(bid.order_hash for bid in book.bids)
        seen.update(ask.order_hash for ask in book.asks)
        count += len(book.bids) + len(book.asks)
        if len(seen) != count:
            raise DuplicateOrderError(
                f"an order hash of product 0x{product.hex()} also appears under another product: "
                "an order may be in a batch once"
            )
    totals = Totals()
    for clearing in products:
        totals += clearing.totals
    return BatchClearing(
        batch_seed=batch_seed,
        rule=rule,
        products=tuple(products),
        totals=totals,
        commitment=batch_commitment(batch_seed, rule, [(p.product, p.commitment) for p in products]),
    )
