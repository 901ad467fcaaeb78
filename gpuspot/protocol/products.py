"""Product identifiers: a GPU class from the catalog is identified on-chain by the hash of its name."""

from __future__ import annotations

from typing import NewType

from gpuspot.protocol.errors import InvalidOrderError
from gpuspot.protocol.hashing import keccak256

__all__ = ["ProductId", "product_id"]

ProductId = NewType("ProductId", bytes)
"""A product's on-chain id: 32 bytes, `keccak256` of its catalog name."""


def product_id(name: str) -> ProductId:
    """`keccak256(utf8(name))`: the `bytes32 product` of bids, asks and leaves (`product_id("H100-80GB")`).

    The name is hashed exactly as given: the catalog's spelling is the identity (no case folding or trim).
    """
    if not isinstance(name, str) or not name:
        raise InvalidOrderError(f"product name must be a non-empty string, got {name!r}: use a catalog name")
    return ProductId(keccak256(name.encode("utf-8")))
