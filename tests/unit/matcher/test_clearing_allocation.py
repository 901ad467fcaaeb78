"""The allocation's two free-GPU indexes agree with a brute-force best fit; the curves with a brute force."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import keccak256
from matcher.clearing import (
    BookAsk,
    BookBid,
    PriceInterval,
    allocate,
    clear_product,
    clearing_interval,
    tie_key,
)

SEEDS = st.binary(min_size=32, max_size=32)


@st.composite
def books(draw: st.DrawFn, max_gpus: int = 8) -> tuple[tuple[BookBid, ...], tuple[BookAsk, ...]]:
    n_bids, n_asks = draw(st.integers(0, 30)), draw(st.integers(0, 12))
    durations = st.sampled_from([900, 3600, 7200]) | st.integers(1, 10_000)
    prices = st.integers(1, 6)
    bids = tuple(
        BookBid(keccak256(b"bid%d" % i), "b", draw(st.integers(1, max_gpus)), draw(durations), draw(prices))
        for i in range(n_bids)
    )
    asks = tuple(
        BookAsk(
            keccak256(b"ask%d" % i),
            "p",
            keccak256(b"host%d" % i),
            draw(st.integers(1, max_gpus)),
            draw(durations),
            draw(prices),
        )
        for i in range(n_asks)
    )
    return bids, asks


def brute_force(bids, asks, price, seed):
    """The allocation rule read literally: every eligible ask examined for every bid."""
    order = sorted(
        (i for i, b in enumerate(bids) if b.max_price >= price),
        key=lambda i: (-bids[i].max_price, tie_key(seed, bids[i].order_hash)),
    )
    free = [a.gpus if a.min_price <= price else 0 for a in asks]
    placements, unplaced = [], []
    for i in order:
        b = bids[i]
        fits = [j for j, a in enumerate(asks) if free[j] >= b.gpus and a.max_duration >= b.duration]
        if not fits:
            unplaced.append(i)
            continue
        j = min(fits, key=lambda j: (free[j] - b.gpus, asks[j].min_price, tie_key(seed, asks[j].order_hash)))
        free[j] -= b.gpus
        placements.append((i, j))
    return placements, unplaced


@settings(max_examples=300, deadline=None)
@given(book=books(), seed=SEEDS, price=st.integers(0, 7))
def test_allocation_tree_and_buckets_both_equal_brute_force_best_fit(book, seed, price):
    bids, asks = book
    expected = brute_force(bids, asks, price, seed)
    for index in ("tree", "buckets", "auto"):
        allocation = allocate(bids, asks, price, seed, index=index)
        assert (list(allocation.placements), list(allocation.unplaced)) == expected, index
        used = [0] * len(asks)
        for i, j in expected[0]:
            used[j] += bids[i].gpus
        assert list(allocation.used_gpus) == used


@settings(max_examples=50, deadline=None)
@given(book=books(max_gpus=300), seed=SEEDS, price=st.integers(0, 7))
def test_allocation_indexes_agree_on_hosts_with_many_gpus(book, seed, price):
    bids, asks = book
    tree = allocate(bids, asks, price, seed, index="tree")
    assert allocate(bids, asks, price, seed, index="buckets") == tree
    assert (list(tree.placements), list(tree.unplaced)) == brute_force(bids, asks, price, seed)


def curve_brute_force(bids, asks):
    candidates = sorted({p for p, _ in bids} | {p for p, _ in asks})
    volume = {
        p: min(sum(v for q, v in bids if q >= p), sum(v for q, v in asks if q <= p)) for p in candidates
    }
    best = max(volume.values(), default=0)
    if best == 0:
        return None
    at_best = [p for p in candidates if volume[p] == best]
    return PriceInterval(low=at_best[0], high=at_best[-1], volume=best)


SIDES = st.lists(st.tuples(st.integers(0, 20), st.integers(1, 50)), max_size=15)
HUGE_SIDES = st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(1, 2**48)), max_size=15)


@settings(max_examples=300, deadline=None)
@given(bids=SIDES | HUGE_SIDES, asks=SIDES | HUGE_SIDES)
def test_clearing_interval_equals_brute_force_for_small_and_uint128_prices(bids, asks):
    expected = curve_brute_force(bids, asks)
    got = clearing_interval(
        [p for p, _ in bids], [v for _, v in bids], [p for p, _ in asks], [v for _, v in asks]
    )
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(book=books(), seed=SEEDS)
def test_clearing_price_maximises_the_curves_volume_at_the_midpoint(book, seed):
    bids, asks = book
    result = clear_product(keccak256(b"p"), bids, asks, seed)
    expected = curve_brute_force(
        [(b.max_price, b.gpus * b.duration) for b in bids],
        [(a.min_price, a.gpus * a.max_duration) for a in asks],
    )
    assert result.interval == expected
    if expected is not None:
        assert result.clearing_price == (expected.low + expected.high) // 2
        p = result.clearing_price
        demand = sum(b.gpus * b.duration for b in bids if b.max_price >= p)
        supply = sum(a.gpus * a.max_duration for a in asks if a.min_price <= p)
        assert min(demand, supply) == expected.volume
