"""Receipts and challenge commitments: hashes against an independent eth-abi encoding, EIP-191 signatures
against eth-account, JSON round trips, and tampering with any field."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from eth_abi import encode as eth_abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import Eip712Domain, ProtocolError, Signature
from gpuspot.protocol.evidence import (
    COMMIT_TAG,
    RECEIPT_TAG,
    EvidenceError,
    JobState,
    Receipt,
    canonical_json,
    commitment_hash,
    output_digest,
    recover_commitment_signer,
    recover_receipt_signer,
    sign_commitment,
    sign_receipt,
    stop_message,
    telemetry_hash,
)

ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract=ESCROW)
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = Account.from_key(KEY).address
OTHER_KEY = "0x" + "11" * 32
TELEMETRY: dict[str, Any] = {
    "backend": "cpu-simulated",
    "devices": [{"index": 0, "name": "sim"}],
    "samples": [{"t": 1_700_000_030, "util": 97}],
}
# Computed once with eth_abi.encode, eth_utils.keccak and eth_account (see test_the_known_answer_vector).
RECEIPT_HASH = "2a931ea19ab233daf1750e7c7f2d573acf1cd173de4685245230810f8857e8ec"
RECEIPT_SIGNATURE = (
    "75b4bdd5b0e141f83188dc8ce6f7fb271e84409f2bf21b618e6f187885e5e133"
    "1495372965aab4f8876f817d63a067923ccca413e4077201214657f5a8eb0b341c"
)
COMMIT_HASH = "b899231516aa8aa08fd25416932917c3808410dc137dca3165fe9b6198df7aba"


def make_receipt(**changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "lease_id": 7,
        "sequence": 3,
        "time": 1_700_000_030,
        "job_state": JobState.RUNNING,
        "telemetry": TELEMETRY,
        "output_digest": b"\x00" * 32,
        "previous": keccak(b"previous"),
    }
    fields.update(changes)
    return Receipt(**fields)


def independent_receipt_hash(receipt: Receipt, chain_id: int = 31337, escrow: str = ESCROW) -> bytes:
    telemetry = json.dumps(receipt.telemetry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return keccak(
        eth_abi_encode(
            [
                "bytes32",
                "uint256",
                "address",
                "uint64",
                "uint64",
                "uint64",
                "uint8",
                "bytes32",
                "bytes32",
                "bytes32",
            ],
            [
                keccak(b"gpuspot.receipt.v1"),
                chain_id,
                escrow,
                receipt.lease_id,
                receipt.sequence,
                receipt.time,
                int(receipt.job_state),
                keccak(telemetry.encode()),
                receipt.output_digest,
                receipt.previous,
            ],
        )
    )


def test_the_known_answer_vector():
    receipt = make_receipt()
    assert keccak(b"gpuspot.receipt.v1") == RECEIPT_TAG
    assert keccak(b"gpuspot.challenge.commit.v1") == COMMIT_TAG
    assert receipt.hash(DOMAIN).hex() == RECEIPT_HASH == independent_receipt_hash(receipt).hex()
    assert sign_receipt(receipt, KEY, DOMAIN).value.hex() == RECEIPT_SIGNATURE
    root = keccak(b"root")
    independent = keccak(
        eth_abi_encode(
            ["bytes32", "uint256", "address", "uint64", "uint64", "bytes32"],
            [keccak(b"gpuspot.challenge.commit.v1"), 31337, ESCROW, 7, 2, root],
        )
    )
    assert commitment_hash(DOMAIN, 7, 2, root).hex() == COMMIT_HASH == independent.hex()


def test_signatures_are_eip191_personal_signatures_of_the_hash():
    receipt = make_receipt()
    ours = sign_receipt(receipt, KEY, DOMAIN)
    theirs = Account.sign_message(encode_defunct(primitive=receipt.hash(DOMAIN)), KEY).signature
    assert ours.value == bytes(theirs)
    assert recover_receipt_signer(receipt, Signature(bytes(theirs)), DOMAIN) == SIGNER
    assert (
        Account.recover_message(encode_defunct(primitive=receipt.hash(DOMAIN)), signature=ours.value)
        == SIGNER
    )

    root = keccak(b"root")
    commit = sign_commitment(DOMAIN, 7, 2, root, KEY)
    wallet = Account.sign_message(encode_defunct(primitive=commitment_hash(DOMAIN, 7, 2, root)), KEY)
    assert commit.value == bytes(wallet.signature)
    assert recover_commitment_signer(DOMAIN, 7, 2, root, commit) == SIGNER


@pytest.mark.parametrize(
    "change",
    [
        {"lease_id": 8},
        {"sequence": 4},
        {"time": 1_700_000_031},
        {"job_state": JobState.SUCCEEDED},
        {"telemetry": {**TELEMETRY, "backend": "nvml"}},
        {"output_digest": keccak(b"outputs")},
        {"previous": keccak(b"another")},
    ],
    ids=lambda change: next(iter(change)),
)
def test_tampering_with_any_field_changes_the_hash_and_the_signer(change: dict[str, Any]):
    receipt = make_receipt()
    signature = sign_receipt(receipt, KEY, DOMAIN)
    tampered = replace(receipt, **change)
    assert tampered.hash(DOMAIN) != receipt.hash(DOMAIN)
    assert tampered.hash(DOMAIN) == independent_receipt_hash(tampered)
    assert recover_receipt_signer(tampered, signature, DOMAIN) != SIGNER


def test_the_domain_binds_a_receipt_and_a_commitment_to_one_market():
    receipt = make_receipt()
    other_chain = Eip712Domain(chain_id=1, verifying_contract=ESCROW)
    other_escrow = Eip712Domain(chain_id=31337, verifying_contract="0x" + "12" * 20)
    hashes = {receipt.hash(d) for d in (DOMAIN, other_chain, other_escrow)}
    assert len(hashes) == 3
    root = keccak(b"root")
    assert commitment_hash(DOMAIN, 7, 2, root) != commitment_hash(other_chain, 7, 2, root)
    signature = sign_commitment(DOMAIN, 7, 2, root, KEY)
    for lease_id, sequence, other_root in ((8, 2, root), (7, 3, root), (7, 2, keccak(b"other"))):
        assert recover_commitment_signer(DOMAIN, lease_id, sequence, other_root, signature) != SIGNER


def test_json_round_trip_keeps_the_receipt_and_signature():
    outputs = {
        "outputs": {"out/model.bin": "0x" + "ab" * 32},
        "stdout": "0x" + "01" * 32,
        "stderr": "0x" + "02" * 32,
    }
    receipt = make_receipt(
        job_state=JobState.SUCCEEDED, outputs=outputs, output_digest=output_digest(outputs)
    )
    signature = sign_receipt(receipt, KEY, DOMAIN)
    document = json.loads(json.dumps(receipt.to_json(signature)))
    parsed, parsed_signature = Receipt.from_json(document)
    assert parsed == receipt and parsed_signature == signature
    assert parsed.hash(DOMAIN) == receipt.hash(DOMAIN)
    as_strings = {**document, "lease_id": "7", "sequence": "3", "time": str(receipt.time), "job_state": "2"}
    assert Receipt.from_json(as_strings)[0] == receipt
    without_outputs = {k: v for k, v in make_receipt().to_json(signature).items() if k != "outputs"}
    assert Receipt.from_json(without_outputs)[0].outputs is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"extra": 1}, "unexpected"),
        ({"time": 1.5}, "integer"),
        ({"lease_id": "07"}, "integer"),
        ({"lease_id": -1}, "lease_id"),
        ({"job_state": 7}, "job_state"),
        ({"telemetry": {"util": 0.5}}, "float"),
        ({"telemetry": []}, "JSON object"),
        ({"previous": "0x1234"}, "previous"),
        ({"signature": "0x00"}, "signature"),
        ({"outputs": {"stdout": "0x00"}}, "output_digest"),
    ],
)
def test_malformed_receipt_json_is_refused(change: dict[str, Any], message: str):
    document = {**make_receipt().to_json(sign_receipt(make_receipt(), KEY, DOMAIN)), **change}
    with pytest.raises(EvidenceError, match=message) as info:
        Receipt.from_json(document)
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)


def test_sequence_zero_has_a_zero_previous_and_rejected_is_only_sequence_zero():
    zero = b"\x00" * 32
    assert make_receipt(sequence=0, previous=zero, job_state=JobState.REJECTED).job_state.terminal
    with pytest.raises(EvidenceError, match="zero word"):
        make_receipt(sequence=0)
    with pytest.raises(EvidenceError, match="zero word"):
        make_receipt(previous=zero)
    with pytest.raises(EvidenceError, match="rejected"):
        make_receipt(job_state=JobState.REJECTED)


def test_job_states_and_terminality():
    assert [s.value for s in JobState] == list(range(7))
    assert [s.name.lower() for s in JobState if s.terminal] == [
        "succeeded",
        "failed",
        "timed_out",
        "rejected",
        "stopped",
    ]


def test_canonical_json_sorts_keys_keeps_unicode_and_refuses_floats():
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    assert telemetry_hash({"b": 1, "a": 2}) == keccak(b'{"a":2,"b":1}')
    assert output_digest(None) == b"\x00" * 32
    for bad in ({"x": 1.0}, {"x": float("nan")}, {1: "x"}, {"x": b"bytes"}):
        with pytest.raises(EvidenceError):
            canonical_json(bad)


def test_stop_message():
    domain = Eip712Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
    assert stop_message(42, domain) == (
        f"gpuspot: stop lease 42 (chain 31337, escrow {domain.verifying_contract})"
    )
    other = Eip712Domain(chain_id=1, verifying_contract=domain.verifying_contract)
    assert stop_message(42, other) != stop_message(42, domain), "a stop names its market"
    with pytest.raises(EvidenceError):
        stop_message(-1, domain)


@settings(max_examples=40, deadline=None)
@given(
    lease_id=st.integers(0, 2**64 - 1),
    sequence=st.integers(1, 2**64 - 1),
    time=st.integers(0, 2**64 - 1),
    state=st.sampled_from([s for s in JobState if s is not JobState.REJECTED]),
    telemetry=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
)
def test_any_receipt_hashes_like_eth_abi_and_round_trips(lease_id, sequence, time, state, telemetry):
    receipt = make_receipt(
        lease_id=lease_id, sequence=sequence, time=time, job_state=state, telemetry=telemetry
    )
    assert receipt.hash(DOMAIN) == independent_receipt_hash(receipt)
    signature = sign_receipt(receipt, OTHER_KEY, DOMAIN)
    assert Receipt.from_json(json.loads(json.dumps(receipt.to_json(signature)))) == (receipt, signature)
