"""What clearing reads: open bids and asks of one product, reduced to the fields the auction needs.

The matcher builds these from signed, verified orders (`gpuspot.protocol.Bid` / `Ask`); `order_hash` is the
order's EIP-712 digest. Every value is an integer in the protocol's units: prices in settlement-token base
units per GPU-hour, durations in seconds. Fields are checked against the protocol's Solidity types at
construction, so a book order that exists is a well-formed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from gpuspot.protocol.products import ProductId
from matcher.clearing.errors import InvalidBookOrderError, InvalidClearingInputError

__all__ = [
    "MAX_DURATION",
    "MAX_GPUS",
    "MAX_PRICE",
    "Amount",
    "BookAsk",
    "BookBid",
    "GpuSeconds",
    "HostId",
    "OrderHash",
    "PricePerGpuHour",
    "ProductBook",
    "ProductId",
    "Seed",
    "Seconds",
    "check_bytes32",
]

OrderHash = NewType("OrderHash", bytes)
"""An order's EIP-712 digest (32 bytes): its identity everywhere."""
HostId = NewType("HostId", bytes)
"""A provider's host (32 bytes), as its asks name it."""
Seed = NewType("Seed", bytes)
"""32 bytes of batch randomness that break ties; never the orders' arrival."""
PricePerGpuHour = NewType("PricePerGpuHour", int)
"""Settlement-token base units per GPU-hour (tUSD has 6 decimals: 2_500_000 is 2.50 tUSD)."""
Seconds = NewType("Seconds", int)
GpuSeconds = NewType("GpuSeconds", int)
Amount = NewType("Amount", int)
"""Settlement-token base units."""

# The protocol's Solidity types: gpus uint16, durations uint32, prices uint128.
MAX_GPUS = (1 << 16) - 1
MAX_DURATION = (1 << 32) - 1
MAX_PRICE = (1 << 128) - 1


def check_bytes32(value: object, what: str) -> bytes:
    """`value` as 32 bytes, or `InvalidClearingInputError` naming `what`."""
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise InvalidClearingInputError(f"{what} must be 32 bytes, got {value!r}")
    return bytes(value)


def _check_hash(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidBookOrderError(f"{owner}.{name} must be 32 bytes (an EIP-712 digest), got {value!r}")


def _check_account(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise InvalidBookOrderError(
            f"{owner}.{name} must be a non-empty printable address string, got {value!r}"
        )


def _check_int(owner: str, name: str, value: object, low: int, high: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBookOrderError(
            f"{owner}.{name} must be an integer, got {value!r}: amounts are base units, never floats"
        )
    if not low <= value <= high:
        raise InvalidBookOrderError(f"{owner}.{name} = {value} is out of range: {hint}")


@dataclass(frozen=True, slots=True)
class BookBid:
    """A buyer's open bid, all-or-none: `gpus` GPUs on one host for `duration` seconds, at most `max_price`
    per GPU-hour."""

    order_hash: OrderHash
    buyer: str
    gpus: int
    duration: Seconds
    max_price: PricePerGpuHour

    def __post_init__(self) -> None:
        _check_hash("BookBid", "order_hash", self.order_hash)
        _check_account("BookBid", "buyer", self.buyer)
        _check_int("BookBid", "gpus", self.gpus, 1, MAX_GPUS, f"a bid needs 1 to {MAX_GPUS} GPUs")
        _check_int("BookBid", "duration", self.duration, 1, MAX_DURATION, f"use 1 to {MAX_DURATION} seconds")
        _check_int(
            "BookBid", "max_price", self.max_price, 0, MAX_PRICE, "use 0 to 2**128-1 base units per GPU-hour"
        )


@dataclass(frozen=True, slots=True)
class BookAsk:
    """A provider's open ask, divisible: up to `gpus` GPUs of host `host_id`, each for one lease of at most
    `max_duration` seconds per batch, at no less than `min_price` per GPU-hour."""

    order_hash: OrderHash
    provider: str
    host_id: HostId
    gpus: int
    max_duration: Seconds
    min_price: PricePerGpuHour

    def __post_init__(self) -> None:
        _check_hash("BookAsk", "order_hash", self.order_hash)
        _check_account("BookAsk", "provider", self.provider)
        _check_hash("BookAsk", "host_id", self.host_id)
        _check_int("BookAsk", "gpus", self.gpus, 1, MAX_GPUS, f"an ask offers 1 to {MAX_GPUS} GPUs")
        _check_int(
            "BookAsk", "max_duration", self.max_duration, 1, MAX_DURATION, f"use 1 to {MAX_DURATION} seconds"
        )
        _check_int(
            "BookAsk", "min_price", self.min_price, 0, MAX_PRICE, "use 0 to 2**128-1 base units per GPU-hour"
        )


@dataclass(frozen=True, slots=True)
class ProductBook:
    """The open orders of one product in one batch."""

    bids: tuple[BookBid, ...] = ()
    asks: tuple[BookAsk, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bids", tuple(self.bids))
        object.__setattr__(self, "asks", tuple(self.asks))
