"""Order submissions, coalesced on the event loop: the submissions that arrive together make one intake round.

The submit routes are `async`: each queues its orders in the service's `GroupCommit` and waits; the first
one also schedules a flush on the loop, which runs the rounds (verify + one state read + one commit each)
right there, on the loop's thread, and answers every waiting request. While a round runs, new requests
queue in the kernel and arrive together for the next one, so rounds grow with the load without a timer.

Why on the loop and not in the thread pool: a round is short (milliseconds) and is the one place where
orders are serialized anyway; run from pool threads, it would contend for the GIL with the loop's HTTP work
and wait out a switch interval at every database call (measured: about 3 times slower at 32 connections).
"""

from __future__ import annotations

import asyncio

from matcher.group_commit import GroupCommit, Pending
from matcher.service import Admitted

__all__ = ["LoopIntake"]


class LoopIntake:
    """Coalesces one event loop's order submissions into the service's intake rounds (`GroupCommit`)."""

    def __init__(self, admission: GroupCommit[object, Admitted]) -> None:
        self._admission = admission
        self._waiting: list[tuple[Pending[object, Admitted], asyncio.Future[list[Admitted]]]] = []
        self._scheduled = False

    async def submit(self, payloads: list[object]) -> list[Admitted]:
        """Each payload's outcome, in order, once the round that takes them has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Admitted]] = loop.create_future()
        self._waiting.append((self._admission.enqueue(payloads), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        self._admission.drain()
        for request, future in waiting:
            if future.done():  # the client went away
                continue
            if request.error is not None:  # the store or the chain failed: the round's requests hear it
                future.set_exception(request.error)
            else:
                future.set_result(request.result())
