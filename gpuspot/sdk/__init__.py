"""The buyer SDK: deposit, sign and send bids, follow a lease, get and verify its results, withdraw.

```python
from gpuspot.sdk import Buyer, Stage
with Buyer.connect("http://127.0.0.1:8545", "http://127.0.0.1:8000", account) as buyer:
    buyer.deposit(50_000_000)
    placed = buyer.place_bid(
        spec, product="H100-80GB", gpus=1, duration=600, max_price_per_gpu_hour=3_000_000
    )
    result = buyer.follow(placed.order_hash, until=Stage.SETTLED)
```
See docs/sdk.md. Money is integers in the token's base units everywhere.
"""

from gpuspot.sdk.buyer import NONCE_BITS, Buyer
from gpuspot.sdk.errors import (
    ChainError,
    FollowTimeoutError,
    InsufficientFundsError,
    MatcherApiError,
    MatcherUnavailableError,
    SdkError,
    VerificationError,
    WithdrawalNotReadyError,
)
from gpuspot.sdk.models import (
    Book,
    Check,
    EscrowAccount,
    EvidenceInfo,
    FollowResult,
    LeaseInfo,
    LeaseVerification,
    MarketInfo,
    OrderInfo,
    PendingWithdrawal,
    PlacedBid,
    PriceLevel,
    Progress,
    Stage,
    VerifiedReceipt,
    derive_stage,
)
from gpuspot.sdk.settings import KEY_ENV, KEYSTORE_PASSWORD_ENV, BuyerSettings
from gpuspot.sdk.units import format_duration, format_time, format_units, parse_duration, parse_units

__all__ = [
    "KEY_ENV",
    "KEYSTORE_PASSWORD_ENV",
    "NONCE_BITS",
    "Book",
    "Buyer",
    "BuyerSettings",
    "ChainError",
    "Check",
    "EscrowAccount",
    "EvidenceInfo",
    "FollowResult",
    "FollowTimeoutError",
    "InsufficientFundsError",
    "LeaseInfo",
    "LeaseVerification",
    "MarketInfo",
    "MatcherApiError",
    "MatcherUnavailableError",
    "OrderInfo",
    "PendingWithdrawal",
    "PlacedBid",
    "PriceLevel",
    "Progress",
    "SdkError",
    "Stage",
    "VerificationError",
    "VerifiedReceipt",
    "WithdrawalNotReadyError",
    "derive_stage",
    "format_duration",
    "format_time",
    "format_units",
    "parse_duration",
    "parse_units",
]
