"""validate_many: one result per item, each item seeing the orders accepted before it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from intake_market import BUYER, NOW, ask, bid, market, submission

from matcher.intake import AcceptedOrder, MarketSnapshot, OrderRejected, RejectCode, validate, validate_many


def codes(results: list[AcceptedOrder | OrderRejected]) -> list[str]:
    return ["ok" if isinstance(r, AcceptedOrder) else r.code.value for r in results]


def test_validate_many_rejects_only_the_bad_items():
    payloads = [submission(bid()), "{", submission(ask()), submission(bid(nonce=2, expiry=NOW))]
    results = validate_many(payloads, market())
    assert codes(results) == ["ok", "malformed", "ok", "expired"]
    assert results[0] == validate(payloads[0], market())


def test_validate_many_reserves_each_accepted_bid_for_the_next_ones():
    # 12_000_000 free; each bid can cost 5_000_000: the third does not fit beside the first two
    view = market(balances={BUYER: 12_000_000})
    results = validate_many([submission(bid(nonce=n)) for n in (1, 2, 3)], view)
    assert codes(results) == ["ok", "ok", "insufficient_balance"]
    last = results[2]
    assert isinstance(last, OrderRejected) and last.details["reserved"] == 10_000_000
    assert last.details["short"] == 3_000_000


def test_validate_many_holds_each_accepted_nonce():
    results = validate_many([submission(bid()), submission(bid(gpus=1))], market())
    assert codes(results) == ["ok", "nonce_used"]


def test_validate_many_answers_a_repeated_order_with_the_same_hash():
    view = market(balances={BUYER: 5_000_000})  # room for the bid once
    first, second = validate_many([submission(bid()), submission(bid())], view)
    assert isinstance(first, AcceptedOrder) and isinstance(second, AcceptedOrder)
    assert first.order_hash == second.order_hash
    assert (first.already_open, second.already_open) == (False, True)


def test_validate_many_changes_nothing_in_the_view():
    view = market()
    before = repr(view)
    validate_many([submission(bid(nonce=n)) for n in range(5)], view)
    assert repr(view) == before


def test_validate_many_of_nothing_is_nothing():
    assert validate_many([], market()) == []


# (kind, nonce, gpus, price): few values, so that nonce clashes, zero quantities and full balances are common.
orders = st.tuples(
    st.sampled_from(["bid", "ask"]),
    st.integers(1, 4),
    st.integers(0, 3),
    st.sampled_from([0, 1_000_000, 2_500_000, 4_000_000]),
)


def _payload(kind: str, nonce: int, gpus: int, price: int) -> dict[str, Any]:
    if kind == "bid":
        return submission(bid(nonce=nonce, gpus=gpus, max_price_per_gpu_hour=price))
    return submission(ask(nonce=nonce, gpus=gpus, min_price_per_gpu_hour=price))


@settings(max_examples=40, deadline=None)
@given(items=st.lists(orders, max_size=8), balance=st.sampled_from([0, 5_000_000, 12_000_000, 10**9]))
def test_validate_many_equals_validating_in_turn_and_adding_to_the_book(items: list[Any], balance: int):
    payloads = [_payload(kind, nonce, gpus, price) for kind, nonce, gpus, price in items]
    view: MarketSnapshot = market(balances={BUYER: balance})
    expected: list[AcceptedOrder | OrderRejected] = []
    for payload in payloads:
        try:
            accepted = validate(payload, view)
        except OrderRejected as rejection:
            expected.append(rejection)
        else:
            expected.append(accepted)
            view = view.with_accepted(accepted)
    assert validate_many(payloads, market(balances={BUYER: balance})) == expected
    # whatever the order of arrival: one open order per (account, nonce), and never more reserved than held
    fresh = [r for r in expected if isinstance(r, AcceptedOrder) and not r.already_open]
    assert len({(r.signer, r.order.nonce) for r in fresh}) == len(fresh)
    assert sum(r.max_cost or 0 for r in fresh) <= balance
    assert RejectCode.MALFORMED.value not in codes(expected)
