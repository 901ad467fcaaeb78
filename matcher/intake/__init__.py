"""The matcher's order intake: a pure validator from a submitted order to an accepted one or a rejection.

No I/O: the API hands it the request body, the service a `MarketView` filled from its store and chain watcher;
it answers an `AcceptedOrder` (order, order hash, signer, a bid's max cost) or raises `OrderRejected` with a
stable `code` (the API's error code) and a message that says what to do. See docs/intake.md.

- `validate`: one submission; `validate_many`: a batch, one result per item. Each is two steps, which a
  service can run apart: `verify_submission`/`verify_many` (checks 1-8, no account state) and `admit_many`
  (checks 9-12 against a `MarketView`).
- `view`: `MarketView` (what intake reads) and `MarketSnapshot` (an in-memory one).
- `wire`: the submission's shape (`{"type", "order", "signature", "domain"?}`).
- `signer`: the fast digest and signer recovery.
- `errors`: `IntakeError`, `OrderRejected`, `RejectCode`.
"""

from matcher.intake.errors import (
    IntakeError,
    InvalidIntakePolicyError,
    InvalidMarketViewError,
    OrderRejected,
    RejectCode,
)
from matcher.intake.validate import (
    AcceptedOrder,
    IntakePolicy,
    IntakeResult,
    SignedOrder,
    admit_many,
    market_domain,
    validate,
    validate_many,
    verify_many,
    verify_submission,
)
from matcher.intake.view import MarketContext, MarketSnapshot, MarketTerms, MarketView
from matcher.intake.wire import OrderKind, SignedDomain, Submission, parse_submission

__all__ = [
    "AcceptedOrder",
    "IntakeError",
    "IntakePolicy",
    "IntakeResult",
    "InvalidIntakePolicyError",
    "InvalidMarketViewError",
    "MarketContext",
    "MarketSnapshot",
    "MarketTerms",
    "MarketView",
    "OrderKind",
    "OrderRejected",
    "RejectCode",
    "SignedDomain",
    "SignedOrder",
    "Submission",
    "admit_many",
    "market_domain",
    "parse_submission",
    "validate",
    "validate_many",
    "verify_many",
    "verify_submission",
]
