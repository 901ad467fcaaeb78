"""What clearing returns: leases (matches), an explanation for every order that did not trade, totals, and
the commitment to the inputs. Plain frozen data, ready to be turned into leaves, API responses or pages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpuspot.protocol import cost as protocol_cost
from matcher.clearing.book import (
    Amount,
    GpuSeconds,
    HostId,
    OrderHash,
    PricePerGpuHour,
    ProductId,
    Seconds,
    Seed,
)
from matcher.clearing.curves import PriceInterval
from matcher.clearing.rules import PricingRule

__all__ = [
    "BatchClearing",
    "Match",
    "ProductClearing",
    "Reason",
    "Side",
    "Totals",
    "Unmatched",
    "cost",
]


def cost(gpu_seconds: int, price: int) -> Amount:
    """The protocol's cost of GPU-seconds at a price per GPU-hour (`gpuspot.protocol.cost`), as an Amount."""
    return Amount(protocol_cost(gpu_seconds, price))


class Side(StrEnum):
    BID = "bid"
    ASK = "ask"


class Reason(StrEnum):
    """Why an order did not trade in this batch. It stays open for the next batch until it expires."""

    BELOW_CLEARING_PRICE = "below_clearing_price"
    """A bid whose cap is under the clearing price; `gap` is the shortfall."""
    ABOVE_CLEARING_PRICE = "above_clearing_price"
    """An ask whose floor is over the clearing price; `gap` is the excess."""
    NO_HOST_FITS = "no_host_fits"
    """A bid at or above the price that no eligible ask could take whole: none had enough free GPUs (after
    higher-priority bids) with a long enough `max_duration`."""
    TRADE_REDUCTION = "trade_reduction"
    """Dropped by the `mcafee` rule as the marginal trade (the bid, and its ask if it hosted nothing else)."""
    NO_COUNTERPARTY = "no_counterparty"
    """Nothing on the other side could trade with it: no orders there, no crossing price (then `gap` is the
    distance to the best opposite price), or, for an ask at or below the price, no remaining bid fit it."""


@dataclass(frozen=True, slots=True)
class Match:
    """One lease: bid `bid_hash` runs whole on ask `ask_hash`'s host at `price_per_gpu_hour`, which the buyer
    pays and the provider earns (one price per lease, at most the bid's cap, at least the ask's floor)."""

    bid_hash: OrderHash
    ask_hash: OrderHash
    buyer: str
    provider: str
    host_id: HostId
    gpus: int
    duration: Seconds
    price_per_gpu_hour: PricePerGpuHour

    @property
    def gpu_seconds(self) -> GpuSeconds:
        return GpuSeconds(self.gpus * self.duration)

    @property
    def payment(self) -> Amount:
        """What the buyer pays and the provider earns for the whole lease."""
        return cost(self.gpus * self.duration, self.price_per_gpu_hour)


_EXPLANATIONS = {
    Reason.BELOW_CLEARING_PRICE: "the bid's cap is {gap} base units per GPU-hour below the clearing price",
    Reason.ABOVE_CLEARING_PRICE: "the ask's floor is {gap} base units per GPU-hour above the clearing price",
    Reason.NO_HOST_FITS: (
        "no ask at or below the clearing price had enough free GPUs on one host for long enough after "
        "higher-priority bids were placed"
    ),
    Reason.TRADE_REDUCTION: "dropped as the marginal trade by the mcafee rule",
    Reason.NO_COUNTERPARTY: "no order on the other side could trade with it",
}


@dataclass(frozen=True, slots=True)
class Unmatched:
    """An order that did not trade, and why."""

    order_hash: OrderHash
    side: Side
    reason: Reason
    gap: PricePerGpuHour | None = None
    """Base units per GPU-hour between the order's price and a trade: the shortfall of a bid below the
    clearing price, the excess of an ask above it, or (no trade at all) the distance to the best opposite
    price. None where price is not what kept the order out."""

    def explain(self) -> str:
        """One sentence a user can act on."""
        text = _EXPLANATIONS[self.reason].format(gap=self.gap)
        if self.reason is Reason.NO_COUNTERPARTY and self.gap is not None:
            best = "ask" if self.side is Side.BID else "bid"
            text += f"; the best {best} is {self.gap} base units per GPU-hour away"
        return text


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over leases. `buyer_value` prices each lease at its bid's cap and `provider_cost` at its ask's
    floor (both with `cost`), so welfare splits exactly into buyer and provider surplus."""

    leases: int = 0
    gpu_seconds: GpuSeconds = GpuSeconds(0)
    buyer_payments: Amount = Amount(0)
    provider_earnings: Amount = Amount(0)
    buyer_value: Amount = Amount(0)
    provider_cost: Amount = Amount(0)

    @property
    def welfare(self) -> Amount:
        return Amount(self.buyer_value - self.provider_cost)

    @property
    def buyer_surplus(self) -> Amount:
        return Amount(self.buyer_value - self.buyer_payments)

    @property
    def provider_surplus(self) -> Amount:
        return Amount(self.provider_earnings - self.provider_cost)

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            leases=self.leases + other.leases,
            gpu_seconds=GpuSeconds(self.gpu_seconds + other.gpu_seconds),
            buyer_payments=Amount(self.buyer_payments + other.buyer_payments),
            provider_earnings=Amount(self.provider_earnings + other.provider_earnings),
            buyer_value=Amount(self.buyer_value + other.buyer_value),
            provider_cost=Amount(self.provider_cost + other.provider_cost),
        )


@dataclass(frozen=True, slots=True)
class ProductClearing:
    """The clearing of one product's book."""

    product: ProductId
    seed: Seed
    rule: PricingRule
    clearing_price: PricePerGpuHour | None
    """The uniform price (midpoint of `interval`) at which the allocation was made; None when nothing can
    trade. Under `uniform` every lease is at this price."""
    interval: PriceInterval | None
    """The prices that maximise the curves' volume, and that volume (GPU-seconds)."""
    lease_price: PricePerGpuHour | None
    """The one price of every lease under `uniform` and `mcafee`; None under `pay-as-bid` or with no lease."""
    matches: tuple[Match, ...]
    """Leases in the bids' priority order."""
    unmatched: tuple[Unmatched, ...]
    """Every order that did not trade: bids, then asks, each by order hash."""
    totals: Totals
    commitment: bytes
    """`keccak256` of the canonical inputs (docs/clearing.md): anyone can recompute the clearing."""


@dataclass(frozen=True, slots=True)
class BatchClearing:
    """The clearing of every product in one batch, products by id."""

    batch_seed: Seed
    rule: PricingRule
    products: tuple[ProductClearing, ...]
    totals: Totals
    commitment: bytes

    @property
    def matches(self) -> tuple[Match, ...]:
        return tuple(match for product in self.products for match in product.matches)
