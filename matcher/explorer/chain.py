"""What the explorer reads from the chain itself, not from the matcher's mirror: the head, a batch's root as
the escrow holds it (for "verify"), an account's escrow balance, a provider's stake, block times.

`ChainReader` is the port; `Web3ChainReader` the adapter over the matcher's web3 connection. A node that does
not answer raises `ChainUnavailableError`, which the pages show as "chain unreachable" instead of failing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from web3 import Web3

from matcher.chain import ESCROW, PROVIDER_REGISTRY, load_abi
from matcher.errors import MatcherError

__all__ = ["BlockHead", "ChainReader", "ChainUnavailableError", "Web3ChainReader"]

_SYMBOL_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    }
]
_BLOCK_TIMES = 4_096


class ChainUnavailableError(MatcherError):
    """The node did not answer a read: the page says so and shows what the store knows."""


@dataclass(frozen=True, slots=True)
class BlockHead:
    number: int
    hash: bytes
    timestamp: int


class ChainReader(Protocol):
    def head(self) -> BlockHead: ...

    def batch_root(self, batch_id: int, block: int) -> tuple[bytes, int]:
        """`Escrow.batchRoot(batch_id)` at `block`: (root, postedAt); a zero root when none is posted."""
        ...

    def escrow_account(self, address: str) -> tuple[int, int]:
        """`Escrow.accountOf(address)`: (available, reserved) in base units."""
        ...

    def provider_stake(self, address: str) -> int:
        """`ProviderRegistry.providerOf(address).stake` in base units."""
        ...

    def block_time(self, number: int) -> int: ...

    def token_symbol(self) -> str: ...


class Web3ChainReader:
    """`ChainReader` over web3.py; block times and the token symbol are cached (they never change)."""

    def __init__(self, web3: Web3, *, escrow: str, registry: str, token: str) -> None:
        self._web3 = web3
        self._escrow = web3.eth.contract(address=Web3.to_checksum_address(escrow), abi=list(load_abi(ESCROW)))
        self._registry = web3.eth.contract(
            address=Web3.to_checksum_address(registry), abi=list(load_abi(PROVIDER_REGISTRY))
        )
        self._token = web3.eth.contract(address=Web3.to_checksum_address(token), abi=_SYMBOL_ABI)
        self._symbol: str | None = None
        self._times: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # any transport or decoding failure: the page degrades, it does not fail
            raise ChainUnavailableError(f"the node did not answer {what}: {exc}") from exc

    def head(self) -> BlockHead:
        block = self._call("eth_getBlockByNumber(latest)", self._web3.eth.get_block, "latest")
        return BlockHead(int(block["number"]), bytes(block["hash"]), int(block["timestamp"]))

    def batch_root(self, batch_id: int, block: int) -> tuple[bytes, int]:
        root, posted_at = self._call(
            f"batchRoot({batch_id})", self._escrow.functions.batchRoot(batch_id).call, block_identifier=block
        )
        return bytes(root), int(posted_at)

    def escrow_account(self, address: str) -> tuple[int, int]:
        available, reserved = self._call(
            f"accountOf({address})", self._escrow.functions.accountOf(Web3.to_checksum_address(address)).call
        )
        return int(available), int(reserved)

    def provider_stake(self, address: str) -> int:
        found = self._call(
            f"providerOf({address})",
            self._registry.functions.providerOf(Web3.to_checksum_address(address)).call,
        )
        return int(found[0])

    def block_time(self, number: int) -> int:
        with self._lock:
            if number in self._times:
                return self._times[number]
        block = self._call(f"block {number}", self._web3.eth.get_block, number)
        with self._lock:
            self._times[number] = int(block["timestamp"])
            while len(self._times) > _BLOCK_TIMES:
                self._times.popitem(last=False)
        return int(block["timestamp"])

    def token_symbol(self) -> str:
        if self._symbol is None:
            try:
                self._symbol = str(self._call("symbol()", self._token.functions.symbol().call))
            except ChainUnavailableError:
                return "tokens"  # not cached: the next page asks again
        return self._symbol
