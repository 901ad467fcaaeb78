"""The matcher service's exception root. The subpackages keep their own roots (`IntakeError`, `StoreError`,
`ChainError`, `ClearingError`); what the service itself raises derives from `MatcherError`."""

from __future__ import annotations

__all__ = ["CancellationRejectedError", "EvidenceRejectedError", "MatcherError", "NotFoundError"]


class MatcherError(Exception):
    """Root of the errors raised by the matcher service; messages say what to do."""


class NotFoundError(MatcherError, LookupError):
    """No order, batch or lease with that id."""


class CancellationRejectedError(MatcherError):
    """A cancellation was refused: `code` is the API's error code (`bad_signature`, `not_open`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EvidenceRejectedError(MatcherError):
    """A blob, receipt, commitment, opening or stop request was refused and changed nothing (except a `late`
    verdict, which is recorded). `code` is the API's error code: `malformed`, `hash_mismatch`, `too_large`,
    `bad_signature`, `bad_time`, `not_posted`, `out_of_order`, `broken_chain`, `receipt_conflict`,
    `evidence_ended`, `not_committed`, `commit_conflict`, `resolved`, `late`, `wrong_commitment`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
