"""GET /v1/accounts/{address}: balances on-chain and in the matcher's book, open orders, leases, and (for a
provider) its published evidence record: challenge verdicts and leases whose evidence ended by failure."""

from __future__ import annotations

from typing import Any

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter

from matcher.api.deps import Service
from matcher.api.errors import ApiError
from matcher.api.evidence_views import evidence_summary_view
from matcher.api.views import lease_view, order_view

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.get("/{address}")
def account(service: Service, address: str) -> dict[str, Any]:
    if not is_address(address):
        raise ApiError(400, "malformed", f"{address!r} is not an address")
    who = str(to_checksum_address(address))
    orders = service.store.orders_of(who, limit=50)
    leases = service.store.leases_of(who, limit=50)
    return {
        "address": who,
        "available": str(service.available_balance(who)),
        "reserved_by_matcher": str(service.reserved(who, service.clock())),
        "withdrawal_pending": service.store.withdrawal_pending(who),
        "provider_active": service.store.provider_active(who, service.deployment.parameters.min_stake),
        "orders": [order_view(o, service.catalog) for o in orders.items],
        "leases": [lease_view(lease, service.catalog) for lease in leases.items],
        "evidence": evidence_summary_view(service.store.provider_summary(who)),
    }
