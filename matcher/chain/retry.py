"""Retries with exponential backoff, for idempotent calls only.

Only operations that are safe to repeat go through `RetryPolicy.call`: reads (`eth_call`, blocks, logs,
receipts, nonces) and rebroadcasting the very same signed bytes, which the node deduplicates by hash. Signing
a new transaction is never retried here; the root poster decides that from the chain's state.

Transient means the transport failed (connection refused or reset, timeout, HTTP 5xx or 429: all `OSError`s
under `requests`) or the provider lost its connection. A JSON-RPC error answer is the node's verdict and is
not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from web3 import Web3
from web3.exceptions import ProviderConnectionError

from matcher.chain.errors import RpcUnavailableError

__all__ = ["TRANSIENT_ERRORS", "RetryPolicy", "endpoint_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ProviderConnectionError)


def endpoint_of(web3: Web3) -> str:
    """The node's URL (or the provider's name) for error messages."""
    provider: Any = web3.provider
    return str(getattr(provider, "endpoint_uri", None) or type(provider).__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all, waiting `initial_delay` seconds after the first failure, times `multiplier`
    after each further one, at most `max_delay`."""

    attempts: int = 5
    initial_delay: float = 0.25
    multiplier: float = 2.0
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_delay < 0 or self.multiplier < 1 or self.max_delay < 0:
            raise ValueError(f"invalid retry policy {self}")

    def delays(self) -> list[float]:
        """The waits between attempts (one fewer than attempts)."""
        return [
            min(self.max_delay, self.initial_delay * self.multiplier**i) for i in range(self.attempts - 1)
        ]

    def call(self, what: str, operation: Callable[[], T], *, endpoint: str) -> T:
        """Runs the idempotent `operation`, retrying transient transport failures; then gives up with
        `RpcUnavailableError`."""
        delays = self.delays()
        for attempt in range(self.attempts):
            try:
                return operation()
            except TRANSIENT_ERRORS as exc:
                if attempt == len(delays):
                    raise RpcUnavailableError(
                        f"{what}: the node at {endpoint} did not answer after {self.attempts} attempts "
                        f"({type(exc).__name__}: {exc}). Check that the node is running and reachable at "
                        "that URL, that the URL in the matcher's settings is right, and that the provider "
                        "is not rate-limiting this key"
                    ) from exc
                log.warning(
                    "%s failed (%s: %s); retry %d/%d in %.2fs",
                    what,
                    type(exc).__name__,
                    exc,
                    attempt + 1,
                    len(delays),
                    delays[attempt],
                )
                time.sleep(delays[attempt])
        raise AssertionError("unreachable")  # pragma: no cover
