"""Amounts and durations as people type them, converted exactly: token units as decimals ("12.5") to base
units (integers) with `Decimal`, never floats; durations as "90s", "30m", "2h" or "1h30m" to seconds; unix
times shown in UTC."""

from __future__ import annotations

import re
import time
from decimal import Decimal, Inexact, InvalidOperation, localcontext

__all__ = ["format_duration", "format_time", "format_units", "parse_duration", "parse_units"]

_AMOUNT = re.compile(r"\d+(\.\d*)?|\.\d+")
_DURATION_PART = re.compile(r"(\d+)([dhms])")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_units(text: str, decimals: int) -> int:
    """Base units of `text` token units (`"12.5"` with 6 decimals is 12_500_000). Refuses negatives,
    exponents, and more fractional digits than the token has (they would be silently lost)."""
    value = text.strip().replace("_", "")
    if not _AMOUNT.fullmatch(value):
        raise ValueError(f"{text!r} is not an amount: write token units as a plain decimal, e.g. 12.5")
    fraction = value.partition(".")[2].rstrip("0")
    if len(fraction) > decimals:
        raise ValueError(
            f"{text!r} has {len(fraction)} decimals but the token has {decimals}: the smallest amount is "
            f"{format_units(1, decimals)}"
        )
    with localcontext() as context:  # enough digits for any amount: the default 28 would round big ones
        context.prec = len(value) + decimals + 2
        context.traps[Inexact] = True
        try:
            return int(Decimal(value).scaleb(decimals))
        except (InvalidOperation, Inexact):
            raise ValueError(f"{text!r} is not an amount") from None


def format_units(amount: int, decimals: int) -> str:
    """`amount` base units as token units, exactly, without trailing zeros (12_500_000, 6 -> "12.5")."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    if decimals == 0 or fraction == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}"


def parse_duration(text: str) -> int:
    """Seconds of a duration: a bare number of seconds ("90"), or parts with units d/h/m/s, largest first
    ("90s", "30m", "2h", "1h30m")."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = _DURATION_PART.findall(value)
        units = [unit for _, unit in parts]
        if (
            not parts
            or "".join(f"{n}{u}" for n, u in parts) != value
            or len(set(units)) != len(units)
            or units != sorted(units, key=lambda u: -_SECONDS[u])
        ):
            raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 30m, 2h or 1h30m")
        seconds = sum(int(n) * _SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def format_duration(seconds: int) -> str:
    """`seconds` as the largest units that divide it ("1h30m", "90s" stays "1m30s", 0 -> "0s")."""
    if seconds <= 0:
        return "0s"
    parts = []
    rest = seconds
    for unit, size in _SECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_time(timestamp: int) -> str:
    """A unix time as `YYYY-MM-DD HH:MM:SS UTC`."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
