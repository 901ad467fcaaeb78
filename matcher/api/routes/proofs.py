"""POST /v1/proofs/lock and /v1/proofs/settle: the escrow calls' arguments for a set of leases, grouped
into as few calls as the batches allow (docs/evidence.md, "Endpoints for providers")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from matcher.api.deps import Service

router = APIRouter(prefix="/v1/proofs", tags=["proofs"])

MAX_LEASES = 500


class LockRequest(BaseModel):
    lease_ids: list[int] = Field(..., max_length=MAX_LEASES)


class SettleRequest(BaseModel):
    lease_ids: list[int] = Field(..., max_length=MAX_LEASES)
    with_signatures: bool = False


@router.post("/lock")
def lock(service: Service, request: LockRequest) -> dict[str, Any]:
    """`{"calls": [{"batch_id", "leases", "proof"}], "missing": [ids], "locked": [ids]}`: one
    `lockLeases(batch_id, leases, proof)` per batch; `missing` cannot be locked (unknown, root not posted,
    lock window over), `locked` already are."""
    found = service.lock_calls(request.lease_ids)
    return {"calls": [c.to_json() for c in found.calls], "missing": found.missing, "locked": found.locked}


@router.post("/settle")
def settle(service: Service, request: SettleRequest) -> dict[str, Any]:
    """`{"calls": [{"batch_id", "usage_batch_id", "leases", "usages", "lease_proof", "usage_proof"}],
    "missing": [ids]}`: one `settleLeases` per (lease batch, usage batch), for each lease's newest posted
    usage leaf; `missing` have nothing to settle."""
    found = service.settle_calls(request.lease_ids, with_signatures=request.with_signatures)
    return {"calls": [c.to_json() for c in found.calls], "missing": found.missing}
