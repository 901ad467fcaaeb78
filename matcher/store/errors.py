"""The store's exceptions: one root, `StoreError`, and a subclass per condition a caller can act on.

Every message names the record at fault and says what to do. A failed call changed nothing: each store
method is one transaction, rolled back when it raises.
"""

from __future__ import annotations

__all__ = [
    "BatchAlreadyRecordedError",
    "BatchNotFoundError",
    "InvalidBatchError",
    "InvalidPageError",
    "InvalidStoreUrlError",
    "InvalidStoredValueError",
    "LeaseNotFoundError",
    "NonceInUseError",
    "OrderNotFoundError",
    "OrderNotOpenError",
    "RootPostConflictError",
    "RootTxConflictError",
    "SchemaVersionError",
    "StoreError",
]


class StoreError(Exception):
    """Root of every error raised by `matcher.store`."""


class InvalidStoreUrlError(StoreError, ValueError):
    """The database URL is not one the store can open (only sqlite:/// and postgresql:// are supported)."""


class SchemaVersionError(StoreError):
    """The database was written by another version of the matcher's schema."""


class InvalidStoredValueError(StoreError, ValueError):
    """A value handed to the store does not fit its column (a negative or non-integer amount, bytes that are
    not bytes, a batch id out of range)."""


class InvalidPageError(StoreError, ValueError):
    """A pagination limit or cursor is out of range or malformed."""


class OrderNotFoundError(StoreError, LookupError):
    """No order has this hash."""


class NonceInUseError(StoreError):
    """Another open order of the same account already holds this nonce (nonces are shared by an account's
    bids and asks)."""


class OrderNotOpenError(StoreError):
    """The order exists but is not open (matched, cancelled or expired), so it cannot change state."""


class BatchNotFoundError(StoreError, LookupError):
    """No batch has this id."""


class LeaseNotFoundError(StoreError, LookupError):
    """No lease has this id."""


class BatchAlreadyRecordedError(StoreError):
    """A batch with this id (or a later one) is already recorded; batch ids strictly increase."""


class InvalidBatchError(StoreError, ValueError):
    """A batch to record is inconsistent: an order it names is unknown or not open, a lease id is reused or
    not increasing, a leaf does not match its lease."""


class RootTxConflictError(StoreError):
    """A different root transaction is already stored for this batch, or the transaction's batch id or root
    is not the batch's."""


class RootPostConflictError(StoreError):
    """The batch is already marked posted with another transaction or root, or the posted root is not the
    batch's."""
