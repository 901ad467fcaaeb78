"""Column types that keep the protocol's values exact on SQLite and PostgreSQL alike.

- `Uint`: an unsigned integer of any size (uint128 prices, uint256 nonces and masks, amounts) as canonical
  decimal text. SQLite's NUMERIC affinity would turn a 30-digit number into a float, and BIGINT stops at
  2**63-1, so text is the one representation that is exact on both. Canonical text (no sign, no leading
  zeros) makes equality on the column equality of the numbers; nothing is ordered or summed in SQL by it.
- `Hex`: bytes (bytes32 hashes, roots, raw transactions) as lowercase `0x` hex text, everywhere.
- `clamp64`: the index form of a uint64 time (`expiry`): exact below 2**63, saturated above, so `<=`
  comparisons against any real clock stay right while the exact value lives in a `Uint` column.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import String, Text, TypeDecorator

from matcher.store.errors import InvalidStoredValueError

__all__ = ["INT63_MAX", "Hex", "Uint", "clamp64", "uint_text"]

INT63_MAX = (1 << 63) - 1


def uint_text(value: object, what: str = "value") -> str:
    """`value` (a non-negative int, not a bool) as canonical decimal text."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidStoredValueError(
            f"{what} must be a non-negative integer (base units, never floats), got {value!r}"
        )
    return str(value)


def clamp64(value: int) -> int:
    """`value` saturated to the largest signed 64-bit integer: a BIGINT that orders like the original for
    every comparison with a value below 2**63."""
    return min(value, INT63_MAX)


class Uint(TypeDecorator[int]):
    """A non-negative integer of any size, stored as decimal text."""

    impl = String(80)  # 2**256 has 78 digits
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else uint_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class Hex(TypeDecorator[bytes]):
    """Bytes as lowercase 0x-prefixed hex text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray):
            raise InvalidStoredValueError(f"expected bytes, got {value!r}")
        return "0x" + bytes(value).hex()

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes.fromhex(value[2:])
