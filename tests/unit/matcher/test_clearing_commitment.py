"""The input commitment follows the byte layout docs/clearing.md documents, re-encoded here row by row."""

from __future__ import annotations

from gpuspot.protocol import keccak256, product_id
from matcher.clearing import BookAsk, BookBid, ProductBook, clear_batch, clear_product, product_seed

PRODUCT = product_id("H100-80GB")


def reference_product_commitment(product, seed, rule, bids, asks):
    bids = sorted(bids, key=lambda b: b.order_hash)
    asks = sorted(asks, key=lambda a: a.order_hash)
    out = b"gpuspot/clearing/v1/product" + product + seed + keccak256(rule.encode())
    out += len(bids).to_bytes(4, "big")
    out += b"".join(b.order_hash for b in bids)
    out += b"".join(b.gpus.to_bytes(2, "big") for b in bids)
    out += b"".join(b.duration.to_bytes(4, "big") for b in bids)
    out += b"".join(b.max_price.to_bytes(16, "big") for b in bids)
    out += keccak256("\n".join(b.buyer for b in bids).encode())
    out += len(asks).to_bytes(4, "big")
    out += b"".join(a.order_hash for a in asks)
    out += b"".join(a.host_id for a in asks)
    out += b"".join(a.gpus.to_bytes(2, "big") for a in asks)
    out += b"".join(a.max_duration.to_bytes(4, "big") for a in asks)
    out += b"".join(a.min_price.to_bytes(16, "big") for a in asks)
    out += keccak256("\n".join(a.provider for a in asks).encode())
    return keccak256(out)


BIDS = (
    BookBid(keccak256(b"b1"), "0xAbC0000000000000000000000000000000000001", 2, 3600, 2_500_000),
    BookBid(keccak256(b"b2"), "0xAbC0000000000000000000000000000000000002", 65535, 2**32 - 1, 2**128 - 1),
)
ASKS = (
    BookAsk(keccak256(b"a1"), "0xdef0000000000000000000000000000000000003", keccak256(b"h1"), 8, 7200, 0),
    BookAsk(keccak256(b"a2"), "prövider", keccak256(b"h2"), 1, 1, 2**64),
)


def test_product_commitment_matches_the_documented_layout():
    seed = keccak256(b"seed")
    for rule in ("uniform", "pay-as-bid", "mcafee"):
        result = clear_product(PRODUCT, BIDS, ASKS, seed, rule)
        assert result.commitment == reference_product_commitment(PRODUCT, seed, rule, BIDS, ASKS)
    empty = clear_product(PRODUCT, (), (), seed)
    assert empty.commitment == reference_product_commitment(PRODUCT, seed, "uniform", (), ())


def test_batch_commitment_matches_the_documented_layout():
    batch_seed = keccak256(b"batch")
    other = product_id("A100-80GB")
    books = {PRODUCT: ProductBook(BIDS, ASKS), other: ProductBook((), ())}
    result = clear_batch(books, batch_seed, "mcafee")
    expected = b"gpuspot/clearing/v1/batch" + batch_seed + keccak256(b"mcafee") + (2).to_bytes(4, "big")
    for product in sorted(books):
        book = books[product]
        seed = product_seed(batch_seed, product)
        expected += product + reference_product_commitment(product, seed, "mcafee", book.bids, book.asks)
    assert result.commitment == keccak256(expected)
