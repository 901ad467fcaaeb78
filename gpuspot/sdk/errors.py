"""The buyer SDK's exceptions: one root, `SdkError`, and a subclass for each condition a caller acts on.

Every message says what happened and what to do (which service to start, how much to deposit, when to come
back), so the CLI prints it as one line and a script can branch on the type or on `MatcherApiError.code`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ChainError",
    "FollowTimeoutError",
    "InsufficientFundsError",
    "MatcherApiError",
    "MatcherUnavailableError",
    "SdkError",
    "VerificationError",
    "WithdrawalNotReadyError",
]


class SdkError(Exception):
    """Root of every error the buyer SDK raises."""


class MatcherApiError(SdkError):
    """The matcher refused a request. `code` is its stable error code (`insufficient_balance`, `not_open`,
    `not_found`, `nonce_used`...), `details` what it added (e.g. the figures of a balance refusal)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"the matcher refused the request ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class MatcherUnavailableError(SdkError):
    """The matcher could not be reached (connection refused, timeout) or failed (5xx): nothing was decided."""


class ChainError(SdkError):
    """The node could not be reached, or a transaction would revert or did (the custom error decoded)."""


class InsufficientFundsError(SdkError):
    """Too little money where it is needed: `needed` and `available` in base units; nothing was sent."""

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available

    @property
    def shortfall(self) -> int:
        return max(0, self.needed - self.available)


class WithdrawalNotReadyError(SdkError):
    """The withdrawal's notice has not passed: `ready_at` is the unix time from which `withdraw` works."""

    def __init__(self, message: str, *, ready_at: int) -> None:
        super().__init__(message)
        self.ready_at = ready_at


class VerificationError(SdkError):
    """Published evidence does not check out locally (a receipt signature, a broken hash chain, an output
    whose bytes do not hash to what the provider signed): do not trust it."""


class FollowTimeoutError(SdkError):
    """`follow` gave up: `stage` is where the order or lease was stuck."""

    def __init__(self, message: str, *, stage: Any) -> None:
        super().__init__(message)
        self.stage = stage
