"""Typed events of the Escrow and the ProviderRegistry, and the decoder from raw logs.

Each event is a frozen dataclass named like the Solidity event, with the event's arguments in snake_case and
the log's position (`block_number`, `block_hash`, `tx_hash`, `log_index`). Amounts, ids and times are `int`,
hashes and roots `bytes`, addresses checksummed strings. `EventDecoder` checks at construction that the
compiled ABI still has exactly these arguments, so a contract change fails loudly at start, not mid-stream.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, cast

from eth_typing import ABIEvent, ChecksumAddress
from eth_utils.abi import event_abi_to_log_topic
from web3 import Web3
from web3._utils.events import get_event_data  # web3's log decoder; the public one needs a contract
from web3.types import LogReceipt

from matcher.chain.abi import ESCROW, PROVIDER_REGISTRY, Abi
from matcher.chain.errors import ChainError

__all__ = [
    "ESCROW_EVENTS",
    "REGISTRY_EVENTS",
    "ArbiterChanged",
    "ChainEvent",
    "Deposited",
    "EventDecoder",
    "ExitRequested",
    "LeaseLocked",
    "LeaseReclaimed",
    "LeaseSettled",
    "MetadataUpdated",
    "NoncesInvalidated",
    "OperatorChanged",
    "ProviderExited",
    "ProviderRegistered",
    "ProviderSlashed",
    "RootPosted",
    "StakeAdded",
    "WithdrawalCancelled",
    "WithdrawalRequested",
    "Withdrawn",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ChainEvent:
    """Where an event was emitted; the subclasses add its arguments."""

    contract: ClassVar[str]
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int

    @property
    def position(self) -> tuple[int, int]:
        """The event's order on the chain: (block number, log index)."""
        return (self.block_number, self.log_index)


# --- Escrow


@dataclass(frozen=True, kw_only=True)
class Deposited(ChainEvent):
    contract: ClassVar[str] = ESCROW
    account: ChecksumAddress
    amount: int


@dataclass(frozen=True, kw_only=True)
class WithdrawalRequested(ChainEvent):
    contract: ClassVar[str] = ESCROW
    account: ChecksumAddress
    amount: int
    available_at: int


@dataclass(frozen=True, kw_only=True)
class WithdrawalCancelled(ChainEvent):
    contract: ClassVar[str] = ESCROW
    account: ChecksumAddress


@dataclass(frozen=True, kw_only=True)
class Withdrawn(ChainEvent):
    contract: ClassVar[str] = ESCROW
    account: ChecksumAddress
    amount: int


@dataclass(frozen=True, kw_only=True)
class NoncesInvalidated(ChainEvent):
    contract: ClassVar[str] = ESCROW
    account: ChecksumAddress
    word_pos: int
    closed_lanes: int


@dataclass(frozen=True, kw_only=True)
class RootPosted(ChainEvent):
    contract: ClassVar[str] = ESCROW
    batch_id: int
    root: bytes
    posted_at: int


@dataclass(frozen=True, kw_only=True)
class LeaseLocked(ChainEvent):
    contract: ClassVar[str] = ESCROW
    lease_id: int
    buyer: ChecksumAddress
    provider: ChecksumAddress
    batch_id: int
    nonce: int
    bid_digest: bytes
    reserved: int


@dataclass(frozen=True, kw_only=True)
class LeaseSettled(ChainEvent):
    contract: ClassVar[str] = ESCROW
    lease_id: int
    used_gpu_seconds: int
    paid: int
    refunded: int
    closed: bool


@dataclass(frozen=True, kw_only=True)
class LeaseReclaimed(ChainEvent):
    contract: ClassVar[str] = ESCROW
    lease_id: int
    refunded: int


@dataclass(frozen=True, kw_only=True)
class OperatorChanged(ChainEvent):
    contract: ClassVar[str] = ESCROW
    previous_operator: ChecksumAddress
    new_operator: ChecksumAddress


# --- ProviderRegistry


@dataclass(frozen=True, kw_only=True)
class ProviderRegistered(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    stake: int
    metadata_hash: bytes


@dataclass(frozen=True, kw_only=True)
class StakeAdded(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    amount: int
    stake: int


@dataclass(frozen=True, kw_only=True)
class MetadataUpdated(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    metadata_hash: bytes


@dataclass(frozen=True, kw_only=True)
class ExitRequested(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    exit_available_at: int


@dataclass(frozen=True, kw_only=True)
class ProviderExited(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    stake_returned: int


@dataclass(frozen=True, kw_only=True)
class ProviderSlashed(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    provider: ChecksumAddress
    recipient: ChecksumAddress
    amount: int
    stake_left: int
    reason: bytes


@dataclass(frozen=True, kw_only=True)
class ArbiterChanged(ChainEvent):
    contract: ClassVar[str] = PROVIDER_REGISTRY
    previous_arbiter: ChecksumAddress
    new_arbiter: ChecksumAddress


ESCROW_EVENTS: tuple[type[ChainEvent], ...] = (
    Deposited,
    WithdrawalRequested,
    WithdrawalCancelled,
    Withdrawn,
    NoncesInvalidated,
    RootPosted,
    LeaseLocked,
    LeaseSettled,
    LeaseReclaimed,
    OperatorChanged,
)
REGISTRY_EVENTS: tuple[type[ChainEvent], ...] = (
    ProviderRegistered,
    StakeAdded,
    MetadataUpdated,
    ExitRequested,
    ProviderExited,
    ProviderSlashed,
    ArbiterChanged,
)

_POSITION_FIELDS = frozenset(field.name for field in fields(ChainEvent))


def snake_case(name: str) -> str:
    """`usedGpuSeconds` -> `used_gpu_seconds`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class _EventSpec:
    cls: type[ChainEvent]
    abi: dict[str, Any]
    argument_names: tuple[tuple[str, str], ...]  # (ABI name, field name)


class EventDecoder:
    """Decodes raw logs of the escrow and the registry into `ChainEvent`s; other logs (ownership transfers,
    the EIP-712 domain event, anything at another address) are skipped."""

    def __init__(self, web3: Web3, contracts: Mapping[str, tuple[str, Abi]]) -> None:
        """`contracts` maps ESCROW and PROVIDER_REGISTRY to (address, ABI)."""
        self._specs: dict[tuple[str, bytes], _EventSpec] = {}
        self._codec = web3.codec
        for name, classes in ((ESCROW, ESCROW_EVENTS), (PROVIDER_REGISTRY, REGISTRY_EVENTS)):
            address, abi = contracts[name]
            checksummed = Web3.to_checksum_address(address)
            by_name = {entry["name"]: entry for entry in abi if entry.get("type") == "event"}
            for cls in classes:
                entry = by_name.get(cls.__name__)
                if entry is None:
                    raise ChainError(
                        f"the compiled ABI of {name} has no event {cls.__name__}: the artifacts are stale or "
                        "from another version of the contracts. Recompile: `ape compile --force`"
                    )
                pairs = tuple((arg["name"], snake_case(arg["name"])) for arg in entry["inputs"])
                expected = {f.name for f in fields(cls)} - _POSITION_FIELDS
                if {field for _, field in pairs} != expected:
                    raise ChainError(
                        f"{name}.{cls.__name__} in the compiled ABI has arguments "
                        f"{[abi_name for abi_name, _ in pairs]}, but matcher.chain expects "
                        f"{sorted(expected)}: recompile (`ape compile --force`) or update "
                        "matcher/chain/events.py"
                    )
                topic = bytes(event_abi_to_log_topic(cast(ABIEvent, entry)))
                self._specs[(checksummed, topic)] = _EventSpec(cls, dict(entry), pairs)

    @property
    def topics(self) -> list[bytes]:
        """topic0 of every event decoded (for an `eth_getLogs` filter)."""
        return sorted({topic for _, topic in self._specs})

    def decode(self, raw: LogReceipt) -> ChainEvent | None:
        """The typed event of one log, or None if it is not one of the events listed above."""
        topics = raw["topics"]
        if not topics:
            return None
        spec = self._specs.get((Web3.to_checksum_address(raw["address"]), bytes(topics[0])))
        if spec is None:
            return None
        data = get_event_data(self._codec, spec.abi, raw)
        values = {field: _plain(data["args"][abi_name]) for abi_name, field in spec.argument_names}
        return spec.cls(
            block_number=int(raw["blockNumber"]),
            block_hash=bytes(raw["blockHash"]),
            tx_hash=bytes(raw["transactionHash"]),
            log_index=int(raw["logIndex"]),
            **values,
        )


def _plain(value: Any) -> Any:
    """HexBytes -> bytes; everything else (int, bool, checksummed address) as decoded."""
    return bytes(value) if isinstance(value, bytes | bytearray) else value
