"""Worked examples with prices computed by hand, one book per rule's interesting case, and input errors.

Prices are tUSD base units per GPU-hour (M = 1.00 tUSD); volumes are GPU-seconds.
"""

from __future__ import annotations

import pytest

from gpuspot.protocol import keccak256, product_id
from matcher.clearing import (
    BookAsk,
    BookBid,
    ClearingError,
    DuplicateOrderError,
    InvalidBookOrderError,
    InvalidClearingInputError,
    PriceInterval,
    PricingRule,
    ProductBook,
    Reason,
    Side,
    UnknownPricingRuleError,
    clear_batch,
    clear_product,
    product_seed,
    tie_key,
)

M = 1_000_000
PRODUCT = product_id("H100-80GB")
SEED = keccak256(b"seed")


def h(label: str) -> bytes:
    return keccak256(label.encode())


def bid(label: str, gpus: int, duration: int, max_price: int) -> BookBid:
    return BookBid(h(label), f"buyer-{label}", gpus, duration, max_price)


def ask(label: str, gpus: int, max_duration: int, min_price: int) -> BookAsk:
    return BookAsk(h(label), f"provider-{label}", h("host-" + label), gpus, max_duration, min_price)


def leases(clearing) -> dict[bytes, tuple[bytes, int]]:
    return {m.bid_hash: (m.ask_hash, m.price_per_gpu_hour) for m in clearing.matches}


def reasons(clearing) -> dict[bytes, tuple[Reason, int | None]]:
    return {u.order_hash: (u.reason, u.gap) for u in clearing.unmatched}


# Book A. Candidates 1.0, 1.5, 2.5, 2.8, 3.0 M:
#   D = 10800, 7200, 7200, 3600, 3600;  S = 0, 28800, 28800, 36000, 36000;  V = 0, 7200, 7200, 3600, 3600.
# V peaks on [1.5 M, 2.5 M]: clearing price 2.0 M. b1 (1 GPU) then b2 (2 GPUs) both fit on a1 (4 GPUs).
BOOK_A_BIDS = (bid("b1", 1, 3600, 3 * M), bid("b2", 2, 1800, 5 * M // 2), bid("b3", 1, 3600, 1 * M))
BOOK_A_ASKS = (ask("a1", 4, 7200, 3 * M // 2), ask("a2", 2, 3600, 28 * M // 10))


def test_uniform_book_a_prices_every_lease_at_the_interval_midpoint():
    result = clear_product(PRODUCT, BOOK_A_BIDS, BOOK_A_ASKS, SEED, "uniform")
    assert result.interval == PriceInterval(low=3 * M // 2, high=5 * M // 2, volume=7200)
    assert result.clearing_price == result.lease_price == 2 * M
    assert leases(result) == {h("b1"): (h("a1"), 2 * M), h("b2"): (h("a1"), 2 * M)}
    assert [m.bid_hash for m in result.matches] == [h("b1"), h("b2")]  # priority order: cap descending
    assert reasons(result) == {
        h("b3"): (Reason.BELOW_CLEARING_PRICE, 1 * M),
        h("a2"): (Reason.ABOVE_CLEARING_PRICE, 8 * M // 10),
    }
    totals = result.totals
    assert (totals.leases, totals.gpu_seconds) == (2, 7200)
    assert totals.buyer_payments == totals.provider_earnings == 4 * M
    assert (totals.buyer_value, totals.provider_cost) == (11 * M // 2, 3 * M)
    assert (totals.welfare, totals.buyer_surplus, totals.provider_surplus) == (5 * M // 2, 3 * M // 2, 1 * M)


def test_pay_as_bid_book_a_prices_each_lease_at_its_cap():
    result = clear_product(PRODUCT, BOOK_A_BIDS, BOOK_A_ASKS, SEED, "pay-as-bid")
    assert result.clearing_price == 2 * M
    assert result.lease_price is None
    assert leases(result) == {h("b1"): (h("a1"), 3 * M), h("b2"): (h("a1"), 5 * M // 2)}
    assert result.totals.buyer_payments == result.totals.provider_earnings == 11 * M // 2
    assert result.totals.buyer_surplus == 0


def test_mcafee_book_a_prices_every_lease_between_the_first_excluded_orders():
    # b_next = b3's 1.0 M, s_next = a2's 2.8 M: p0 = 1.9 M lies within a1's floor and both caps.
    result = clear_product(PRODUCT, BOOK_A_BIDS, BOOK_A_ASKS, SEED, PricingRule.MCAFEE)
    assert result.clearing_price == 2 * M
    assert result.lease_price == 19 * M // 10
    assert leases(result) == {h("b1"): (h("a1"), 19 * M // 10), h("b2"): (h("a1"), 19 * M // 10)}
    assert result.totals.buyer_payments == 38 * M // 10


def test_mcafee_drops_the_marginal_bid_when_p0_exceeds_a_cap():
    # a2's floor at 5.0 M: p0 = (1.0 + 5.0) // 2 = 3.0 M > b2's cap 2.5 M, so b2 (the lowest cap) is dropped
    # and b1 pays b2's cap. The curves still peak on [1.5 M, 2.5 M]: clearing price 2.0 M.
    asks = (BOOK_A_ASKS[0], ask("a2", 2, 3600, 5 * M))
    result = clear_product(PRODUCT, BOOK_A_BIDS, asks, SEED, "mcafee")
    assert result.clearing_price == 2 * M
    assert result.lease_price == 5 * M // 2
    assert leases(result) == {h("b1"): (h("a1"), 5 * M // 2)}
    assert reasons(result) == {
        h("b2"): (Reason.TRADE_REDUCTION, None),
        h("b3"): (Reason.BELOW_CLEARING_PRICE, 1 * M),
        h("a2"): (Reason.ABOVE_CLEARING_PRICE, 3 * M),
    }
    assert result.totals.buyer_payments == result.totals.provider_earnings == 5 * M // 2


# Book B. Candidates 1.0, 1.5, 2.0, 3.0 M: D = 7200, 7200, 7200, 3600; S = 3600, 7200, 7200, 7200;
# V peaks on [1.5 M, 2.0 M]: clearing price 1.75 M. Both bids trade; b1 takes a1 (equal fit, lower floor).
BOOK_B_BIDS = (bid("b1", 1, 3600, 3 * M), bid("b2", 1, 3600, 2 * M))
BOOK_B_ASKS = (ask("a1", 1, 3600, 1 * M), ask("a2", 1, 3600, 3 * M // 2))


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("uniform", {h("b1"): (h("a1"), 7 * M // 4), h("b2"): (h("a2"), 7 * M // 4)}),
        ("pay-as-bid", {h("b1"): (h("a1"), 3 * M), h("b2"): (h("a2"), 2 * M)}),
        # Every order trades: no b_next, no s_next. b2 is dropped and b1 trades at b2's cap.
        ("mcafee", {h("b1"): (h("a1"), 2 * M)}),
    ],
)
def test_book_b_each_rule_gives_its_hand_computed_leases(rule, expected):
    result = clear_product(PRODUCT, BOOK_B_BIDS, BOOK_B_ASKS, SEED, rule)
    assert result.clearing_price == 7 * M // 4
    assert leases(result) == expected


def test_mcafee_marks_the_ask_left_empty_by_the_dropped_bid_as_trade_reduction():
    result = clear_product(PRODUCT, BOOK_B_BIDS, BOOK_B_ASKS, SEED, "mcafee")
    assert reasons(result) == {
        h("b2"): (Reason.TRADE_REDUCTION, None),
        h("a2"): (Reason.TRADE_REDUCTION, None),
    }


def test_mcafee_with_a_single_trade_that_does_not_fit_p0_trades_nothing():
    result = clear_product(PRODUCT, BOOK_B_BIDS[:1], BOOK_B_ASKS[:1], SEED, "mcafee")
    assert result.clearing_price == 2 * M  # V = 3600 on [1.0 M, 3.0 M]
    assert result.matches == ()
    assert result.lease_price is None
    assert {u.reason for u in result.unmatched} == {Reason.TRADE_REDUCTION}


def test_tie_between_identical_bids_is_decided_by_the_seed_not_the_list_position():
    # Two identical bids, one GPU for sale: V = 3600 on [1.0 M, 2.0 M], price 1.5 M, one of them trades.
    x, y = bid("x", 1, 3600, 2 * M), bid("y", 1, 3600, 2 * M)
    asks = (ask("a", 1, 3600, 1 * M),)
    winners = set()
    for n in range(16):
        seed = keccak256(n.to_bytes(32, "big"))
        first = clear_product(PRODUCT, (x, y), asks, seed)
        second = clear_product(PRODUCT, (y, x), asks, seed)
        assert first == second
        assert first.clearing_price == 3 * M // 2
        (match,) = first.matches
        expected = min((x, y), key=lambda b: tie_key(seed, b.order_hash))
        assert match.bid_hash == expected.order_hash
        loser = y if expected is x else x
        assert reasons(first) == {loser.order_hash: (Reason.NO_HOST_FITS, None)}
        winners.add(match.bid_hash)
    assert winners == {h("x"), h("y")}  # each wins under some seed


def test_best_fit_prefers_the_ask_left_with_fewest_free_gpus_over_a_cheaper_one():
    bids = (bid("b", 2, 3600, 2 * M),)
    asks = (ask("big", 8, 3600, 1 * M), ask("exact", 2, 3600, 14 * M // 10))
    result = clear_product(PRODUCT, bids, asks, SEED)
    assert result.clearing_price == 3 * M // 2  # V = 7200 on [1.0 M, 2.0 M]
    assert leases(result) == {h("b"): (h("exact"), 3 * M // 2)}
    assert reasons(result) == {h("big"): (Reason.NO_COUNTERPARTY, None)}


def test_best_fit_breaks_equal_fit_and_floor_by_the_seeded_ask_hash():
    bids = (bid("b", 1, 3600, 2 * M),)
    asks = (ask("p", 1, 3600, 1 * M), ask("q", 1, 3600, 1 * M))
    chosen = set()
    for n in range(16):
        seed = keccak256(b"ask" + bytes([n]))
        result = clear_product(PRODUCT, bids, asks, seed)
        expected = min(asks, key=lambda a: tie_key(seed, a.order_hash))
        assert result.matches[0].ask_hash == expected.order_hash
        chosen.add(expected.order_hash)
    assert chosen == {h("p"), h("q")}


def test_bid_longer_than_every_ask_is_unmatched_with_no_host_fits():
    bids = (bid("long", 1, 7200, 2 * M), bid("short", 1, 1800, 2 * M))
    asks = (ask("a", 4, 3600, 1 * M),)
    result = clear_product(PRODUCT, bids, asks, SEED)
    assert leases(result) == {h("short"): (h("a"), result.clearing_price)}
    assert reasons(result) == {h("long"): (Reason.NO_HOST_FITS, None)}


def test_bid_needing_more_gpus_than_any_host_is_unmatched_with_no_host_fits():
    bids = (bid("wide", 8, 3600, 2 * M),)
    asks = (ask("a", 4, 3600, 1 * M), ask("b", 4, 3600, 1 * M))
    result = clear_product(PRODUCT, bids, asks, SEED)
    assert result.matches == ()
    assert reasons(result) == {
        h("wide"): (Reason.NO_HOST_FITS, None),
        h("a"): (Reason.NO_COUNTERPARTY, None),
        h("b"): (Reason.NO_COUNTERPARTY, None),
    }


def test_books_that_do_not_cross_trade_nothing_and_say_how_far_apart_they_are():
    bids = (bid("b1", 1, 3600, 1 * M), bid("b2", 1, 3600, 3 * M // 2))
    asks = (ask("a1", 1, 3600, 2 * M),)
    result = clear_product(PRODUCT, bids, asks, SEED)
    assert result.clearing_price is None and result.interval is None and result.matches == ()
    assert reasons(result) == {
        h("b1"): (Reason.NO_COUNTERPARTY, 1 * M),
        h("b2"): (Reason.NO_COUNTERPARTY, M // 2),
        h("a1"): (Reason.NO_COUNTERPARTY, M // 2),
    }
    assert "best ask is 500000" in next(u for u in result.unmatched if u.side is Side.BID).explain()


def test_one_sided_book_leaves_every_order_without_counterparty():
    result = clear_product(PRODUCT, BOOK_A_BIDS, (), SEED)
    assert reasons(result) == {b.order_hash: (Reason.NO_COUNTERPARTY, None) for b in BOOK_A_BIDS}
    assert clear_product(PRODUCT, (), (), SEED).unmatched == ()


def test_unmatched_explanations_name_the_gap():
    result = clear_product(PRODUCT, BOOK_A_BIDS, BOOK_A_ASKS, SEED)
    texts = {u.order_hash: u.explain() for u in result.unmatched}
    assert "1000000 base units per GPU-hour below" in texts[h("b3")]
    assert "800000 base units per GPU-hour above" in texts[h("a2")]


def test_clear_batch_clears_each_product_under_its_own_derived_seed():
    other = product_id("A100-80GB")
    books = {
        PRODUCT: ProductBook(BOOK_A_BIDS, BOOK_A_ASKS),
        other: ProductBook((bid("c1", 1, 3600, 2 * M),), (ask("d1", 1, 3600, 1 * M),)),
    }
    batch_seed = keccak256(b"batch 7")
    result = clear_batch(books, batch_seed, "uniform")
    assert [p.product for p in result.products] == sorted(books)
    for clearing in result.products:
        assert (
            clearing.seed
            == keccak256(batch_seed + clearing.product)
            == product_seed(batch_seed, clearing.product)
        )
        book = books[clearing.product]
        assert clearing == clear_product(clearing.product, book.bids, book.asks, clearing.seed, "uniform")
    assert result.totals.leases == 3
    assert result.totals.buyer_payments == 4 * M + 3 * M // 2
    assert len(result.matches) == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bid("x", 0, 3600, M), "gpus = 0"),
        (lambda: bid("x", -1, 3600, M), "gpus = -1"),
        (lambda: bid("x", 1, 0, M), "duration = 0"),
        (lambda: bid("x", 1, 3600, -1), "max_price = -1"),
        (lambda: bid("x", 1, 3600, 2.5), "never floats"),
        (lambda: bid("x", True, 3600, M), "must be an integer"),
        (lambda: BookBid(b"short", "buyer", 1, 3600, M), "32 bytes"),
        (lambda: BookBid(h("x"), "", 1, 3600, M), "non-empty printable"),
        (lambda: BookBid(h("x"), "a\nb", 1, 3600, M), "non-empty printable"),
        (lambda: ask("x", 0, 3600, M), "gpus = 0"),
        (lambda: ask("x", 1, -5, M), "max_duration = -5"),
        (lambda: ask("x", 1, 3600, -1), "min_price = -1"),
        (lambda: ask("x", 1, 3600, 2**128), "out of range"),
        (lambda: BookAsk(h("x"), "p", b"", 1, 3600, M), "host_id must be 32 bytes"),
    ],
)
def test_malformed_book_order_raises_invalid_book_order_error(make, message):
    with pytest.raises(InvalidBookOrderError, match=message) as caught:
        make()
    assert isinstance(caught.value, ClearingError)


def test_duplicate_order_hash_raises_duplicate_order_error():
    with pytest.raises(DuplicateOrderError, match="appears twice"):
        clear_product(PRODUCT, (BOOK_A_BIDS[0], BOOK_A_BIDS[0]), BOOK_A_ASKS, SEED)
    clash = BookAsk(BOOK_A_BIDS[0].order_hash, "p", h("host"), 1, 3600, M)
    with pytest.raises(DuplicateOrderError, match="both a bid and an ask"):
        clear_product(PRODUCT, BOOK_A_BIDS, (clash,), SEED)


def test_order_in_two_products_of_one_batch_raises_duplicate_order_error():
    books = {PRODUCT: ProductBook(BOOK_A_BIDS, ()), product_id("L40S-48GB"): ProductBook(BOOK_A_BIDS[:1], ())}
    with pytest.raises(DuplicateOrderError, match="another product"):
        clear_batch(books, SEED)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: clear_product(PRODUCT, BOOK_A_BIDS, BOOK_A_ASKS, b"x"), InvalidClearingInputError, "seed"),
        (lambda: clear_product(b"x", BOOK_A_BIDS, BOOK_A_ASKS, SEED), InvalidClearingInputError, "product"),
        (lambda: clear_product(PRODUCT, BOOK_A_ASKS, (), SEED), InvalidClearingInputError, "BookBid"),
        (lambda: clear_product(PRODUCT, (), BOOK_A_BIDS, SEED), InvalidClearingInputError, "BookAsk"),
        (lambda: clear_product(PRODUCT, (), (), SEED, "vickrey"), UnknownPricingRuleError, "mcafee"),
        (lambda: clear_batch({PRODUCT: ([], [])}, SEED), InvalidClearingInputError, "ProductBook"),
    ],
)
def test_malformed_clearing_input_raises_a_clearing_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
