"""A lease's receipts (POST one, GET them) and the buyer's stop request (docs/evidence.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from matcher.api.deps import Service
from matcher.api.evidence_views import evidence_view, receipt_view

router = APIRouter(prefix="/v1/leases", tags=["receipts"])


class StopRequest(BaseModel):
    signature: str
    """personal_sign (EIP-191) of `gpuspot: stop lease <id>` by the lease's buyer."""


@router.post("/{lease_id}/receipts")
def post_receipt(service: Service, lease_id: int, document: Any = Body(...)) -> dict[str, Any]:  # noqa: B008
    """One signed receipt (`Receipt.to_json`): 200 `{"lease_id", "sequence", "hash", "already",
    "evidence"}` when stored now or before; refused with `malformed`, `bad_signature`, `bad_time`,
    `too_large`, `not_posted`, `out_of_order`, `broken_chain`, `receipt_conflict` or `evidence_ended`."""
    outcome = service.evidence.submit_receipt(lease_id, document)
    receipt = outcome.record.receipt
    return {
        "lease_id": receipt.lease_id,
        "sequence": receipt.sequence,
        "hash": "0x" + outcome.record.receipt_hash.hex(),
        "already": outcome.already,
        "evidence": evidence_view(outcome.evidence),
    }


@router.get("/{lease_id}/receipts")
def get_receipts(
    service: Service, lease_id: int, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """The lease's receipts in sequence order, each as signed plus `hash` and `received_at`."""
    page = service.evidence.receipts(lease_id, limit, cursor)
    return {
        "lease_id": lease_id,
        "receipts": [receipt_view(record) for record in page.items],
        "next_cursor": page.next_cursor,
    }


@router.post("/{lease_id}/stop")
def stop(service: Service, lease_id: int, request: StopRequest) -> dict[str, Any]:
    """The buyer asks the provider to stop early; the agent sees `stop_requested` and sends a `stopped`
    receipt. The first request stands: 200 `{"lease_id", "stop_requested", "requested_at", "already"}`."""
    requested_at, created = service.evidence.request_stop(lease_id, request.signature)
    return {
        "lease_id": lease_id,
        "stop_requested": True,
        "requested_at": requested_at,
        "already": not created,
    }
