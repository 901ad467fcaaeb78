"""Batches: newest first, paginated; one batch by id; a batch's inputs (to recompute it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from matcher.api.deps import Service
from matcher.api.inputs import batch_inputs
from matcher.api.views import batch_view
from matcher.errors import NotFoundError

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.get("")
def list_batches(service: Service, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    page = service.store.list_batches(limit=limit, cursor=cursor)
    return {"items": [batch_view(b) for b in page.items], "next_cursor": page.next_cursor}


@router.get("/{batch_id}")
def get_batch(service: Service, batch_id: int) -> dict[str, Any]:
    batch = service.store.get_batch(batch_id)
    if batch is None:
        raise NotFoundError(f"no batch has id {batch_id}")
    return batch_view(batch)


@router.get("/{batch_id}/inputs")
def get_batch_inputs(service: Service, batch_id: int) -> dict[str, Any]:
    """The considered orders as signed, the seed, rule, code version, domain, lease ids and commitment."""
    return batch_inputs(service, batch_id)
