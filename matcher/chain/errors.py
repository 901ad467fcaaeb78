"""The chain adapter's exceptions: one root, `ChainError`, and a subclass per condition a caller acts on.

Every message says what happened and what to do about it (which node to check, which command to run, which
number to resume from), so the service can log it as is.
"""

from __future__ import annotations

# Raised by the ABI loader, which moved to `gpuspot.chain` (shared with the agent and the buyer SDK); it is no
# longer a `ChainError`: it is raised at start, when the ABIs are read, never inside a posting round.
from gpuspot.chain.errors import AbiNotFoundError

__all__ = [
    "AbiNotFoundError",
    "BatchIdNotIncreasingError",
    "ChainError",
    "ChainMismatchError",
    "InvalidCursorError",
    "InvalidRootError",
    "NotOperatorError",
    "ReorgTooDeepError",
    "RootConflictError",
    "RootTxReplacedError",
    "RpcUnavailableError",
    "TransactionRevertedError",
    "TransactionTimeoutError",
]


class ChainError(Exception):
    """Root of every error raised by `matcher.chain`."""


class RpcUnavailableError(ChainError):
    """The node did not answer after every retry: it is down, unreachable, or rate-limiting us."""


class ChainMismatchError(ChainError):
    """The node serves another chain than the deployment file names, or no code at a contract's address."""


class NotOperatorError(ChainError):
    """The key the matcher signs with is not the escrow's operator, so the escrow would refuse its roots."""


class RootConflictError(ChainError):
    """The chain already holds a different root for the batch: posting ours would commit the batch twice."""


class BatchIdNotIncreasingError(ChainError):
    """The escrow's `lastBatchId` is already at or past the batch, which has no root: batch ids must
    increase."""


class RootTxReplacedError(ChainError):
    """The signed root transaction can never be mined: another transaction used its nonce, and the batch has
    no root on-chain. Prepare (and persist) a new one."""


class TransactionTimeoutError(ChainError):
    """A transaction was not mined within the timeout. It may still be mined: resume, do not re-prepare."""


class TransactionRevertedError(ChainError):
    """A transaction was mined but reverted (or the node refused it); the message carries the decoded
    reason."""


class InvalidRootError(ChainError, ValueError):
    """A batch id that is not a positive uint64, or a root that is not 32 non-zero bytes."""


class InvalidCursorError(ChainError):
    """A saved watcher cursor does not parse or is inconsistent."""


class ReorgTooDeepError(ChainError):
    """A reorganisation reached below every block hash the cursor keeps: events already handed out may
    be gone."""
