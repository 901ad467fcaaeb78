"""Pagination: validated limits and opaque keyset cursors.

A cursor is the sort key of the last item returned, as text; the next page starts strictly after it, so pages
stay stable while new rows arrive (no offsets that shift).
"""

from __future__ import annotations

from matcher.store.errors import InvalidPageError

__all__ = ["MAX_LIMIT", "check_limit", "int_cursor", "pair_cursor"]

MAX_LIMIT = 500


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidPageError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def int_cursor(cursor: str | None) -> int | None:
    """The integer key a cursor of a list sorted by one integer (batch id, lease id, leaf index) holds."""
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 20:
        raise InvalidPageError(
            f"cursor {cursor!r} is not one this listing returned: pass next_cursor as given"
        )
    return int(cursor)


def pair_cursor(cursor: str | None) -> tuple[int, bytes] | None:
    """The (time, hash) key of a cursor of a list sorted by time then order hash."""
    if cursor is None:
        return None
    at, _, key = cursor.partition(":")
    try:
        if not at.isascii() or not at.isdigit() or len(at) > 20 or not key.startswith("0x") or len(key) != 66:
            raise ValueError(cursor)
        return int(at), bytes.fromhex(key[2:])
    except ValueError:
        raise InvalidPageError(
            f"cursor {cursor!r} is not one this listing returned: pass next_cursor as given"
        ) from None
