"""Orders intake accepts: a valid bid and ask, resubmissions, and the forms a client may send."""

from __future__ import annotations

import json

import pytest
from intake_market import (
    BUYER,
    DOMAIN,
    NOW,
    PRICE,
    PROVIDER,
    ask,
    bid,
    market,
    submission,
)

from gpuspot.protocol import digest, to_json
from matcher.intake import AcceptedOrder, IntakePolicy, OrderKind, validate


def test_validate_accepts_a_valid_bid():
    order = bid()
    accepted = validate(submission(order), market())
    assert accepted == AcceptedOrder(
        kind=OrderKind.BID,
        order=order,
        order_hash=digest(order, DOMAIN),
        signer=BUYER,
        signature=accepted.signature,
        max_cost=2 * 3600 * PRICE // 3600,
        already_open=False,
    )


def test_validate_accepts_a_valid_ask_without_a_max_cost():
    order = ask()
    accepted = validate(submission(order), market())
    assert accepted.kind is OrderKind.ASK
    assert accepted.order == order
    assert accepted.order_hash == digest(order, DOMAIN)
    assert accepted.signer == PROVIDER
    assert accepted.max_cost is None


def test_validate_max_cost_rounds_down_like_the_escrow_reservation():
    order = bid(gpus=3, duration=1001, max_price_per_gpu_hour=1_234_567)
    accepted = validate(submission(order), market())
    assert accepted.max_cost == 3 * 1001 * 1_234_567 // 3600 == order.reservation


def test_validate_resubmission_returns_the_same_order_hash_and_already_open():
    payload = submission(bid())
    view = market()
    first = validate(payload, view)
    book = view.with_accepted(first)  # the service stores the order and reserves its max cost
    again = validate(payload, book)
    assert again.order_hash == first.order_hash
    assert again.already_open and not first.already_open
    assert book.with_accepted(again) is book  # nothing more is reserved
    assert again == AcceptedOrder(**{**_fields(first), "already_open": True})


def test_validate_resubmission_does_not_count_its_own_reservation():
    order = bid()  # max cost 5_000_000
    view = market(balances={BUYER: 5_000_000})
    first = validate(submission(order), view)
    assert validate(submission(order), view.with_accepted(first)).already_open


def test_validate_accepts_the_body_as_text_or_bytes_and_the_order_as_text():
    payload = submission(bid())
    expected = validate(payload, market()).order_hash
    assert validate(json.dumps(payload), market()).order_hash == expected
    assert validate(json.dumps(payload).encode(), market()).order_hash == expected
    as_text = {**payload, "order": to_json(bid())}
    assert validate(as_text, market()).order_hash == expected


def test_validate_accepts_the_market_domain_when_sent():
    payload = submission(bid(), send_domain=True)
    assert validate(payload, market()).order_hash == digest(bid(), DOMAIN)
    payload["domain"]["chainId"] = str(payload["domain"]["chainId"])  # wallets may send decimal strings
    payload["domain"]["verifyingContract"] = payload["domain"]["verifyingContract"].lower()
    assert validate(payload, market()).signer == BUYER


def test_validate_accepts_a_recovery_id_of_0_or_1_for_v():
    payload = submission(bid())
    v = int(payload["signature"][-2:], 16)
    payload["signature"] = payload["signature"][:-2] + f"{v - 27:02x}"
    assert validate(payload, market()).signature.v == v


def test_validate_accepts_lowercase_addresses_and_integer_members():
    payload = submission(bid())
    payload["order"]["buyer"] = payload["order"]["buyer"].lower()
    payload["order"]["gpus"] = 2
    accepted = validate(payload, market())
    assert accepted.signer == BUYER and accepted.order == bid()


@pytest.mark.parametrize("lifetime", [60, 600])
def test_validate_accepts_an_order_living_exactly_the_minimum_lifetime(lifetime: int):
    payload = submission(bid(expiry=NOW + lifetime))
    assert validate(payload, market(), IntakePolicy(min_lifetime=lifetime)).max_cost == 5_000_000


def test_validate_leaves_the_view_unchanged():
    view = market()
    before = repr(view)
    validate(submission(bid()), view)
    validate(submission(ask()), view)
    assert repr(view) == before


def _fields(accepted: AcceptedOrder) -> dict[str, object]:
    return {name: getattr(accepted, name) for name in AcceptedOrder.__dataclass_fields__}
