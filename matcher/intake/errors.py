"""The intake package's exceptions: one root, `IntakeError`, and the rejection of an order.

`OrderRejected` is the validator's answer to a bad order: a stable machine-readable `code` (a `RejectCode`,
which the API returns as its error code) and a `message` that names what is wrong and says what to do. The
other subclasses mean the caller (the service), not the order, is at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "IntakeError",
    "InvalidIntakePolicyError",
    "InvalidMarketViewError",
    "OrderRejected",
    "RejectCode",
]


class RejectCode(StrEnum):
    """Why an order was refused. The values are the API's error codes: never rename one."""

    MALFORMED = "malformed"
    WRONG_DOMAIN = "wrong_domain"
    ZERO_QUANTITY = "zero_quantity"
    UNKNOWN_PRODUCT = "unknown_product"
    EXPIRED = "expired"
    EXPIRES_TOO_SOON = "expires_too_soon"
    PRICE_OUT_OF_RANGE = "price_out_of_range"
    BAD_SIGNATURE = "bad_signature"
    NONCE_USED = "nonce_used"
    PROVIDER_INACTIVE = "provider_inactive"
    WITHDRAWAL_PENDING = "withdrawal_pending"
    INSUFFICIENT_BALANCE = "insufficient_balance"


class IntakeError(Exception):
    """Root of every error raised by `matcher.intake`."""


class OrderRejected(IntakeError):
    """The submitted order is refused; nothing was recorded or reserved.

    `code` is stable and machine-readable, `message` is for the user (it says what to do), `details` carries
    the figures behind the message (e.g. the shortfall of an `insufficient_balance`) as ints and strings.
    """

    def __init__(self, code: RejectCode, message: str, details: Mapping[str, int | str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Mapping[str, int | str] = MappingProxyType(dict(details or {}))

    def as_dict(self) -> dict[str, object]:
        """`{"code", "message", "details"}`: the body of the API's error answer."""
        return {"code": self.code.value, "message": self.message, "details": dict(self.details)}

    def __repr__(self) -> str:
        return f"OrderRejected({self.code.value!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderRejected):
            return NotImplemented
        return (self.code, self.message, self.details) == (other.code, other.message, other.details)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class InvalidIntakePolicyError(IntakeError, ValueError):
    """An `IntakePolicy` parameter is out of range (the service's settings, not an order, are wrong)."""


class InvalidMarketViewError(IntakeError, ValueError):
    """The `MarketView` the service passed is unusable (e.g. the escrow address is not an address)."""
