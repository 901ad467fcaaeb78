"""The matcher's clearing core: frequent batch auctions as a pure function of (orders, seed, rule).

No I/O: the matcher's API, store and chain watcher feed it book orders and turn its result into a settlement
root. See docs/clearing.md for the rules, the tie-breaking and the commitment.

- `book`: `BookBid`, `BookAsk`, `ProductBook`, and the id and amount types.
- `curves`: the clearing price from the aggregate curves in GPU-seconds.
- `allocation`: best-fit packing of all-or-none bids into divisible asks.
- `clearing`: `clear_product`, `clear_batch`, the pricing rules applied.
- `outcome`: `Match`, `Unmatched` (with a `Reason`), `Totals`, `ProductClearing`, `BatchClearing`.
- `commitment`: the hash of a clearing's inputs.
"""

from matcher.clearing.allocation import Allocation, allocate, tie_key
from matcher.clearing.book import (
    Amount,
    BookAsk,
    BookBid,
    GpuSeconds,
    HostId,
    OrderHash,
    PricePerGpuHour,
    ProductBook,
    ProductId,
    Seconds,
    Seed,
)
from matcher.clearing.clearing import clear_batch, clear_product, product_seed
from matcher.clearing.commitment import batch_commitment, product_commitment
from matcher.clearing.curves import PriceInterval, clearing_interval
from matcher.clearing.errors import (
    ClearingError,
    DuplicateOrderError,
    InvalidBookOrderError,
    InvalidClearingInputError,
    UnknownPricingRuleError,
)
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

__all__ = [
    "Allocation",
    "Amount",
    "BatchClearing",
    "BookAsk",
    "BookBid",
    "ClearingError",
    "DuplicateOrderError",
    "GpuSeconds",
    "HostId",
    "InvalidBookOrderError",
    "InvalidClearingInputError",
    "Match",
    "OrderHash",
    "PriceInterval",
    "PricePerGpuHour",
    "PricingRule",
    "ProductBook",
    "ProductClearing",
    "ProductId",
    "Reason",
    "Seconds",
    "Seed",
    "Side",
    "Totals",
    "UnknownPricingRuleError",
    "Unmatched",
    "allocate",
    "batch_commitment",
    "clear_batch",
    "clear_product",
    "clearing_interval",
    "cost",
    "product_commitment",
    "product_seed",
    "tie_key",
]
