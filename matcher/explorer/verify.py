""" "Verify" on a batch page: does this leaf, with its proof, hash up to the root the escrow holds on-chain?

Pure apart from the root, which the caller reads from the chain (`ChainReader.batch_root` at a block it
names). The leaf comes from the form's fields, so a user who edits a field (or asks for `tamper`) sees the
check fail: the proof no longer leads to the posted root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from gpuspot.protocol.errors import ProtocolError
from gpuspot.protocol.leaves import LEAF_ENCODING, SettlementLeaf
from gpuspot.protocol.merkle import process_proof, standard_leaf_hash

__all__ = ["LEAF_FIELDS", "LeafVerdict", "leaf_fields", "parse_leaf", "tampered", "verify_leaf"]

LEAF_FIELDS = (
    "kind",
    "batch_id",
    "lease_id",
    "bid_digest",
    "buyer",
    "provider",
    "product",
    "gpus",
    "duration",
    "price_per_gpu_hour",
    "used_gpu_seconds",
)
"""The leaf's fields in `LEAF_ENCODING` order, as the form names them."""
_BYTES32 = frozenset({"bid_digest", "product"})
_ADDRESSES = frozenset({"buyer", "provider"})


@dataclass(frozen=True, slots=True)
class LeafVerdict:
    """The check's result and everything it used, for the page to state: the leaf's hash, the proof (depth
    D = its length), the root the proof leads to, and the root read from the chain at `chain_block`."""

    ok: bool
    leaf_hash: bytes | None
    proof: tuple[bytes, ...]
    computed_root: bytes | None
    chain_root: bytes
    chain_block: int
    problem: str | None

    @property
    def depth(self) -> int:
        return len(self.proof)


def leaf_fields(leaf: SettlementLeaf) -> dict[str, str]:
    """The leaf as form fields: integers in decimal, bytes as 0x hex, addresses checksummed."""
    out: dict[str, str] = {}
    for name, value in zip(LEAF_FIELDS, leaf.values(), strict=True):
        out[name] = "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)
    return out


def tampered(fields: Mapping[str, str]) -> dict[str, str]:
    """The same fields with the price raised by one base unit: what a matcher that overcharged would show."""
    changed = dict(fields)
    changed["price_per_gpu_hour"] = str(int(fields["price_per_gpu_hour"]) + 1)
    return changed


def _value(name: str, text: str) -> Any:
    text = text.strip()
    if name in _BYTES32:
        if not (text.startswith("0x") and len(text) == 66):
            raise ValueError(f"{name} must be 0x and 64 hex digits, got {text!r}")
        return bytes.fromhex(text[2:])
    if name in _ADDRESSES:
        if not is_address(text):
            raise ValueError(f"{name} must be an address, got {text!r}")
        return str(to_checksum_address(text))
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def parse_leaf(fields: Mapping[str, str]) -> SettlementLeaf:
    """The leaf the form describes; `ValueError` saying which field is wrong."""
    missing = [name for name in LEAF_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"the leaf is missing {', '.join(missing)}")
    try:
        return SettlementLeaf(*(_value(name, fields[name]) for name in LEAF_FIELDS))
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None


def verify_leaf(
    fields: Mapping[str, str], proof: Sequence[bytes], chain_root: bytes, chain_block: int
) -> LeafVerdict:
    """Hashes the leaf the fields describe, runs the proof from it, and compares with `chain_root`."""
    if chain_root == b"\x00" * 32:
        return LeafVerdict(
            False, None, tuple(proof), None, chain_root, chain_block, "no root is posted for this batch"
        )
    try:
        leaf = parse_leaf(fields)
    except ValueError as exc:
        return LeafVerdict(
            False, None, tuple(proof), None, chain_root, chain_block, f"the leaf does not parse: {exc}"
        )
    leaf_hash = standard_leaf_hash(LEAF_ENCODING, leaf.values())
    computed = process_proof(leaf_hash, proof)
    ok = computed == chain_root
    problem = (
        None if ok else "the proof from this leaf leads to another root: the leaf is not in the posted tree"
    )
    return LeafVerdict(ok, leaf_hash, tuple(proof), computed, chain_root, chain_block, problem)
