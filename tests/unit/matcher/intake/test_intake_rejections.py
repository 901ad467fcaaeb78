"""Every rejection code, with a message that says what to do; and that a rejection changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from intake_market import (
    BUYER,
    CHAIN_ID,
    ESCROW,
    NOW,
    PROVIDER,
    STRANGER,
    ask,
    bid,
    market,
    submission,
)

from gpuspot.protocol import Eip712Domain, digest, keccak256
from matcher.intake import (
    IntakePolicy,
    InvalidIntakePolicyError,
    InvalidMarketViewError,
    MarketSnapshot,
    OrderRejected,
    RejectCode,
    validate,
)

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def rejection(payload: object, view: MarketSnapshot | None = None, policy: IntakePolicy | None = None):
    view = view or market()
    before = repr(view)
    with pytest.raises(OrderRejected) as caught:
        validate(payload, view, policy or IntakePolicy())
    assert repr(view) == before  # a rejection changes nothing
    return caught.value


def with_order(change: Callable[[dict[str, Any]], None], order: Any = None) -> dict[str, Any]:
    payload = submission(order or bid())
    change(payload["order"])
    return payload


MALFORMED: list[tuple[object, str]] = [
    (b"{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"type": "bid", "order": {}}, r"missing \['signature'\]"),
    ({**submission(bid()), "note": "hi"}, r"unexpected \['note'\]"),
    ({**submission(bid()), "type": "Bid"}, '"type" must be "bid" or "ask"'),
    ({**submission(bid()), "type": ["bid"]}, '"type" must be "bid" or "ask"'),
    ({**submission(bid()), "type": "ask"}, 'the order is a Bid: set "type" to "bid"'),
    ({**submission(bid()), "order": 7}, "canonical JSON object"),
    ({**submission(bid()), "order": "{"}, "not valid JSON"),
    (with_order(lambda o: o.pop("nonce")), r"missing \['nonce'\]"),
    (with_order(lambda o: o.update(colour="red")), r"unexpected \['colour'\]"),
    (with_order(lambda o: o.update(gpus="-1")), "decimal string"),
    (with_order(lambda o: o.update(gpus="007")), "leading zeros"),
    (with_order(lambda o: o.update(gpus=1.5)), "decimal string"),
    (with_order(lambda o: o.update(gpus=str(1 << 16))), "does not fit uint16"),
    (with_order(lambda o: o.update(maxPricePerGpuHour=str(1 << 128))), "does not fit uint128"),
    (with_order(lambda o: o.update(buyer="0x1234")), "20-byte hex address"),
    (with_order(lambda o: o.update(buyer=BUYER[:-1] + "a")), "invalid EIP-55 checksum.*pass it in lowercase"),
    (with_order(lambda o: o.update(product="0x12")), "32 bytes"),
    ({**submission(bid()), "signature": "0x1234"}, "130 hex digits"),
    ({**submission(bid()), "signature": submission(bid())["signature"][2:]}, "130 hex digits"),
    ({**submission(bid()), "signature": None}, "130 hex digits"),
    ({**submission(bid()), "domain": {"chainId": 1}}, '"domain" must be an object with exactly'),
    ({**submission(bid()), "domain": {**Eip712Domain(1, ESCROW).as_dict(), "chainId": -1}}, "chainId"),
    ({**submission(bid()), "domain": {**Eip712Domain(1, ESCROW).as_dict(), "chainId": "01"}}, "chainId"),
    (
        {**submission(bid()), "domain": {**Eip712Domain(1, ESCROW).as_dict(), "verifyingContract": "x"}},
        "verifyingContract",
    ),
    ({**submission(bid()), "domain": {**Eip712Domain(1, ESCROW).as_dict(), "name": 5}}, "must be strings"),
]


@pytest.mark.parametrize(("payload", "match"), MALFORMED)
def test_validate_rejects_malformed_submissions(payload: object, match: str):
    rejected = rejection(payload)
    assert rejected.code is RejectCode.MALFORMED
    assert re.search(match, rejected.message), rejected.message


@pytest.mark.parametrize(
    "domain",
    [
        Eip712Domain(chain_id=1, verifying_contract=ESCROW),
        Eip712Domain(chain_id=CHAIN_ID, verifying_contract="0x" + "22" * 20),
        Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW, name="other"),
        Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW, version="2"),
    ],
)
def test_validate_rejects_a_domain_that_is_not_this_market(domain: Eip712Domain):
    rejected = rejection(submission(bid(), domain=domain, send_domain=True))
    assert rejected.code is RejectCode.WRONG_DOMAIN
    assert f"chainId {CHAIN_ID}, verifyingContract {ESCROW}" in rejected.message
    assert "sign it again for this market's domain" in rejected.message
    assert rejected.details == {"chain_id": CHAIN_ID, "verifying_contract": ESCROW}


def test_validate_rejects_an_order_signed_for_another_domain_sent_without_it():
    rejected = rejection(submission(bid(), domain=Eip712Domain(1, ESCROW)))
    assert rejected.code is RejectCode.BAD_SIGNATURE
    assert f"not the order's buyer {BUYER}" in rejected.message
    assert f"for this market's domain (chainId {CHAIN_ID}" in rejected.message


@pytest.mark.parametrize(
    ("order", "what"),
    [
        (bid(gpus=0), "bid gpus"),
        (bid(duration=0), "bid duration"),
        (ask(gpus=0), "ask gpus"),
        (ask(max_duration=0), "ask maxDuration"),
    ],
)
def test_validate_rejects_zero_quantities(order: Any, what: str):
    rejected = rejection(submission(order))
    assert rejected.code is RejectCode.ZERO_QUANTITY
    assert rejected.message.startswith(f"{what} is 0: an order must trade at least one GPU")


@pytest.mark.parametrize("order", [bid(product=keccak256(b"H100")), ask(product=keccak256(b"h100-80gb"))])
def test_validate_rejects_a_product_outside_the_catalog(order: Any):
    rejected = rejection(submission(order))
    assert rejected.code is RejectCode.UNKNOWN_PRODUCT
    assert "set product to keccak256 of one of H100-80GB, A100-80GB, L40S-48GB, RTX4090-24GB" in (
        rejected.message
    )


@pytest.mark.parametrize("expiry", [NOW, NOW - 1, 0])
def test_validate_rejects_an_expired_order(expiry: int):
    rejected = rejection(submission(bid(expiry=expiry)))
    assert rejected.code is RejectCode.EXPIRED
    assert rejected.message == (
        f"the order expired at {expiry} and it is now {NOW}: sign a new order with a later expiry"
    )


def test_validate_rejects_an_order_that_expires_before_the_minimum_lifetime():
    rejected = rejection(submission(ask(expiry=NOW + 59)), policy=IntakePolicy(min_lifetime=60))
    assert rejected.code is RejectCode.EXPIRES_TOO_SOON
    assert rejected.message == (
        "the order expires in 59 s, but this market needs at least 60 s (one batch and its settlement root) "
        f"to trade it: sign it again with expiry >= {NOW + 60}"
    )


@pytest.mark.parametrize(
    "order", [bid(max_price_per_gpu_hour=0), bid(gpus=1, duration=1, max_price_per_gpu_hour=3599)]
)
def test_validate_rejects_a_bid_whose_max_cost_rounds_to_zero(order: Any):
    rejected = rejection(submission(order))
    assert rejected.code is RejectCode.PRICE_OUT_OF_RANGE
    assert (
        "rounds down to 0 base units" in rejected.message and "raise maxPricePerGpuHour" in rejected.message
    )


def test_validate_accepts_an_ask_at_price_zero():
    assert validate(submission(ask(min_price_per_gpu_hour=0)), market()).max_cost is None


def _resign(payload: dict[str, Any], signature: bytes) -> dict[str, Any]:
    return {**payload, "signature": "0x" + signature.hex()}


def test_validate_rejects_a_signature_by_someone_else():
    rejected = rejection(submission(bid(), signer="stranger"))
    assert rejected.code is RejectCode.BAD_SIGNATURE
    assert rejected.message.startswith(f"the signature is by {STRANGER}, not the order's buyer {BUYER}: sign")
    assert rejected.details == {"recovered": STRANGER}
    rejected = rejection(submission(ask(), signer="buyer"))
    assert f"not the order's provider {PROVIDER}: sign with the provider's key" in rejected.message


def test_validate_rejects_a_signature_over_other_fields():
    payload = submission(bid())
    payload["order"]["gpus"] = "3"
    rejected = rejection(payload)
    assert rejected.code is RejectCode.BAD_SIGNATURE and "over exactly these fields" in rejected.message


def test_validate_rejects_a_high_s_signature():
    raw = bytes.fromhex(submission(bid())["signature"][2:])
    s = int.from_bytes(raw[32:64], "big")
    flipped = raw[:32] + (_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])  # the malleable twin
    rejected = rejection(_resign(submission(bid()), flipped))
    assert rejected.code is RejectCode.BAD_SIGNATURE
    assert "upper half of the curve order" in rejected.message and "sign again" in rejected.message


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda raw: raw[:64] + b"\x1d", "v must be 27 or 28"),
        (lambda raw: bytes(32) + raw[32:], "r is zero"),
        (lambda raw: raw[:32] + bytes(32) + raw[64:], "s is zero"),
        # r = the field order minus one is no x coordinate of a point: nothing recovers.
        (lambda raw: (2**256 - 2**32 - 978).to_bytes(32, "big") + raw[32:], "recovers no public key"),
    ],
)
def test_validate_rejects_an_unusable_signature(mutate: Callable[[bytes], bytes], match: str):
    payload = submission(bid())
    rejected = rejection(_resign(payload, mutate(bytes.fromhex(payload["signature"][2:]))))
    assert rejected.code is RejectCode.BAD_SIGNATURE
    assert match in rejected.message


def test_validate_rejects_a_nonce_closed_on_chain():
    view = market(closed_nonces=frozenset({(BUYER, 1)}))
    rejected = rejection(submission(bid()), view)
    assert rejected.code is RejectCode.NONCE_USED
    assert rejected.message == (
        f"nonce 1 of {BUYER} is already used or invalidated on-chain: sign the order again with a nonce "
        "never used by this account"
    )


def test_validate_rejects_a_nonce_held_by_another_open_order_of_the_same_account():
    other = digest(bid(gpus=1), market_domain_of())
    view = market(open_nonces={(BUYER, 1): other})
    rejected = rejection(submission(bid()), view)
    assert rejected.code is RejectCode.NONCE_USED
    assert f"held by the open order 0x{other.hex()}: cancel that order first" in rejected.message
    # nonces are per account and shared by bids and asks
    assert rejection(
        submission(ask(provider=BUYER), signer="buyer"), replace(view, active_providers=frozenset({BUYER}))
    ).code is (RejectCode.NONCE_USED)


def test_validate_rejects_an_ask_from_an_inactive_provider():
    rejected = rejection(submission(ask()), market(active_providers=frozenset()))
    assert rejected.code is RejectCode.PROVIDER_INACTIVE
    assert rejected.message == (
        f"provider {PROVIDER} is not active in the registry: register with at least the minimum stake "
        "(or cancel your exit) before posting asks"
    )


def test_validate_rejects_a_bid_while_the_buyer_withdrawal_is_pending():
    rejected = rejection(submission(bid()), market(pending_withdrawals=frozenset({BUYER})))
    assert rejected.code is RejectCode.WITHDRAWAL_PENDING
    assert "cancel the withdrawal (cancelWithdrawal) or wait until it is withdrawn" in rejected.message


def test_validate_rejects_a_bid_beyond_the_free_balance_and_says_how_much_is_short():
    view = market(balances={BUYER: 6_000_000}, reservations={BUYER: 2_000_000})
    rejected = rejection(submission(bid()), view)  # needs 5_000_000, 4_000_000 free
    assert rejected.code is RejectCode.INSUFFICIENT_BALANCE
    assert rejected.message == (
        f"this bid can cost up to 5000000 base units, but buyer {BUYER} has 6000000 available in the escrow "
        "of which 2000000 is held for open bids: deposit at least 1000000 more base units, or cancel open "
        "bids, or bid for less"
    )
    assert rejected.details == {
        "needed": 5_000_000,
        "available": 6_000_000,
        "reserved": 2_000_000,
        "short": 1_000_000,
    }
    assert rejected.as_dict()["code"] == "insufficient_balance"
    assert validate(submission(bid()), market(balances={BUYER: 7_000_000}, reservations={BUYER: 2_000_000}))


def test_validate_rejects_state_checks_only_after_the_signature():
    # a stranger cannot learn a buyer's balance by submitting orders in the buyer's name
    view = market(balances={})
    assert rejection(submission(bid(), signer="stranger"), view).code is RejectCode.BAD_SIGNATURE


def test_every_code_is_documented_in_docs_intake():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[4] / "docs" / "intake.md").read_text()
    for code in RejectCode:
        assert f"| `{code.value}` |" in text, code


def test_rejection_codes_are_stable():
    assert [code.value for code in RejectCode] == [
        "malformed",
        "wrong_domain",
        "zero_quantity",
        "unknown_product",
        "expired",
        "expires_too_soon",
        "price_out_of_range",
        "bad_signature",
        "nonce_used",
        "provider_inactive",
        "withdrawal_pending",
        "insufficient_balance",
    ]
    assert json.dumps(rejection(submission(bid(expiry=0))).as_dict())


def test_intake_policy_and_market_view_errors_blame_the_service():
    with pytest.raises(InvalidIntakePolicyError, match="min_lifetime"):
        IntakePolicy(min_lifetime=-1)
    with pytest.raises(InvalidMarketViewError):
        MarketSnapshot(chain_id=1, escrow="nope", now=NOW, catalog=market().catalog)
    broken = replace(market(), chain_id=0)
    with pytest.raises(InvalidMarketViewError, match="chain id or escrow"):
        validate(submission(bid()), broken)


def market_domain_of() -> Eip712Domain:
    return Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW)
