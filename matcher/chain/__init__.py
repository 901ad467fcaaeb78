"""The matcher's chain adapter: posts settlement roots and follows the market's events, with web3.py.

web3.py rather than ape, because the matcher is a plain service against any RPC URL. See docs/chain.md.

- `abi`: the Escrow's and ProviderRegistry's ABIs, read from the compiled artifacts (`ape compile`).
- `poster`: `RootPoster`, crash-safe posting of one root per batch (`prepare` -> store -> `send` -> `wait`,
  `resume` after a restart), and `SignedRootTx`, `PostedRoot`.
- `watcher`: `ChainWatcher.poll(cursor)`, confirmed events in bounded ranges with reorg detection;
  `ChainCursor` (saved by the service) and the `Reorg` marker.
- `events`: the typed events (`Deposited`, `RootPosted`, `LeaseLocked`, `ProviderRegistered`...).
- `retry`: `RetryPolicy`, backoff for idempotent calls only.
- `errors`: `ChainError` and its subclasses.
"""

from matcher.chain.abi import ESCROW, PROVIDER_REGISTRY, load_abi
from matcher.chain.errors import (
    AbiNotFoundError,
    BatchIdNotIncreasingError,
    ChainError,
    ChainMismatchError,
    InvalidCursorError,
    InvalidRootError,
    NotOperatorError,
    ReorgTooDeepError,
    RootConflictError,
    RootTxReplacedError,
    RpcUnavailableError,
    TransactionRevertedError,
    TransactionTimeoutError,
)
from matcher.chain.events import (
    ESCROW_EVENTS,
    REGISTRY_EVENTS,
    ArbiterChanged,
    ChainEvent,
    Deposited,
    EventDecoder,
    ExitRequested,
    LeaseLocked,
    LeaseReclaimed,
    LeaseSettled,
    MetadataUpdated,
    NoncesInvalidated,
    OperatorChanged,
    ProviderExited,
    ProviderRegistered,
    ProviderSlashed,
    RootPosted,
    StakeAdded,
    WithdrawalCancelled,
    WithdrawalRequested,
    Withdrawn,
)
from matcher.chain.poster import PostedRoot, RootAlreadyPostedError, RootPoster, SignedRootTx
from matcher.chain.retry import RetryPolicy
from matcher.chain.watcher import BlockRef, ChainCursor, ChainWatcher, Reorg, WatcherItem

__all__ = [
    "ESCROW",
    "ESCROW_EVENTS",
    "PROVIDER_REGISTRY",
    "REGISTRY_EVENTS",
    "AbiNotFoundError",
    "ArbiterChanged",
    "BatchIdNotIncreasingError",
    "BlockRef",
    "ChainCursor",
    "ChainError",
    "ChainEvent",
    "ChainMismatchError",
    "ChainWatcher",
    "Deposited",
    "EventDecoder",
    "ExitRequested",
    "InvalidCursorError",
    "InvalidRootError",
    "LeaseLocked",
    "LeaseReclaimed",
    "LeaseSettled",
    "MetadataUpdated",
    "NoncesInvalidated",
    "NotOperatorError",
    "OperatorChanged",
    "PostedRoot",
    "ProviderExited",
    "ProviderRegistered",
    "ProviderSlashed",
    "Reorg",
    "ReorgTooDeepError",
    "RetryPolicy",
    "RootAlreadyPostedError",
    "RootConflictError",
    "RootPosted",
    "RootPoster",
    "RootTxReplacedError",
    "RpcUnavailableError",
    "SignedRootTx",
    "StakeAdded",
    "TransactionRevertedError",
    "TransactionTimeoutError",
    "WatcherItem",
    "WithdrawalCancelled",
    "WithdrawalRequested",
    "Withdrawn",
    "load_abi",
]
