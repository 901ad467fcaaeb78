"""GET /v1/leases/{id}: a lease, its chain state, and (once its root is posted) what `lockLeases` takes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from matcher.api.deps import Service
from matcher.api.views import lease_view
from matcher.errors import NotFoundError
from matcher.store import LeaseNotFoundError

router = APIRouter(prefix="/v1/leases", tags=["leases"])


@router.get("/{lease_id}")
def get_lease(service: Service, lease_id: int) -> dict[str, Any]:
    try:
        lease = service.store.get_lease(lease_id)
    except LeaseNotFoundError:
        raise NotFoundError(f"no lease has id {lease_id}") from None
    body = lease_view(lease, service.catalog)
    body["lock"] = service.proof(lease_id).to_json()
    return body
