"""Escrow balances for many accounts in one round trip: intake reads every buyer of a round at once, and
keeps what it read until the chain says the account changed (`BalanceCache`).

`accountOf(address)` is called with hand-encoded calldata in one JSON-RPC batch (a list of `eth_call`s in one
HTTP request) at one block, so a round of a few hundred buyers costs one request instead of a few hundred,
each paying web3's formatting. A provider without batch support gets one call per account.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, cast

from eth_typing import HexStr
from web3 import Web3
from web3.types import BlockIdentifier, TxParams

from gpuspot.protocol import keccak256
from matcher.chain.errors import ChainError

__all__ = ["ACCOUNT_OF", "BalanceCache", "available_balances"]

ACCOUNT_OF = keccak256(b"accountOf(address)")[:4]
"""The selector of `Escrow.accountOf(address) returns (uint256 available, uint256 reserved)`."""
BATCH = 500
"""`eth_call`s per JSON-RPC batch request."""


def _calldata(account: str) -> str:
    return "0x" + ACCOUNT_OF.hex() + "00" * 12 + account[2:].lower()


def _available(result: Any, account: str) -> int:
    data = bytes.fromhex(result[2:]) if isinstance(result, str) else bytes(result)
    if len(data) != 64:
        raise ChainError(
            f"accountOf({account}) returned {len(data)} bytes, not 64: is the deployment file's escrow "
            "address right?"
        )
    return int.from_bytes(data[:32], "big")


def available_balances(
    web3: Web3, escrow: str, accounts: Collection[str], block: str | int = "latest"
) -> dict[str, int]:
    """`accountOf(account).available` in the escrow for each account, read at `block`."""
    wanted = list(dict.fromkeys(accounts))
    tag = block if isinstance(block, str) else hex(block)
    out: dict[str, int] = {}
    batch = getattr(web3.provider, "make_batch_request", None)
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        if batch is None or len(chunk) == 1:
            for account in chunk:
                call: TxParams = {"to": Web3.to_checksum_address(escrow), "data": HexStr(_calldata(account))}
                out[account] = _available(web3.eth.call(call, cast(BlockIdentifier, block)), account)
            continue
        calls = [("eth_call", [{"to": escrow, "data": _calldata(a)}, tag]) for a in chunk]
        responses = batch(calls)
        if not isinstance(responses, list) or len(responses) != len(chunk):
            raise ChainError(f"the node answered a batch of {len(chunk)} balance reads with {responses!r}")
        for account, response in zip(chunk, responses, strict=True):
            if "error" in response or "result" not in response:
                raise ChainError(f"reading accountOf({account}) failed: {response.get('error', response)}")
            out[account] = _available(response["result"], account)
    return out


class BalanceCache:
    """Escrow `available` balances read from the chain and kept until an event about the account arrives
    (`forget`), a reorg (`clear`), or `ttl` seconds pass.

    Why a cached balance is safe to accept bids against: an account's `available` only falls on-chain by a
    lease lock (whose cost intake already holds back until the mirror sees the lock, and the same chain
    sync forgets the balance) or a withdrawal (announced by a request the mirror sees, after which intake
    refuses the buyer's bids). Rises (deposits, refunds) can leave it low; the service re-reads the balance
    before refusing a bid for it."""

    def __init__(
        self,
        web3: Web3,
        escrow: str,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._web3 = web3
        self._escrow = escrow
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.reads = 0

    def get_many(self, accounts: Collection[str]) -> tuple[dict[str, int], set[str]]:
        """Each account's balance, and which of them came from the cache (the rest were read now)."""
        now = self._clock()
        with self._lock:
            cached = {
                a: entry[1]
                for a in accounts
                if (entry := self._entries.get(a)) is not None and now - entry[0] <= self._ttl
            }
        missing = [a for a in accounts if a not in cached]
        return {**cached, **self.refresh(missing)}, set(cached)

    def refresh(self, accounts: Collection[str]) -> dict[str, int]:
        """Reads the accounts' balances from the chain now, and keeps them."""
        if not accounts:
            return {}
        read_at = self._clock()
        fresh = available_balances(self._web3, self._escrow, accounts)
        with self._lock:
            self.reads += 1
            for account, balance in fresh.items():
                self._entries[account] = (read_at, balance)
        return fresh

    def forget(self, accounts: Iterable[str]) -> None:
        with self._lock:
            for account in accounts:
                self._entries.pop(account, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
