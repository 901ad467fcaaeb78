"""The matcher's durable store: orders, the chain mirror and its cursor, batches, leases, leaves and the
root-posting state, over SQLite (one file, by default) or PostgreSQL, with SQLAlchemy Core. See docs/store.md.

```python
store = Store.open("sqlite:///var/lib/gpuspot/matcher.db")      # or postgresql://user:pw@host/db
record, created = store.add_order(accepted, received_at=now)
```

- `store`: `Store`, one transaction per method.
- `records`: what it returns (`OrderRecord`, `BatchRecord`, `LeaseRecord`, `Page`...) and `NewBatch`.
- `orders`, `chain_mirror`, `batches`, `evidence`: the operations, as functions over one connection.
- `schema`, `columns`, `engine`, `pages`: the tables, exact column types, connections, pagination.
- `errors`: `StoreError` and its subclasses.
"""

from matcher.store.batches import assign_lease_ids
from matcher.store.errors import (
    BatchAlreadyRecordedError,
    BatchNotFoundError,
    InvalidBatchError,
    InvalidPageError,
    InvalidStoredValueError,
    InvalidStoreUrlError,
    LeaseNotFoundError,
    NonceInUseError,
    OrderNotFoundError,
    OrderNotOpenError,
    RootPostConflictError,
    RootTxConflictError,
    SchemaVersionError,
    StoreError,
)
from matcher.store.records import (
    BatchRecord,
    BatchStatus,
    ChainLeaseState,
    ChallengeRecord,
    EvidenceEnd,
    EvidenceRecord,
    EvidenceSummary,
    Explanation,
    IntakeState,
    LeafRecord,
    LeaseRecord,
    NewBatch,
    NewLease,
    OrderRecord,
    OrderStatus,
    Page,
    PendingRoot,
    ReceiptHead,
    ReceiptRecord,
    StatusChange,
    UsageRecord,
)
from matcher.store.schema import SCHEMA_VERSION
from matcher.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "BatchAlreadyRecordedError",
    "BatchNotFoundError",
    "BatchRecord",
    "BatchStatus",
    "ChainLeaseState",
    "ChallengeRecord",
    "EvidenceEnd",
    "EvidenceRecord",
    "EvidenceSummary",
    "Explanation",
    "IntakeState",
    "InvalidBatchError",
    "InvalidPageError",
    "InvalidStoreUrlError",
    "InvalidStoredValueError",
    "LeafRecord",
    "LeaseNotFoundError",
    "LeaseRecord",
    "NewBatch",
    "NewLease",
    "NonceInUseError",
    "OrderNotFoundError",
    "OrderNotOpenError",
    "OrderRecord",
    "OrderStatus",
    "Page",
    "PendingRoot",
    "ReceiptHead",
    "ReceiptRecord",
    "RootPostConflictError",
    "RootTxConflictError",
    "SchemaVersionError",
    "StatusChange",
    "Store",
    "StoreError",
    "UsageRecord",
    "assign_lease_ids",
]
