"""A small market for intake tests: named keys, a snapshot of their state, and signed submissions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from eth_account import Account

from gpuspot.catalog import Catalog
from gpuspot.protocol import Ask, Bid, Eip712Domain, keccak256, product_id, sign, to_json
from matcher.intake import MarketSnapshot

CHAIN_ID = 31337
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(chain_id=CHAIN_ID, verifying_contract=ESCROW)
NOW = 1_800_000_000
H100 = product_id("H100-80GB")
PRICE = 2_500_000  # 2.50 tUSD per GPU-hour
CATALOG = Catalog.default()


def key(label: str) -> bytes:
    return keccak256(b"gpuspot intake test key " + label.encode())


def address(label: str) -> str:
    return str(Account.from_key(key(label)).address)


BUYER = address("buyer")
PROVIDER = address("provider")
STRANGER = address("stranger")


def bid(**changes: Any) -> Bid:
    fields: dict[str, Any] = {
        "buyer": BUYER,
        "product": H100,
        "gpus": 2,
        "duration": 3600,
        "max_price_per_gpu_hour": PRICE,
        "job_spec_hash": keccak256(b"job"),
        "nonce": 1,
        "expiry": NOW + 600,
    }
    return Bid(**{**fields, **changes})


def ask(**changes: Any) -> Ask:
    fields: dict[str, Any] = {
        "provider": PROVIDER,
        "product": H100,
        "host_id": keccak256(b"host-1"),
        "gpus": 8,
        "max_duration": 8 * 3600,
        "min_price_per_gpu_hour": 2_000_000,
        "nonce": 1,
        "expiry": NOW + 600,
    }
    return Ask(**{**fields, **changes})


def submission(
    order: Bid | Ask,
    signer: str | None = None,
    domain: Eip712Domain = DOMAIN,
    send_domain: bool = False,
) -> dict[str, Any]:
    """The API body for `order`, signed by `signer` (default: the order's own account) under `domain`."""
    if signer is None:
        signer = "buyer" if isinstance(order, Bid) else "provider"
    payload: dict[str, Any] = {
        "type": order.TYPE_NAME.lower(),
        "order": _json_object(to_json(order)),
        "signature": sign(order, key(signer), domain).hex(),
    }
    if send_domain:
        payload["domain"] = domain.as_dict()
    return payload


def _json_object(text: str) -> dict[str, Any]:
    import json

    document: dict[str, Any] = json.loads(text)
    return document


@dataclass(frozen=True)
class State:
    """Keyword arguments of a `MarketSnapshot`, with a funded buyer and an active provider by default."""

    balances: dict[str, int] = field(default_factory=lambda: {BUYER: 100_000_000})
    active_providers: frozenset[str] = frozenset({PROVIDER})

    def snapshot(self, **changes: Any) -> MarketSnapshot:
        base = MarketSnapshot(
            chain_id=CHAIN_ID,
            escrow=ESCROW,
            now=NOW,
            catalog=CATALOG,
            balances=self.balances,
            active_providers=self.active_providers,
        )
        return replace(base, **changes) if changes else base


def market(**changes: Any) -> MarketSnapshot:
    return State().snapshot(**changes)
