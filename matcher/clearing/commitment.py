"""Commitments to a clearing's inputs, so that anyone holding the orders can recompute it.

Byte layout (docs/clearing.md is the reference; all integers big-endian, unsigned):

    product = keccak256(
        "gpuspot/clearing/v1/product" || product (32) || seed (32) || keccak256(utf8(rule)) ||
        u32 bid count || order_hash (32) each || gpus (u16) each || duration (u32) each ||
          max_price (u128) each || keccak256(lines(buyers)) ||
        u32 ask count || order_hash (32) each || host_id (32) each || gpus (u16) each ||
          max_duration (u32) each || min_price (u128) each || keccak256(lines(providers)))

with every column in ascending order-hash order, and `lines` the account strings (UTF-8) joined by newlines
(unambiguous: book orders refuse accounts with non-printable characters). Columns rather than rows let numpy
encode them in bulk.

    batch = keccak256("gpuspot/clearing/v1/batch" || batch_seed || keccak256(utf8(rule)) ||
                      u32 product count || (product || product commitment) each, by product id)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpuspot.protocol.hashing import keccak256
from matcher.clearing.book import BookAsk, BookBid
from matcher.clearing.rules import PricingRule

__all__ = ["batch_commitment", "product_commitment"]

PRODUCT_TAG = b"gpuspot/clearing/v1/product"
BATCH_TAG = b"gpuspot/clearing/v1/batch"


def _uints(values: Sequence[int], dtype: str) -> bytes:
    return np.asarray(values, dtype=np.uint64).astype(dtype).tobytes()


def _u128s(values: Sequence[int]) -> bytes:
    if not values or max(values) < 1 << 64:
        words = np.zeros((len(values), 2), dtype=">u8")
        words[:, 1] = np.asarray(values, dtype=np.uint64)
        return words.tobytes()
    return b"".join(value.to_bytes(16, "big") for value in values)


def _accounts(accounts: Sequence[str]) -> bytes:
    return keccak256("\n".join(accounts).encode())


def product_commitment(
    product: bytes,
    seed: bytes,
    rule: PricingRule,
    bids: Sequence[BookBid],
    asks: Sequence[BookAsk],
) -> bytes:
    """The commitment to one product's clearing inputs; `bids` and `asks` sorted by order hash."""
    parts = [PRODUCT_TAG, product, seed, keccak256(rule.value.encode())]
    parts += [
        len(bids).to_bytes(4, "big"),
        b"".join([bid.order_hash for bid in bids]),
        _uints([bid.gpus for bid in bids], ">u2"),
        _uints([bid.duration for bid in bids], ">u4"),
        _u128s([bid.max_price for bid in bids]),
        _accounts([bid.buyer for bid in bids]),
    ]
    parts += [
        len(asks).to_bytes(4, "big"),
        b"".join([ask.order_hash for ask in asks]),
        b"".join([ask.host_id for ask in asks]),
        _uints([ask.gpus for ask in asks], ">u2"),
        _uints([ask.max_duration for ask in asks], ">u4"),
        _u128s([ask.min_price for ask in asks]),
        _accounts([ask.provider for ask in asks]),
    ]
    return keccak256(b"".join(parts))


def batch_commitment(batch_seed: bytes, rule: PricingRule, products: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The commitment to a batch: `products` is (product id, product commitment) by product id."""
    parts = [BATCH_TAG, batch_seed, keccak256(rule.value.encode()), len(products).to_bytes(4, "big")]
    for product, commitment in products:
        parts += [product, commitment]
    return keccak256(b"".join(parts))
