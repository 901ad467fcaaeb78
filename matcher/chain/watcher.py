"""Follows the Escrow's and the ProviderRegistry's events from a saved cursor, and notices reorganisations.

`ChainWatcher.poll(cursor)` reads the blocks from `cursor.next_block` up to `head - confirmations`, in
`eth_getLogs` requests of at most `max_block_range` blocks (at most `max_ranges_per_poll` of them per poll, so
a long catch-up is a series of polls), and returns the decoded events in chain order with the cursor to save
next. The service stores the events and the new cursor in one transaction; if it crashes before, it polls
again from the old cursor and gets the same events.

Reorgs: the cursor keeps the hashes of the last `reorg_depth` blocks it processed. Each poll first compares
the newest one with the node's block at that height; if it differs (or the block is gone), it walks back
through the kept hashes to the newest block that still matches, rewinds the cursor to the block after it, and
returns a `Reorg(from_block)` marker before the events re-read from there. The service drops everything it
learned from blocks `>= from_block` when it sees the marker. A reorg below every kept hash raises
`ReorgTooDeepError`. A poll that races a reorg (the head's hash changes while it reads, or a log's block hash
is not the one it recorded) keeps the old cursor and returns no events; the next poll sees the reorg in the
kept hashes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_typing import BlockNumber, HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, Web3RPCError
from web3.types import FilterParams, LogReceipt

from gpuspot.deployment import Deployment
from matcher.chain.abi import ESCROW, PROVIDER_REGISTRY, load_abi
from matcher.chain.errors import ChainError, ChainMismatchError, InvalidCursorError, ReorgTooDeepError
from matcher.chain.events import ChainEvent, EventDecoder
from matcher.chain.retry import RetryPolicy, endpoint_of

__all__ = ["BlockRef", "ChainCursor", "ChainWatcher", "Reorg", "WatcherItem"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class BlockRef:
    """A block the watcher processed: its number and hash."""

    number: int
    hash: bytes


@dataclass(frozen=True)
class ChainCursor:
    """Where the watcher stands: the next block to read, and the last processed blocks' hashes (oldest
    first, the newest being block `next_block - 1`) for reorg detection."""

    next_block: int
    recent_blocks: tuple[BlockRef, ...] = ()

    def __post_init__(self) -> None:
        if self.next_block < 0:
            raise InvalidCursorError(f"cursor next_block {self.next_block} is negative")
        numbers = [ref.number for ref in self.recent_blocks]
        expected = list(range(self.next_block - len(numbers), self.next_block))
        if numbers != expected or any(len(ref.hash) != 32 for ref in self.recent_blocks):
            raise InvalidCursorError(
                f"cursor's recent blocks {numbers} must be consecutive 32-byte hashes ending at block "
                f"{self.next_block - 1}"
            )

    @classmethod
    def start(cls, first_block: int) -> ChainCursor:
        """A cursor that has read nothing yet: its first poll reads from `first_block` (the deployment's
        `block_number`)."""
        return cls(next_block=first_block)

    @property
    def last_block(self) -> BlockRef | None:
        """The last processed block, if any."""
        return self.recent_blocks[-1] if self.recent_blocks else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "next_block": self.next_block,
                "recent_blocks": [[ref.number, "0x" + ref.hash.hex()] for ref in self.recent_blocks],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ChainCursor:
        try:
            raw = json.loads(text)
            refs = tuple(
                BlockRef(int(number), bytes.fromhex(h.removeprefix("0x")))
                for number, h in raw["recent_blocks"]
            )
            return cls(next_block=int(raw["next_block"]), recent_blocks=refs)
        except InvalidCursorError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidCursorError(
                f"saved watcher cursor is not valid ({type(exc).__name__}: {exc}); expected "
                '{"next_block": N, "recent_blocks": [[N, "0x<32-byte hash>"], ...]}. '
                "Delete it to resync from the deployment block"
            ) from None


@dataclass(frozen=True)
class Reorg:
    """The chain reorganised: events from blocks `>= from_block` that earlier polls returned are void; the
    events that follow this marker in the same poll replace them."""

    from_block: int


WatcherItem = ChainEvent | Reorg


@dataclass(frozen=True)
class _Header:
    number: int
    hash: bytes
    parent_hash: bytes


class ChainWatcher:
    """Reads the market's events from the chain, in bounded ranges, behind a confirmation lag."""

    def __init__(
        self,
        web3: Web3,
        escrow: str,
        registry: str,
        *,
        confirmations: int = 12,
        reorg_depth: int = 64,
        max_block_range: int = 2_000,
        max_ranges_per_poll: int = 10,
        retry: RetryPolicy | None = None,
        decoder: EventDecoder | None = None,
    ) -> None:
        if confirmations < 0 or reorg_depth < 1 or max_block_range < 1 or max_ranges_per_poll < 1:
            raise ValueError(
                "confirmations must be >= 0 and reorg_depth, max_block_range, max_ranges_per_poll >= 1"
            )
        self._web3 = web3
        self._endpoint = endpoint_of(web3)
        self._addresses = [Web3.to_checksum_address(escrow), Web3.to_checksum_address(registry)]
        self.confirmations = confirmations
        self.reorg_depth = reorg_depth
        self.max_block_range = max_block_range
        self.max_ranges_per_poll = max_ranges_per_poll
        self._retry = retry or RetryPolicy()
        self._decoder = decoder or EventDecoder(
            web3,
            {ESCROW: (escrow, load_abi(ESCROW)), PROVIDER_REGISTRY: (registry, load_abi(PROVIDER_REGISTRY))},
        )

    @classmethod
    def from_deployment(cls, web3: Web3, deployment: Deployment, **options: Any) -> ChainWatcher:
        """A watcher of `deployment`'s contracts; refuses a node that serves another chain."""
        retry = options.get("retry") or RetryPolicy()
        chain_id = retry.call("read the chain id", lambda: web3.eth.chain_id, endpoint=endpoint_of(web3))
        if chain_id != deployment.chain_id:
            raise ChainMismatchError(
                f"the node at {endpoint_of(web3)} serves chain {chain_id}, but the deployment file is for "
                f"chain {deployment.chain_id}: point the matcher at the right RPC URL or deployment file"
            )
        return cls(web3, deployment.escrow, deployment.registry, **options)

    def start_cursor(self, deployment: Deployment) -> ChainCursor:
        """The cursor of a watcher that has read nothing: from the block the contracts were deployed in."""
        return ChainCursor.start(deployment.block_number)

    def safe_head(self) -> int:
        """The newest block a poll reads: head minus the confirmation lag."""
        return self._head() - self.confirmations

    def poll(self, cursor: ChainCursor) -> tuple[list[WatcherItem], ChainCursor]:
        """Events from `cursor.next_block` to the safe head (bounded per poll), after a `Reorg` marker if the
        chain replaced blocks the cursor had processed; and the cursor to save with them."""
        head = self._head()
        items: list[WatcherItem] = []
        cursor, reorg = self._rewind_if_reorged(cursor)
        if reorg is not None:
            items.append(reorg)
        last_readable = head - self.confirmations
        if last_readable < cursor.next_block:
            return items, cursor
        to_block = min(last_readable, cursor.next_block + self.max_block_range * self.max_ranges_per_poll - 1)

        tail = self._tail(cursor, to_block)
        if tail is None:
            return items, cursor
        raw_logs = self._logs(cursor.next_block, to_block)
        if self._header(to_block) != tail[-1]:
            log.info("block %d changed while reading logs; reading again next poll", to_block)
            return items, cursor
        tail_hashes = {header.number: header.hash for header in tail}
        for raw in raw_logs:
            expected = tail_hashes.get(int(raw["blockNumber"]))
            if expected is not None and bytes(raw["blockHash"]) != expected:
                log.info(
                    "a log of block %d is from another fork; reading again next poll", raw["blockNumber"]
                )
                return items, cursor

        events = [event for event in map(self._decoder.decode, raw_logs) if event is not None]
        events.sort(key=lambda event: event.position)
        items.extend(events)
        recent = cursor.recent_blocks + tuple(BlockRef(header.number, header.hash) for header in tail)
        new_cursor = ChainCursor(next_block=to_block + 1, recent_blocks=recent[-self.reorg_depth :])
        log.debug("read blocks %d..%d: %d events", cursor.next_block, to_block, len(events))
        return items, new_cursor

    # --- reorgs

    def _rewind_if_reorged(self, cursor: ChainCursor) -> tuple[ChainCursor, Reorg | None]:
        last = cursor.last_block
        if last is None or self._hash_at(last.number) == last.hash:
            return cursor, None
        kept = list(cursor.recent_blocks[:-1])
        while kept and self._hash_at(kept[-1].number) != kept[-1].hash:
            kept.pop()
        if not kept:
            oldest = cursor.recent_blocks[0].number
            raise ReorgTooDeepError(
                f"the chain replaced every block the cursor keeps ({oldest}..{last.number}): events already "
                "handed out may be void. Rebuild the matcher's chain state from the deployment block, and "
                f"raise reorg_depth (now {self.reorg_depth}) or confirmations (now {self.confirmations})"
            )
        from_block = kept[-1].number + 1
        log.warning("chain reorganised from block %d (was up to %d); re-reading", from_block, last.number)
        return ChainCursor(next_block=from_block, recent_blocks=tuple(kept)), Reorg(from_block)

    def _tail(self, cursor: ChainCursor, to_block: int) -> list[_Header] | None:
        """Headers of the range's last `reorg_depth` blocks, linked by parent hash to each other and to the
        cursor's last block; None if they do not link (a reorg under way)."""
        start = max(cursor.next_block, to_block - self.reorg_depth + 1)
        headers: list[_Header] = []
        for number in range(start, to_block + 1):
            header = self._header(number)
            if header is None:
                return None
            headers.append(header)
        previous = cursor.last_block if start == cursor.next_block else None
        parents = [previous.hash if previous else None] + [header.hash for header in headers[:-1]]
        for header, parent in zip(headers, parents, strict=True):
            if parent is not None and header.parent_hash != parent:
                log.info("block %d does not extend the blocks read; reading again next poll", header.number)
                return None
        return headers

    # --- node reads (all idempotent, all retried)

    def _read(self, what: str, operation: Callable[[], T]) -> T:
        return self._retry.call(what, operation, endpoint=self._endpoint)

    def _head(self) -> int:
        return int(self._read("read the block number", lambda: self._web3.eth.block_number))

    def _header(self, number: int) -> _Header | None:
        def fetch() -> _Header | None:
            try:
                block = self._web3.eth.get_block(BlockNumber(number))
            except BlockNotFound:
                return None
            return _Header(int(block["number"]), bytes(block["hash"]), bytes(block["parentHash"]))

        return self._read(f"read block {number}", fetch)

    def _hash_at(self, number: int) -> bytes | None:
        header = self._header(number)
        return header.hash if header else None

    def _logs(self, from_block: int, to_block: int) -> list[LogReceipt]:
        """All matching logs of [from_block, to_block], `max_block_range` blocks per request; a request the
        node refuses (too many blocks or results) is split in halves."""
        logs: list[LogReceipt] = []
        pending = [
            (start, min(to_block, start + self.max_block_range - 1))
            for start in range(from_block, to_block + 1, self.max_block_range)
        ]
        while pending:
            start, end = pending.pop(0)
            try:
                logs.extend(self._get_logs(start, end))
            except Web3RPCError as exc:
                if start == end:
                    raise ChainError(
                        f"the node at {self._endpoint} refused eth_getLogs for block {start}: {exc}"
                    ) from exc
                middle = (start + end) // 2
                log.info("eth_getLogs %d..%d refused (%s); splitting", start, end, exc)
                pending[:0] = [(start, middle), (middle + 1, end)]
        return logs

    def _get_logs(self, start: int, end: int) -> Sequence[LogReceipt]:
        params: FilterParams = {
            "fromBlock": BlockNumber(start),
            "toBlock": BlockNumber(end),
            "address": self._addresses,
            "topics": [[HexStr(HexBytes(topic).to_0x_hex()) for topic in self._decoder.topics]],
        }
        return self._read(f"read logs of blocks {start}..{end}", lambda: self._web3.eth.get_logs(params))
