"""The explorer's pure parts: exact token units, relative times, the price chart, the search box's reading
of a query, and the leaf check's parsing."""

from __future__ import annotations

import pytest
from explorer_market import NOW, START, Market

from gpuspot.catalog import Catalog
from matcher.explorer.charts import price_chart
from matcher.explorer.format import Formatter, duration_text, gpu_hours, relative_time, token_units
from matcher.explorer.search import classify
from matcher.explorer.verify import parse_leaf


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [
        (0, 6, "0"),
        (2_500_000, 6, "2.5"),
        (1, 6, "0.000001"),
        (1_234_567_000_000, 6, "1,234,567"),
        (10**30 + 1, 18, "1,000,000,000,000.000000000000000001"),
        (7, 0, "7"),
    ],
)
def test_token_units_are_exact(amount: int, decimals: int, text: str) -> None:
    assert token_units(amount, decimals) == text


def test_token_units_refuse_floats() -> None:
    with pytest.raises(TypeError):
        token_units(2.5, 6)  # type: ignore[arg-type]


def test_money_shows_base_units_on_hover() -> None:
    f = Formatter(6, "tUSD", Catalog.default(), NOW)
    assert str(f.money(2_500_000)) == (
        '<span class="money" title="2,500,000 base units">2.5</span> <span class="unit">tUSD</span>'
    )
    assert 'datetime="' in str(f.when(NOW - 120)) and "2 min ago" in str(f.when(NOW - 120))


def test_times_and_durations_read_naturally() -> None:
    assert relative_time(NOW - 3, NOW) == "just now"
    assert relative_time(NOW - 7200, NOW) == "2 h ago"
    assert relative_time(NOW + 90, NOW) == "in 1 min"
    assert duration_text(3_725) == "1 h 2 min"
    assert gpu_hours(5_400) == "1.5"


def test_the_chart_draws_each_product_and_says_when_empty() -> None:
    empty = str(price_chart({}, decimals=6, symbol="tUSD"))
    assert "no batch has cleared a trade yet" in empty
    chart = str(price_chart({"H100<x>": [(1, 2_000_000), (2, 2_500_000)]}, decimals=6, symbol="tUSD"))
    assert chart.count("<polyline") == 1 and chart.count("<circle") == 2
    assert "H100&lt;x&gt;" in chart and "<x>" not in chart
    assert "2.5 tUSD/GPU-h (2500000 base units)" in chart


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("0x5FbDB2315678afecb367f032d93F642f64180aa3", "address"),
        ("0x5fbdb2315678afecb367f032d93f642f64180aa3", "address"),
        ("0x" + "ab" * 32, "hash32"),
        ("ab" * 32, "hash32"),
        ("42", "number"),
        ("batch 42", "number"),
        ("#42", "number"),
        ("Lease 7", "number"),
    ],
)
def test_search_reads_what_a_query_can_name(text: str, kind: str) -> None:
    query = classify(text)
    assert query is not None and query.kind == kind


@pytest.mark.parametrize("text", ["", "   ", "hello", "0x123", "0x" + "zz" * 32, "-1", "batch -1"])
def test_search_refuses_what_names_nothing(text: str) -> None:
    assert classify(text) is None


def test_a_leaf_form_with_a_bad_field_says_which() -> None:
    with pytest.raises(ValueError, match="gpus"):
        parse_leaf(
            {
                "kind": "0", "batch_id": "1", "lease_id": "1", "bid_digest": "0x" + "11" * 32,
                "buyer": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "provider": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "product": "0x" + "22" * 32,
                "gpus": "two", "duration": "3600", "price_per_gpu_hour": "1", "used_gpu_seconds": "0",
            }
        )  # fmt: skip


def test_market_totals_count_volume_active_leases_and_providers(market: Market) -> None:
    totals = market.explorer.reads.totals(NOW + 100)
    assert (totals.batches, totals.leases) == (2, 2)
    assert totals.volume_gpu_seconds == (2 + 1) * 3600 == totals.volume_24h_gpu_seconds
    assert totals.active_leases == 2 and totals.providers_online == 1
    assert totals.last_post is not None and totals.last_post.batch_id == 2
    assert totals.cursor_block == 70
    later = market.explorer.reads.totals(START + 3600 + 1)  # both leases have run their hour
    assert later.active_leases == 0 and later.providers_online == 0
    assert market.explorer.reads.totals(NOW + 86_400 * 2).volume_24h_gpu_seconds == 0


def test_price_history_and_latest_price(market: Market) -> None:
    history = market.explorer.reads.price_history(500)
    assert [p.batch_id for p in history] == [1]
    latest = market.explorer.reads.latest_price(history[0].product)
    assert latest is not None and latest.price == history[0].price


def test_a_provider_row_counts_hosts_leases_and_verdicts(market: Market) -> None:
    lease = market.store.get_lease(1)
    row = market.explorer.reads.provider(lease.provider)
    assert row.hosts == {lease.host_id: {lease.product: 8}}
    assert (row.leases, row.leases_completed, row.leases_failed) == (2, 0, 0)
    assert (row.challenges_passed, row.challenges_failed, row.open_asks) == (1, 0, 0)
    assert market.explorer.reads.settled_totals(lease.provider) == (41_666, 0, 0)
    assert market.explorer.reads.settled_totals(lease.buyer) == (0, 41_666, 0)
