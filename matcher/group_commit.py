"""Group commit: requests from many threads handled in rounds, one round at a time.

Each caller queues its items and then takes the round lock. Whoever holds it takes every queued request (its
own and those that arrived while the previous round ran), hands them to `process` as one list, and gives each
caller its share of the answer; a caller whose request was handled by someone else's round finds it done
and returns. No thread of its own: rounds grow with the load, so ten concurrent single-order submissions
cost one store transaction (one fsync) and one state read, not ten, and a lone caller pays nothing extra.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "Pending"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Pending(Generic[T, R]):
    """A queued request: `done` once a round has handled it, with its `results` or the round's `error`."""

    items: Sequence[T]
    results: list[R] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)

    def result(self) -> list[R]:
        """The results; raises the round's error if it failed. Only once `done`."""
        if self.error is not None:
            raise self.error
        assert self.results is not None
        return self.results


class GroupCommit(Generic[T, R]):
    """Runs `process(items) -> results` (one result per item, in order) over the items of every request
    queued when a round starts, up to `max_items` per round (a request is never split; one larger than the
    limit makes a round of its own). If `process` raises, every request in that round gets the error.

    One caller at a time leads: it runs rounds until what it waits for is done, then hands over. The others
    sleep until a round has done theirs (and return at once) or the lead is free (one of them takes it)."""

    def __init__(self, process: Callable[[list[T]], list[R]], max_items: int = 5_000) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._process = process
        self._max_items = max_items
        self._queue: deque[Pending[T, R]] = deque()
        self._changed = threading.Condition()
        self._leading = False
        self.rounds = 0

    def submit(self, items: Sequence[T]) -> list[R]:
        """`process`'s results for `items`, in order, once a round has handled them."""
        request = self.enqueue(items)
        self._serve(lambda: request.done)
        return request.result()

    def enqueue(self, items: Sequence[T]) -> Pending[T, R]:
        """Queues `items` without waiting: a later `drain` (or another caller's round) handles them."""
        request: Pending[T, R] = Pending(items)
        with self._changed:
            self._queue.append(request)
        return request

    def drain(self) -> None:
        """Runs rounds until every request queued so far is done."""
        self._serve(lambda: not self._queue)

    def _serve(self, satisfied: Callable[[], bool]) -> None:
        """Waits for the lead (unless `satisfied` first), then runs rounds until `satisfied`; both read
        under the lock."""
        with self._changed:
            while not satisfied() and self._leading:
                self._changed.wait()
            if satisfied():
                return
            self._leading = True
        try:
            while True:
                with self._changed:
                    if satisfied():
                        break
                self._run_round()
        finally:
            with self._changed:
                self._leading = False
                self._changed.notify_all()

    def _run_round(self) -> None:
        taken: list[Pending[T, R]] = []
        with self._changed:
            count = 0
            while self._queue and (not taken or count + len(self._queue[0].items) <= self._max_items):
                request = self._queue.popleft()
                taken.append(request)
                count += len(request.items)
        items = [item for request in taken for item in request.items]
        results: list[R] = []
        error: BaseException | None = None
        try:
            results = self._process(items)
            if len(results) != len(items):
                raise RuntimeError(f"group commit: {len(items)} items gave {len(results)} results")
        except BaseException as exc:
            error = exc
        with self._changed:
            self.rounds += 1
            start = 0
            for request in taken:
                if error is None:
                    request.results = list(results[start : start + len(request.items)])
                    start += len(request.items)
                request.error, request.done = error, True
            self._changed.notify_all()
