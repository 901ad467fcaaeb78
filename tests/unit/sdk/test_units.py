"""Amounts in token units <-> base units, exactly; durations as people write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuspot.sdk import format_duration, format_units, parse_duration, parse_units


@pytest.mark.parametrize(
    ("text", "decimals", "base"),
    [
        ("12.5", 6, 12_500_000),
        ("0.000001", 6, 1),
        ("3", 6, 3_000_000),
        ("3.", 6, 3_000_000),
        (".5", 6, 500_000),
        ("1_000", 6, 1_000_000_000),
        ("2.500000", 6, 2_500_000),
        ("7", 0, 7),
        ("123456789012345678.123456789012345678", 18, 123456789012345678123456789012345678),
    ],
)
def test_amounts_parse_exactly(text: str, decimals: int, base: int) -> None:
    assert parse_units(text, decimals) == base


@pytest.mark.parametrize("text", ["", "-1", "1e6", "12,5", "abc", "1.2.3", "NaN", "inf", " . "])
def test_amounts_that_are_not_plain_decimals_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        parse_units(text, 6)


def test_more_decimals_than_the_token_has_are_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="7 decimals but the token has 6: the smallest amount is 0.000001"):
        parse_units("0.0000001", 6)
    with pytest.raises(ValueError, match="has 1 decimals but the token has 0"):
        parse_units("1.5", 0)


@pytest.mark.parametrize(
    ("base", "decimals", "text"),
    [
        (12_500_000, 6, "12.5"),
        (1, 6, "0.000001"),
        (3_000_000, 6, "3"),
        (0, 6, "0"),
        (5, 0, "5"),
        (-1, 2, "-0.01"),
    ],
)
def test_amounts_format_without_trailing_zeros(base: int, decimals: int, text: str) -> None:
    assert format_units(base, decimals) == text


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=18))
def test_formatting_then_parsing_gives_the_same_base_units(base: int, decimals: int) -> None:
    assert parse_units(format_units(base, decimals), decimals) == base


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86_400), ("45", 45), (" 2H ", 7200)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "1x", "30m1h", "1h1h", "h", "-5m", "1.5h", "2 h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(5400, "1h30m"), (90, "1m30s"), (0, "0s"), (86_401, "1d1s")])
def test_durations_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds
