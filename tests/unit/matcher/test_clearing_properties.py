"""Properties of clearing over random books, for every pricing rule."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import keccak256
from matcher.clearing import (
    BookAsk,
    BookBid,
    PricingRule,
    Reason,
    Side,
    clear_product,
    cost,
    product_commitment,
    tie_key,
)

PRODUCT = keccak256(b"H100-80GB")
RULES = st.sampled_from(list(PricingRule))
SEEDS = st.binary(min_size=32, max_size=32)
# Few distinct prices and sizes, so that ties, all-or-none misfits and trade reduction are common.
PRICES = st.integers(1, 12).map(lambda n: n * 250_000)
DURATIONS = st.sampled_from([900, 1800, 3600, 7200, 14400]) | st.integers(1, 30_000)


@st.composite
def books(draw: st.DrawFn) -> tuple[tuple[BookBid, ...], tuple[BookAsk, ...]]:
    hashes = draw(st.lists(st.binary(min_size=32, max_size=32), unique=True, min_size=0, max_size=24))
    split = draw(st.integers(0, len(hashes)))
    bids = tuple(
        BookBid(
            order_hash=order_hash,
            buyer=f"buyer{draw(st.integers(0, 3))}",
            gpus=draw(st.integers(1, 8)),
            duration=draw(DURATIONS),
            max_price=draw(PRICES),
        )
        for order_hash in hashes[:split]
    )
    asks = tuple(
        BookAsk(
            order_hash=order_hash,
            provider=f"provider{draw(st.integers(0, 3))}",
            host_id=keccak256(order_hash),
            gpus=draw(st.integers(1, 8)),
            max_duration=draw(DURATIONS),
            min_price=draw(PRICES),
        )
        for order_hash in hashes[split:]
    )
    return bids, asks


@settings(max_examples=300, deadline=None)
@given(book=books(), seed=SEEDS, rule=RULES)
def test_clearing_respects_caps_floors_capacity_and_all_or_none(book, seed, rule):
    bids, asks = book
    result = clear_product(PRODUCT, bids, asks, seed, rule)
    bid_of = {b.order_hash: b for b in bids}
    ask_of = {a.order_hash: a for a in asks}
    allocated: Counter[bytes] = Counter()
    for match in result.matches:
        b, a = bid_of[match.bid_hash], ask_of[match.ask_hash]
        assert match.price_per_gpu_hour <= b.max_price, "a bid pays above its cap"
        assert match.price_per_gpu_hour >= a.min_price, "an ask earns below its floor"
        assert (match.gpus, match.duration, match.buyer) == (b.gpus, b.duration, b.buyer), "bid split"
        assert match.duration <= a.max_duration
        assert (match.provider, match.host_id) == (a.provider, a.host_id)
        allocated[match.ask_hash] += match.gpus
    assert len({m.bid_hash for m in result.matches}) == len(result.matches), "a bid matched twice"
    for ask_hash, gpus in allocated.items():
        assert gpus <= ask_of[ask_hash].gpus, "an ask is over-allocated"


@settings(max_examples=300, deadline=None)
@given(book=books(), seed=SEEDS, rule=RULES)
def test_clearing_balances_the_budget_per_lease_and_in_total(book, seed, rule):
    bids, asks = book
    result = clear_product(PRODUCT, bids, asks, seed, rule)
    paid_by_buyer: Counter[str] = Counter()
    earned_by_provider: Counter[str] = Counter()
    for match in result.matches:
        assert match.payment == cost(match.gpus * match.duration, match.price_per_gpu_hour)
        paid_by_buyer[match.buyer] += match.payment
        earned_by_provider[match.provider] += match.payment
    totals = result.totals
    assert sum(paid_by_buyer.values()) == sum(earned_by_provider.values())
    assert totals.buyer_payments == totals.provider_earnings == sum(paid_by_buyer.values())
    assert totals.gpu_seconds == sum(m.gpu_seconds for m in result.matches)
    assert totals.leases == len(result.matches)
    assert totals.buyer_surplus >= 0 and totals.provider_surplus >= 0
    assert totals.welfare == totals.buyer_surplus + totals.provider_surplus


@settings(max_examples=300, deadline=None)
@given(book=books(), seed=SEEDS, rule=RULES)
def test_every_order_is_matched_or_has_exactly_one_consistent_reason(book, seed, rule):
    bids, asks = book
    result = clear_product(PRODUCT, bids, asks, seed, rule)
    price = result.clearing_price
    matched_bids = {m.bid_hash for m in result.matches}
    used_asks = {m.ask_hash for m in result.matches}
    explained = Counter(u.order_hash for u in result.unmatched)
    assert all(n == 1 for n in explained.values())
    assert set(explained) | matched_bids | used_asks == {o.order_hash for o in bids + asks}
    assert not set(explained) & (matched_bids | used_asks)
    bid_of = {b.order_hash: b for b in bids}
    ask_of = {a.order_hash: a for a in asks}
    for u in result.unmatched:
        assert u.explain()
        if u.reason is Reason.BELOW_CLEARING_PRICE:
            assert u.side is Side.BID and u.gap == price - bid_of[u.order_hash].max_price > 0
        elif u.reason is Reason.ABOVE_CLEARING_PRICE:
            assert u.side is Side.ASK and u.gap == ask_of[u.order_hash].min_price - price > 0
        elif u.reason is Reason.NO_HOST_FITS:
            assert u.side is Side.BID and bid_of[u.order_hash].max_price >= price
        elif u.reason is Reason.TRADE_REDUCTION:
            assert rule is PricingRule.MCAFEE
        else:
            assert u.reason is Reason.NO_COUNTERPARTY
            if u.side is Side.ASK and price is not None:
                assert ask_of[u.order_hash].min_price <= price
            elif u.side is Side.BID:
                assert price is None
    if rule is PricingRule.MCAFEE:
        assert sum(u.reason is Reason.TRADE_REDUCTION and u.side is Side.BID for u in result.unmatched) <= 1
    # mcafee, like uniform, trades at one price.
    if rule is PricingRule.MCAFEE and result.matches:
        assert len({m.price_per_gpu_hour for m in result.matches}) == 1


@settings(max_examples=200, deadline=None)
@given(book=books(), seed=SEEDS, rule=RULES, shuffle_seed=st.integers(0, 2**32))
def test_clearing_is_deterministic_and_ignores_input_order(book, seed, rule, shuffle_seed):
    bids, asks = book
    first = clear_product(PRODUCT, bids, asks, seed, rule)
    assert clear_product(PRODUCT, bids, asks, seed, rule) == first
    shuffler = random.Random(shuffle_seed)
    shuffled_bids, shuffled_asks = list(bids), list(asks)
    shuffler.shuffle(shuffled_bids)
    shuffler.shuffle(shuffled_asks)
    assert clear_product(PRODUCT, shuffled_bids, shuffled_asks, seed, rule) == first


@settings(max_examples=200, deadline=None)
@given(book=books(), seed=SEEDS)
def test_rules_share_the_uniform_allocation_and_uniform_trades_at_one_price(book, seed):
    bids, asks = book
    uniform = clear_product(PRODUCT, bids, asks, seed, "uniform")
    pay_as_bid = clear_product(PRODUCT, bids, asks, seed, "pay-as-bid")
    mcafee = clear_product(PRODUCT, bids, asks, seed, "mcafee")
    pairs = [(m.bid_hash, m.ask_hash) for m in uniform.matches]
    assert [(m.bid_hash, m.ask_hash) for m in pay_as_bid.matches] == pairs
    reduced = [(m.bid_hash, m.ask_hash) for m in mcafee.matches]
    assert reduced in (pairs, pairs[:-1])  # at most the marginal (last, lowest-cap) trade is dropped
    assert all(m.price_per_gpu_hour == uniform.clearing_price for m in uniform.matches)
    bid_of = {b.order_hash: b for b in bids}
    assert all(m.price_per_gpu_hour == bid_of[m.bid_hash].max_price for m in pay_as_bid.matches)
    assert uniform.commitment != pay_as_bid.commitment != mcafee.commitment


@settings(max_examples=200, deadline=None)
@given(
    seed=SEEDS,
    gpus=st.integers(1, 8),
    duration=DURATIONS,
    cap=PRICES,
    hashes=st.lists(st.binary(min_size=32, max_size=32), unique=True, min_size=3, max_size=3),
)
def test_seed_not_list_position_decides_between_identical_bids(seed, gpus, duration, cap, hashes):
    x = BookBid(hashes[0], "x", gpus, duration, cap)
    y = BookBid(hashes[1], "y", gpus, duration, cap)
    slot = (BookAsk(hashes[2], "p", keccak256(b"host"), gpus, duration, cap),)
    winner = min((x, y), key=lambda b: tie_key(seed, b.order_hash))
    for order in ((x, y), (y, x)):
        (match,) = clear_product(PRODUCT, order, slot, seed).matches
        assert match.bid_hash == winner.order_hash


@settings(max_examples=100, deadline=None)
@given(book=books(), seed=SEEDS, rule=RULES, shuffle_seed=st.integers(0, 2**32))
def test_commitment_binds_orders_seed_and_rule_but_not_their_order(book, seed, rule, shuffle_seed):
    bids, asks = book
    result = clear_product(PRODUCT, bids, asks, seed, rule)
    by_hash = lambda o: o.order_hash  # noqa: E731
    assert result.commitment == product_commitment(
        PRODUCT, seed, PricingRule(rule), sorted(bids, key=by_hash), sorted(asks, key=by_hash)
    )
    shuffled = list(bids)
    random.Random(shuffle_seed).shuffle(shuffled)
    assert clear_product(PRODUCT, shuffled, asks, seed, rule).commitment == result.commitment
    other_seed = keccak256(seed)
    assert clear_product(PRODUCT, bids, asks, other_seed, rule).commitment != result.commitment
    if bids:
        assert clear_product(PRODUCT, bids[1:], asks, seed, rule).commitment != result.commitment
