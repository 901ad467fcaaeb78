"""Waiting on a condition in tests that drive real processes, with a failure message built at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, failure: Callable[[], str], poll: float = 0.1) -> T:
    """Polls `condition` until it returns something true and returns that; fails with `failure()` (built
    then, with the latest logs) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{failure()} (waited {timeout:.0f} s)"
        time.sleep(poll)
