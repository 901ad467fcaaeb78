"""The search box: what a query can name, decided from its shape alone (pure); the explorer then asks the
store which of the candidates exist."""

from __future__ import annotations

import re
from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address

__all__ = ["Query", "classify"]

_NUMBER = re.compile(r"^(?:(batch|lease)\s*)?#?\s*(\d{1,18})$", re.IGNORECASE)
_HASH = re.compile(r"^(?:0x)?([0-9a-fA-F]{64})$")


@dataclass(frozen=True, slots=True)
class Query:
    """`address` (checksummed), `hash32` (an order hash, transaction hash, batch root or receipt hash), or
    `number` with `only` "batch", "lease" or None (either)."""

    kind: str
    address: str | None = None
    hash32: bytes | None = None
    number: int | None = None
    only: str | None = None


def classify(text: str) -> Query | None:
    """The query's kind; None for something no page can be (say "nothing found")."""
    q = text.strip()
    if not q:
        return None
    if q.lower().startswith("0x") and len(q) == 42 and is_address(q.lower()):
        return Query("address", address=str(to_checksum_address(q.lower())))
    found = _HASH.match(q)
    if found:
        return Query("hash32", hash32=bytes.fromhex(found.group(1)))
    found = _NUMBER.match(q)
    if found:
        only = found.group(1).lower() if found.group(1) else None
        return Query("number", number=int(found.group(2)), only=only)
    return None
