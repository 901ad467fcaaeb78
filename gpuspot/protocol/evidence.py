"""Delivery evidence: signed receipts of a lease's job, and signed commitments to challenge answers (pure,
no I/O). docs/evidence.md is the contract; the matcher, the provider agent and anyone re-checking share it.

A receipt is hashed with `abi.encode` under tags that bind it to one market (chain id and escrow), and signed
with EIP-191 `personal_sign` over the 32 hash bytes, so that any wallet can produce and check it. Documents
inside a receipt (telemetry, the outputs digest's document) are hashed as canonical JSON: UTF-8, keys sorted,
no whitespace, integers only, so that every implementation hashes the same bytes.

Import the module (`from gpuspot.protocol import evidence`); it is not re-exported by the package.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from gpuspot.protocol import abi
from gpuspot.protocol.errors import AbiEncodingError, InvalidSignatureError, ProtocolError
from gpuspot.protocol.hashing import keccak256
from gpuspot.protocol.orders import Eip712Domain, Signature, recover_digest_signer, sign_digest

__all__ = [
    "COMMIT_TAG",
    "RECEIPT_TAG",
    "EvidenceError",
    "JobState",
    "Receipt",
    "canonical_json",
    "commitment_hash",
    "output_digest",
    "recover_commitment_signer",
    "recover_receipt_signer",
    "sign_commitment",
    "sign_receipt",
    "stop_message",
    "telemetry_hash",
]

RECEIPT_TAG = keccak256(b"gpuspot.receipt.v1")
COMMIT_TAG = keccak256(b"gpuspot.challenge.commit.v1")
ZERO_WORD = b"\x00" * 32

RECEIPT_ENCODING = [
    "bytes32",  # RECEIPT_TAG
    "uint256",  # chainId
    "address",  # escrow
    "uint64",  # leaseId
    "uint64",  # sequence
    "uint64",  # time
    "uint8",  # jobState
    "bytes32",  # telemetryHash
    "bytes32",  # outputDigest
    "bytes32",  # previous
]
COMMIT_ENCODING = ["bytes32", "uint256", "address", "uint64", "uint64", "bytes32"]
_PERSONAL_PREFIX = b"\x19Ethereum Signed Message:\n32"
_RECEIPT_KEYS = frozenset(
    {"lease_id", "sequence", "time", "job_state", "telemetry", "output_digest", "previous", "signature"}
)


class EvidenceError(ProtocolError, ValueError):
    """A receipt, commitment or evidence document is malformed (a bad field, a float, an unknown key)."""


class JobState(IntEnum):
    """The state of a lease's job as the agent reports it; states 2 to 6 end the lease's receipts."""

    PREPARING = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    TIMED_OUT = 4
    REJECTED = 5
    STOPPED = 6

    @property
    def terminal(self) -> bool:
        """A terminal receipt is the lease's last."""
        return self >= JobState.SUCCEEDED


def _check_json(value: object, where: str) -> None:
    """Refuses what canonical JSON cannot carry exactly: floats (and so NaN), non-string keys, other types."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        raise EvidenceError(f"{where} is the float {value!r}: evidence documents carry integers only")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EvidenceError(f"{where} has the key {key!r}: JSON object keys are strings")
            _check_json(item, f"{where}.{key}")
        return
    raise EvidenceError(f"{where} is a {type(value).__name__}: only JSON values (no floats) are allowed")


def canonical_json(value: object) -> bytes:
    """The canonical bytes of a JSON value: UTF-8, keys sorted, separators "," and ":", non-ASCII as is.
    Floats are refused (`EvidenceError`): their text differs between languages, integers' does not."""
    _check_json(value, "the document")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def telemetry_hash(document: object) -> bytes:
    """keccak256 of the telemetry document's canonical JSON."""
    return keccak256(canonical_json(document))


def output_digest(document: dict[str, Any] | None) -> bytes:
    """keccak256 of the outputs document's canonical JSON (`{"outputs": {path: "0x.."}, "stdout": "0x..",
    "stderr": "0x.."}`); the zero word before the job has any (None)."""
    if document is None:
        return ZERO_WORD
    if not isinstance(document, dict):
        raise EvidenceError(
            f"the outputs document must be a JSON object or null, got {type(document).__name__}"
        )
    return keccak256(canonical_json(document))


def _personal_digest(message_hash: bytes) -> bytes:
    """EIP-191 version 0x45 over 32 bytes: what `personal_sign(hash)` and `encode_defunct(primitive=hash)`
    sign."""
    return keccak256(_PERSONAL_PREFIX + message_hash)


def _uint(name: str, value: object, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EvidenceError(f"{name} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def _bytes32(name: str, value: object) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        with contextlib.suppress(ValueError):
            value = bytes.fromhex(value[2:])
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise EvidenceError(f"{name} must be 32 bytes (or 0x and 64 hex digits), got {value!r}")
    return bytes(value)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One signed statement of the agent about its lease (docs/evidence.md, "Receipts").

    Checked at construction: integer ranges, a known job state, JSON documents without floats, a zero
    `previous` exactly at sequence 0, `rejected` only as sequence 0, and `output_digest` equal to the digest
    of `outputs` when the outputs document is given."""

    lease_id: int
    sequence: int
    time: int
    job_state: JobState
    telemetry: dict[str, Any]
    output_digest: bytes
    previous: bytes
    outputs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _uint("lease_id", self.lease_id, 64)
        _uint("sequence", self.sequence, 64)
        _uint("time", self.time, 64)
        if isinstance(self.job_state, bool) or not isinstance(self.job_state, int):
            raise EvidenceError(f"job_state must be an integer 0 to 6, got {self.job_state!r}")
        try:
            object.__setattr__(self, "job_state", JobState(self.job_state))
        except ValueError:
            raise EvidenceError(f"job_state must be 0 to 6 (JobState), got {self.job_state!r}") from None
        if not isinstance(self.telemetry, dict):
            raise EvidenceError(f"telemetry must be a JSON object, got {type(self.telemetry).__name__}")
        _check_json(self.telemetry, "telemetry")
        object.__setattr__(self, "output_digest", _bytes32("output_digest", self.output_digest))
        object.__setattr__(self, "previous", _bytes32("previous", self.previous))
        if (self.sequence == 0) != (self.previous == ZERO_WORD):
            raise EvidenceError(
                f"receipt {self.sequence}: previous must be the zero word exactly at sequence 0, and the "
                "previous receipt's hash after it"
            )
        if self.job_state is JobState.REJECTED and self.sequence != 0:
            raise EvidenceError(
                "a rejected receipt is only valid as sequence 0: the agent refuses a lease before it starts"
            )
        if self.outputs is not None and output_digest(self.outputs) != self.output_digest:
            raise EvidenceError(
                "output_digest is not the digest of the outputs document: send output_digest(outputs)"
            )

    def hash(self, domain: Eip712Domain) -> bytes:
        """`keccak256(abi.encode(RECEIPT_TAG, chainId, escrow, leaseId, sequence, time, jobState,
        telemetryHash, outputDigest, previous))`: what the provider signs (with EIP-191)."""
        try:
            encoded = abi.encode(
                RECEIPT_ENCODING,
                [
                    RECEIPT_TAG,
                    domain.chain_id,
                    domain.verifying_contract,
                    self.lease_id,
                    self.sequence,
                    self.time,
                    int(self.job_state),
                    telemetry_hash(self.telemetry),
                    self.output_digest,
                    self.previous,
                ],
            )
        except AbiEncodingError as exc:  # pragma: no cover - construction checked every field
            raise EvidenceError(str(exc)) from None
        return keccak256(encoded)

    def to_json(self, signature: Signature) -> dict[str, Any]:
        """The receipt and its signature as a JSON object: integers as numbers, bytes as 0x hex."""
        return {
            "lease_id": self.lease_id,
            "sequence": self.sequence,
            "time": self.time,
            "job_state": int(self.job_state),
            "telemetry": self.telemetry,
            "output_digest": "0x" + self.output_digest.hex(),
            "previous": "0x" + self.previous.hex(),
            "outputs": self.outputs,
            "signature": signature.hex(),
        }

    @classmethod
    def from_json(cls, document: object) -> tuple[Receipt, Signature]:
        """Parses `to_json`'s form (integers as JSON numbers or decimal strings; `outputs` may be left out).
        Unknown members are refused: a field the signer added is not signed."""
        if not isinstance(document, dict):
            raise EvidenceError("a receipt must be a JSON object")
        keys = set(document)
        missing = sorted(_RECEIPT_KEYS - keys)
        extra = sorted(keys - _RECEIPT_KEYS - {"outputs"})
        if missing or extra:
            raise EvidenceError(f"receipt members do not match: missing {missing}, unexpected {extra}")
        try:
            signature = Signature(document["signature"])
        except InvalidSignatureError as exc:
            raise EvidenceError(f"receipt signature: {exc}") from None
        outputs = document.get("outputs")
        if outputs is not None and not isinstance(outputs, dict):
            raise EvidenceError("outputs must be a JSON object or null")
        receipt = cls(
            lease_id=_parse_int("lease_id", document["lease_id"]),
            sequence=_parse_int("sequence", document["sequence"]),
            time=_parse_int("time", document["time"]),
            job_state=_parse_int("job_state", document["job_state"]),  # type: ignore[arg-type]
            telemetry=document["telemetry"],
            output_digest=_bytes32("output_digest", document["output_digest"]),
            previous=_bytes32("previous", document["previous"]),
            outputs=outputs,
        )
        return receipt, signature


def _parse_int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
        return int(value)
    raise EvidenceError(f"{name} must be an integer (a JSON number or a decimal string), got {value!r}")


def sign_receipt(receipt: Receipt, private_key: bytes | str, domain: Eip712Domain) -> Signature:
    """The provider's EIP-191 signature of the receipt's hash (`personal_sign` of the 32 bytes)."""
    return sign_digest(_personal_digest(receipt.hash(domain)), private_key)


def recover_receipt_signer(receipt: Receipt, signature: Signature, domain: Eip712Domain) -> str:
    """The checksummed address that signed the receipt; compare it with the lease's provider."""
    return recover_digest_signer(_personal_digest(receipt.hash(domain)), signature)


def commitment_hash(domain: Eip712Domain, lease_id: int, sequence: int, root: bytes) -> bytes:
    """`keccak256(abi.encode(COMMIT_TAG, chainId, escrow, uint64 leaseId, uint64 sequence, bytes32 root))`:
    the provider's commitment to its answer of challenge `sequence` of `lease_id`."""
    _uint("lease_id", lease_id, 64)
    _uint("sequence", sequence, 64)
    encoded = abi.encode(
        COMMIT_ENCODING,
        [COMMIT_TAG, domain.chain_id, domain.verifying_contract, lease_id, sequence, _bytes32("root", root)],
    )
    return keccak256(encoded)


def sign_commitment(
    domain: Eip712Domain, lease_id: int, sequence: int, root: bytes, private_key: bytes | str
) -> Signature:
    """The provider's EIP-191 signature of `commitment_hash(...)`."""
    return sign_digest(_personal_digest(commitment_hash(domain, lease_id, sequence, root)), private_key)


def recover_commitment_signer(
    domain: Eip712Domain, lease_id: int, sequence: int, root: bytes, signature: Signature
) -> str:
    """The checksummed address that signed the commitment."""
    return recover_digest_signer(
        _personal_digest(commitment_hash(domain, lease_id, sequence, root)), signature
    )


def stop_message(lease_id: int, domain: Eip712Domain) -> str:
    """The text a buyer signs (EIP-191 `personal_sign`) to ask the provider to stop a lease early. It names
    the market (chain id and escrow): lease ids are per market, so a stop signed for one cannot be replayed
    against a lease with the same id in another."""
    return (
        f"gpuspot: stop lease {_uint('lease_id', lease_id, 64)} "
        f"(chain {domain.chain_id}, escrow {domain.verifying_contract})"
    )
