"""Signatures from other EIP-712 implementations; the fast digest and recovery against reference ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st
from intake_market import BUYER, CHAIN_ID, DOMAIN, ESCROW, NOW, ask, bid, key, market

from gpuspot.protocol import Ask, Bid, Eip712Domain, Signature, digest, sign, to_json, typed_data
from gpuspot.protocol.orders import recover_digest_address, recover_signer
from matcher.intake import validate

ROOT = Path(__file__).resolve().parents[4]
NODE_MODULES = ROOT / "contracts" / "node_modules"
SIGN_JS = Path(__file__).with_name("eth_sig_util_sign.js")


def body(order: Bid | Ask, signature: str, domain: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": order.TYPE_NAME.lower(),
        "order": json.loads(to_json(order)),
        "signature": signature,
    }
    if domain is not None:
        payload["domain"] = domain
    return payload


def test_validate_accepts_orders_signed_by_eth_account_sign_typed_data():
    for order, label in ((bid(nonce=2**255 + 7), "buyer"), (ask(nonce=3), "provider")):
        signed = Account.sign_typed_data(key(label), full_message=typed_data(order, DOMAIN))
        payload = body(order, "0x" + bytes(signed.signature).hex(), DOMAIN.as_dict())
        accepted = validate(payload, market())
        assert accepted.order_hash == bytes(signed.message_hash) == digest(order, DOMAIN)


def test_validate_accepts_orders_signed_by_metamask_eth_sig_util():
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@metamask" / "eth-sig-util").is_dir():
        pytest.skip("node or contracts/node_modules/@metamask/eth-sig-util missing: run ./scripts/bootstrap")
    orders: list[tuple[Bid | Ask, str]] = [
        (bid(), "buyer"),
        (bid(nonce=2**256 - 1, max_price_per_gpu_hour=2**100, expiry=2**64 - 1), "buyer"),
        (ask(), "provider"),
    ]
    # Integers travel as decimal strings, as a browser dapp must send uint256 values above 2**53.
    requests = [
        {
            "privateKey": key(label).hex(),
            "data": {**typed_data(order, DOMAIN), "message": json.loads(to_json(order))},
        }
        for order, label in orders
    ]
    for request in requests:
        request["data"]["message"].pop("type")
        request["data"]["domain"]["chainId"] = str(CHAIN_ID)
    completed = subprocess.run(
        [node, str(SIGN_JS)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    signatures = json.loads(completed.stdout)
    for (order, _), signature in zip(orders, signatures, strict=True):
        accepted = validate(body(order, signature, DOMAIN.as_dict()), market(balances={BUYER: 10**40}))
        assert accepted.order_hash == digest(order, DOMAIN)
        assert signature == sign(order, key("buyer" if isinstance(order, Bid) else "provider"), DOMAIN).hex()


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.binary(min_size=32, max_size=32)
bids = st.builds(
    Bid,
    buyer=addresses,
    product=words,
    gpus=st.integers(0, 2**16 - 1),
    duration=st.integers(0, 2**32 - 1),
    max_price_per_gpu_hour=st.integers(0, 2**128 - 1),
    job_spec_hash=words,
    nonce=st.integers(0, 2**256 - 1),
    expiry=st.integers(0, 2**64 - 1),
)
asks = st.builds(
    Ask,
    provider=addresses,
    product=words,
    host_id=words,
    gpus=st.integers(0, 2**16 - 1),
    max_duration=st.integers(0, 2**32 - 1),
    min_price_per_gpu_hour=st.integers(0, 2**128 - 1),
    nonce=st.integers(0, 2**256 - 1),
    expiry=st.integers(0, 2**64 - 1),
)
domains = st.builds(
    Eip712Domain, chain_id=st.integers(1, 2**256 - 1), verifying_contract=addresses
) | st.just(DOMAIN)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
private_keys = st.integers(1, SECP256K1_N - 1).map(lambda n: n.to_bytes(32, "big"))


@settings(max_examples=200, deadline=None)
@given(order=bids | asks, domain=domains)
def test_the_protocol_digest_equals_eth_accounts_typed_data_digest(order: Bid | Ask, domain: Eip712Domain):
    expected = _hash_eip191_message(encode_typed_data(full_message=typed_data(order, domain)))
    assert digest(order, domain) == expected


@settings(max_examples=60, deadline=None)
@given(order=bids | asks, domain=domains, private_key=private_keys)
def test_fast_recovery_equals_eth_account(order: Bid | Ask, domain: Eip712Domain, private_key: bytes):
    signature = sign(order, private_key, domain)
    message = encode_typed_data(full_message=typed_data(order, domain))
    expected = Account.recover_message(message, signature=signature.value)
    recovered = recover_digest_address(digest(order, domain), signature)
    assert recovered is not None and "0x" + recovered.hex() == expected.lower()
    assert recover_signer(order, domain, signature) == expected


@settings(max_examples=30, deadline=None)
@given(private_key=private_keys, nonce=st.integers(0, 2**256 - 1), lifetime=st.integers(1, 10**6))
def test_validate_accepts_what_eth_account_signs_for_any_buyer(private_key: bytes, nonce: int, lifetime: int):
    buyer = Account.from_key(private_key).address
    order = bid(buyer=buyer, nonce=nonce, expiry=NOW + lifetime)
    signed = Account.sign_typed_data(private_key, full_message=typed_data(order, DOMAIN))
    view = market(balances={buyer: 10**12})
    accepted = validate(body(order, "0x" + bytes(signed.signature).hex()), view)
    assert accepted.signer == buyer and accepted.signature == Signature(bytes(signed.signature))


def test_domain_fixture_is_the_market_domain():
    assert Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW) == DOMAIN
