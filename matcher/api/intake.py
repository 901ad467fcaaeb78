"""Order submissions, coalesced on the event loop: the submissions that arrive together make one intake round.

The submit routes are `async`: each puts its orders on a list and waits; the first one also schedules a
flush on the loop, which runs the round (`MatcherService.admit`, verify + one state read + one commit) right
there, on the loop's thread, and answers every waiting request. While a round runs, new requests queue in the
kernel and arrive together for the next one, so rounds grow with the load without a timer.

Why on the loop and not in the thread pool: a round is short (milliseconds) and is the one place where
orders are serialized anyway; run from pool threads, it would contend for the GIL with the loop's HTTP work
and wait out a switch interval at every database call (measured: about 3 times slower at 32 connections).
"""

from __future__ import annotations

import asyncio

from matcher.service import Admitted, MatcherService

__all__ = ["LoopIntake"]


class LoopIntake:
    """Coalesces one event loop's order submissions into intake rounds of at most `max_items` orders."""

    def __init__(self, service: MatcherService, max_items: int = 5_000) -> None:
        self._service = service
        self._max_items = max_items
        self._pending: list[tuple[list[object], asyncio.Future[list[Admitted]]]] = []
        self._scheduled = False

    async def submit(self, payloads: list[object]) -> list[Admitted]:
        """Each payload's outcome, in order, once the round that takes them has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Admitted]] = loop.create_future()
        self._pending.append((payloads, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            taken: list[tuple[list[object], asyncio.Future[list[Admitted]]]] = []
            count = 0
            while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
                taken.append(self._pending.pop(0))
                count += len(taken[-1][0])
            items = [payload for payloads, _ in taken for payload in payloads]
            try:
                results = self._service.admit(items)
            except Exception as exc:  # the store or the chain failed: every request of the round hears it
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for payloads, future in taken:
                if not future.done():  # the client may have gone away
                    future.set_result(results[start : start + len(payloads)])
                start += len(payloads)
