"""GET /v1/providers/{address}/leases: what a provider agent works from (docs/evidence.md)."""

from __future__ import annotations

from typing import Any

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter

from matcher.api.deps import Service
from matcher.api.errors import ApiError
from matcher.api.evidence_views import provider_lease_view

router = APIRouter(prefix="/v1/providers", tags=["providers"])


@router.get("/{address}/leases")
def provider_leases(
    service: Service, address: str, active: bool = False, limit: int = 50, cursor: str | None = None
) -> dict[str, Any]:
    """The provider's leases, newest first, each with its start, end, job spec hash, evidence, usage and
    stop request. `active=true` leaves out lapsed leases and those closed on-chain, so a page may hold
    fewer than `limit`; follow `next_cursor` until it is null."""
    if not is_address(address):
        raise ApiError(400, "malformed", f"{address!r} is not an address")
    provider = str(to_checksum_address(address))
    page = service.store.provider_leases(provider, active=active, limit=limit, cursor=cursor)
    now = service.clock()
    return {
        "provider": provider,
        "leases": [
            provider_lease_view(service.evidence.evidence(lease.lease_id, now), service.catalog)
            for lease in page.items
        ],
        "next_cursor": page.next_cursor,
    }
