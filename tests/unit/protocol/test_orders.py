"""EIP-712 bids and asks: type strings against the contract, digests against eth-account, signatures, JSON."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import (
    ASK_TYPE,
    ASK_TYPEHASH,
    BID_TYPE,
    BID_TYPEHASH,
    Ask,
    Bid,
    Eip712Domain,
    InvalidOrderError,
    InvalidSignatureError,
    OrderJsonError,
    ProtocolError,
    Signature,
    digest,
    from_dict,
    from_json,
    order_hash,
    product_id,
    recover_signer,
    sign,
    struct_hash,
    to_json,
    typed_data,
)
from gpuspot.protocol.orders import DOMAIN_TYPEHASH

ORDERS_SOL = Path(__file__).parents[3] / "contracts" / "src" / "libraries" / "Orders.sol"
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract=ESCROW)
KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = Account.from_key(KEY).address


def make_bid(**changes: object) -> Bid:
    bid = Bid(
        buyer=SIGNER,
        product=product_id("H100-80GB"),
        gpus=8,
        duration=3600,
        max_price_per_gpu_hour=2_500_000,
        job_spec_hash=keccak(b"job"),
        nonce=7,
        expiry=1_900_000_000,
    )
    return replace(bid, **changes)  # type: ignore[arg-type]


def make_ask(**changes: object) -> Ask:
    ask = Ask(
        provider=SIGNER,
        product=product_id("H100-80GB"),
        host_id=keccak(b"host-1"),
        gpus=8,
        max_duration=86_400,
        min_price_per_gpu_hour=1_000_000,
        nonce=2**200 + 1,
        expiry=1_900_000_000,
    )
    return replace(ask, **changes)  # type: ignore[arg-type]


def eth_account_digest(payload: dict[str, object]) -> bytes:
    message = encode_typed_data(full_message=payload)
    return keccak(b"\x19" + message.version + message.header + message.body)


def solidity_type_string(constant: str) -> str:
    source = ORDERS_SOL.read_text()
    match = re.search(rf'string internal constant {constant}\s*=\s*"([^"]+)";', source)
    assert match, f"{constant} not found in {ORDERS_SOL}"
    return match.group(1)


uint = st.integers
bids = st.builds(
    Bid,
    buyer=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    product=st.binary(min_size=32, max_size=32),
    gpus=uint(0, 2**16 - 1),
    duration=uint(0, 2**32 - 1),
    max_price_per_gpu_hour=uint(0, 2**128 - 1),
    job_spec_hash=st.binary(min_size=32, max_size=32),
    nonce=uint(0, 2**256 - 1),
    expiry=uint(0, 2**64 - 1),
)
asks = st.builds(
    Ask,
    provider=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    product=st.binary(min_size=32, max_size=32),
    host_id=st.binary(min_size=32, max_size=32),
    gpus=uint(0, 2**16 - 1),
    max_duration=uint(0, 2**32 - 1),
    min_price_per_gpu_hour=uint(0, 2**128 - 1),
    nonce=uint(0, 2**256 - 1),
    expiry=uint(0, 2**64 - 1),
)
domains = st.builds(
    Eip712Domain,
    chain_id=uint(1, 2**64),
    verifying_contract=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
)


def test_type_strings_equal_the_contract_constants():
    assert solidity_type_string("BID_TYPE") == BID_TYPE
    assert solidity_type_string("ASK_TYPE") == ASK_TYPE
    assert keccak(text=solidity_type_string("BID_TYPE")) == BID_TYPEHASH
    assert keccak(text=solidity_type_string("ASK_TYPE")) == ASK_TYPEHASH
    assert (
        keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        == DOMAIN_TYPEHASH
    )


@pytest.mark.parametrize("cls", [Bid, Ask])
def test_field_table_matches_dataclass_and_type_string(cls: type[Bid] | type[Ask]):
    import dataclasses

    assert [f.name for f in dataclasses.fields(cls)] == [attr for attr, _, _ in cls.FIELDS]
    members = ",".join(f"{type_} {member}" for _, member, type_ in cls.FIELDS)
    assert f"{cls.TYPE_NAME}({members})" == cls.TYPE_STRING


def test_product_id_is_keccak_of_the_utf8_name():
    assert product_id("H100-80GB") == keccak(text="H100-80GB")
    with pytest.raises(InvalidOrderError):
        product_id("")


@settings(max_examples=60, deadline=None)
@given(order=st.one_of(bids, asks), domain=domains)
def test_digest_equals_eth_account_typed_data_digest(order: Bid | Ask, domain: Eip712Domain):
    assert digest(order, domain) == eth_account_digest(typed_data(order, domain))
    assert order_hash(order, domain) == digest(order, domain)


def test_typed_data_payload_has_the_v4_shape():
    payload = typed_data(make_bid(), DOMAIN)
    assert payload["primaryType"] == "Bid"
    assert payload["domain"] == {
        "name": "gpuspot",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": ESCROW,
    }
    assert [m["name"] for m in payload["types"]["EIP712Domain"]] == [
        "name",
        "version",
        "chainId",
        "verifyingContract",
    ]
    assert payload["message"]["maxPricePerGpuHour"] == 2_500_000
    assert payload["message"]["product"] == "0x" + product_id("H100-80GB").hex()
    json.dumps(payload)  # JSON-serialisable as it stands


def test_struct_hash_is_typehash_then_abi_words():
    from eth_abi.abi import encode

    bid = make_bid()
    types = [t for _, _, t in Bid.FIELDS]
    assert struct_hash(bid) == keccak(BID_TYPEHASH + encode(types, list(bid.abi_values())))


def test_sign_matches_eth_account_and_recovers_the_signer():
    bid = make_bid()
    signature = sign(bid, KEY, DOMAIN)
    reference = Account.sign_typed_data(KEY, full_message=typed_data(bid, DOMAIN))
    assert signature.value == bytes(reference.signature)
    assert recover_signer(bid, DOMAIN, signature) == SIGNER
    other_chain = Eip712Domain(chain_id=1, verifying_contract=ESCROW)
    assert recover_signer(bid, other_chain, signature) != SIGNER
    assert recover_signer(make_bid(nonce=8), DOMAIN, signature) != SIGNER


@settings(max_examples=40, deadline=None)
@given(order=st.one_of(bids, asks), key=st.integers(1, 2**255))
def test_compact_signature_round_trips(order: Bid | Ask, key: int):
    signature = sign(order, key.to_bytes(32, "big"), DOMAIN)
    r, vs = signature.compact()
    assert len(r) == len(vs) == 32
    assert (int.from_bytes(vs, "big") >> 255) == signature.v - 27
    assert Signature.from_compact(r, vs) == signature
    assert Signature(signature.hex()) == signature
    assert (
        recover_signer(order, DOMAIN, Signature.from_compact(r, vs))
        == Account.from_key(key.to_bytes(32, "big")).address
    )


def test_signature_refuses_malleable_and_malformed_values():
    signature = sign(make_bid(), KEY, DOMAIN)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(signature.s, "big")).to_bytes(32, "big")
    flipped_v = bytes([55 - signature.v])
    with pytest.raises(InvalidSignatureError, match="upper half"):
        Signature(signature.r + high_s + flipped_v)
    with pytest.raises(InvalidSignatureError, match="65 bytes"):
        Signature(signature.value[:64])
    with pytest.raises(InvalidSignatureError, match="v must be 27 or 28"):
        Signature(signature.value[:64] + b"\x05")
    assert Signature(signature.value[:64] + bytes([signature.v - 27])) == signature


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gpus", 2**16, "does not fit uint16"),
        ("gpus", -1, "does not fit uint16"),
        ("duration", 2**32, "does not fit uint32"),
        ("max_price_per_gpu_hour", 2**128, "does not fit uint128"),
        ("max_price_per_gpu_hour", 2.5, "never pass floats"),
        ("nonce", 2**256, "does not fit uint256"),
        ("expiry", 2**64, "does not fit uint64"),
        ("gpus", True, "must be an integer"),
        ("product", b"\x01" * 31, "32 bytes"),
        ("job_spec_hash", "0x1234", "32 bytes"),
        ("buyer", "0x1234", "20-byte hex address"),
        ("buyer", "0x52908400098527886E0F7030069857D2E4169EE7".replace("E", "e", 1), "checksum"),
    ],
)
def test_bid_refuses_values_outside_the_solidity_types(field: str, value: object, message: str):
    with pytest.raises(InvalidOrderError, match=message) as caught:
        make_bid(**{field: value})
    assert isinstance(caught.value, ProtocolError) and isinstance(caught.value, ValueError)


def test_ask_refuses_values_outside_the_solidity_types():
    with pytest.raises(InvalidOrderError, match="uint32"):
        make_ask(max_duration=2**32)
    with pytest.raises(InvalidOrderError, match="uint128"):
        make_ask(min_price_per_gpu_hour=-1)


def test_orders_normalize_addresses_and_hex_bytes():
    bid = make_bid(buyer=SIGNER.lower(), job_spec_hash="0x" + keccak(b"job").hex())
    assert bid == make_bid()
    assert bid.buyer == SIGNER


def test_reservation_matches_lease_math():
    bid = make_bid(gpus=3, duration=1001, max_price_per_gpu_hour=999_999)
    assert bid.reservation == 3 * 1001 * 999_999 // 3600


@settings(max_examples=60, deadline=None)
@given(order=st.one_of(bids, asks))
def test_json_round_trips_canonically(order: Bid | Ask):
    text = to_json(order)
    assert from_json(text) == order
    assert to_json(from_json(text)) == text
    document = json.loads(text)
    assert list(document) == sorted(document)
    assert all(isinstance(v, str) for v in document.values())


def test_json_format_is_documented_shape():
    document = json.loads(to_json(make_bid()))
    assert document["type"] == "Bid"
    assert document["nonce"] == "7"
    assert document["buyer"] == SIGNER
    assert document["product"] == "0x" + product_id("H100-80GB").hex()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("nonce"), "missing \\['nonce'\\]"),
        (lambda d: d.update(extra="1"), "unexpected \\['extra'\\]"),
        (lambda d: d.update(type="Order"), '"type" must be'),
        (lambda d: d.update(gpus="08"), "leading zeros"),
        (lambda d: d.update(gpus="-1"), "decimal string"),
        (lambda d: d.update(gpus=1.5), "decimal string"),
        (lambda d: d.update(gpus="70000"), "uint16"),
    ],
)
def test_from_json_refuses_non_canonical_orders(mutate, message: str):
    document = json.loads(to_json(make_bid()))
    mutate(document)
    with pytest.raises(OrderJsonError, match=message):
        from_json(json.dumps(document))
    with pytest.raises(OrderJsonError, match="not valid JSON"):
        from_json("{")


def test_domain_refuses_a_bad_contract_address():
    with pytest.raises(InvalidOrderError, match="escrow's address"):
        Eip712Domain(chain_id=1, verifying_contract="escrow")
    with pytest.raises(InvalidOrderError, match="chain_id"):
        Eip712Domain(chain_id=0, verifying_contract=ESCROW)


def test_from_dict_takes_a_parsed_document_with_the_same_checks():
    bid = make_bid()
    assert from_dict(json.loads(to_json(bid))) == bid
    with pytest.raises(OrderJsonError, match="must be an object"):
        from_dict([])
    document = json.loads(to_json(bid))
    document["gpus"] = "70000"
    with pytest.raises(OrderJsonError, match="uint16"):
        from_dict(document)
