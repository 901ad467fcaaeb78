"""GET /v1/leases/{id}: a lease, its chain state, its delivery evidence and usage, and what `lockLeases`
takes (`lock`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from matcher.api.deps import Service
from matcher.api.evidence_views import provider_lease_view

router = APIRouter(prefix="/v1/leases", tags=["leases"])


@router.get("/{lease_id}")
def get_lease(service: Service, lease_id: int) -> dict[str, Any]:
    """The lease as `GET /v1/providers/{address}/leases` lists it (start, end, job spec hash, evidence,
    usage, stop request) plus `lock`."""
    body = provider_lease_view(service.evidence.evidence(lease_id), service.catalog)
    body["lock"] = service.proof(lease_id).to_json()
    return body
