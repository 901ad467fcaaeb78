"""The clearing package's exceptions: one root, `ClearingError`, and a subclass per kind of bad input.

Clearing is a pure function of its inputs, so every error here means "these inputs are malformed"; each
message names the offending order or value and says what to fix. The subclasses also derive from
`ValueError`, like the protocol's errors, so callers that only know the standard library can catch them.
"""

from __future__ import annotations

__all__ = [
    "ClearingError",
    "DuplicateOrderError",
    "InvalidBookOrderError",
    "InvalidClearingInputError",
    "UnknownPricingRuleError",
]


class ClearingError(Exception):
    """Root of every error raised by `matcher.clearing`."""


class InvalidBookOrderError(ClearingError, ValueError):
    """A book bid or ask has a field of the wrong type or outside its range (gpus, duration, price, hash)."""


class DuplicateOrderError(ClearingError, ValueError):
    """Two orders handed to one clearing share an order hash."""


class InvalidClearingInputError(ClearingError, ValueError):
    """A seed, product id or order list is malformed (wrong length, wrong element type, wrong side)."""


class UnknownPricingRuleError(ClearingError, ValueError):
    """The pricing rule named is not one of `uniform`, `pay-as-bid`, `mcafee`."""
