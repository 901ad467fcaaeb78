"""Proof-of-work challenges: a provider's open ones, the commitment and the opening of one, and every
challenge of a lease with its verdict (docs/evidence.md, "Challenges")."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from gpuspot.protocol.challenge import MAX_N, RowOpening
from matcher.api.deps import Service, parse_hash
from matcher.api.errors import ApiError
from matcher.api.evidence_views import challenge_view
from matcher.errors import EvidenceRejectedError

router = APIRouter(tags=["challenges"])

_MAX_OPENING_BASE64 = (RowOpening.max_size(MAX_N) + 2) // 3 * 4


class CommitRequest(BaseModel):
    root: str
    """0x and 64 hex digits: the Merkle root of the product's rows."""
    signature: str
    """The provider's personal_sign (EIP-191) of `commitment_hash(domain, lease_id, sequence, root)`."""


class OpeningRequest(BaseModel):
    opening: str
    """Standard base64 of the `RowOpening` wire form."""


@router.get("/v1/providers/{address}/challenges")
def provider_challenges(service: Service, address: str) -> dict[str, Any]:
    """The provider's challenges awaiting a commitment or an opening, oldest lease first."""
    if not is_address(address):
        raise ApiError(400, "malformed", f"{address!r} is not an address")
    provider = str(to_checksum_address(address))
    policy = service.evidence.policy
    return {
        "provider": provider,
        "challenges": [challenge_view(c, policy) for c in service.evidence.provider_challenges(provider)],
    }


@router.get("/v1/leases/{lease_id}/challenges")
def lease_challenges(service: Service, lease_id: int) -> dict[str, Any]:
    """Every challenge of the lease with its root, verifier seed, rows and verdict."""
    policy = service.evidence.policy
    return {
        "lease_id": lease_id,
        "challenges": [challenge_view(c, policy) for c in service.evidence.lease_challenges(lease_id)],
    }


@router.post("/v1/leases/{lease_id}/challenges/{sequence}/commit")
def commit(service: Service, lease_id: int, sequence: int, request: CommitRequest) -> dict[str, Any]:
    """The provider's signed root. On time: 200 with the audit drawn after it arrived. Late: 409 `late`
    (the verdict is recorded)."""
    root = parse_hash(request.root, "root")
    c = service.evidence.commit(lease_id, sequence, root, request.signature)
    return {
        "lease_id": lease_id,
        "sequence": sequence,
        "root": request.root.lower(),
        "committed_at_ms": c.committed_at_ms,
        "verifier_seed": "0x" + bytes(c.verifier_seed or b"").hex(),
        "rows": list(c.rows or ()),
        "opening_due_at_ms": (
            None
            if c.committed_at_ms is None
            else c.committed_at_ms + service.evidence.policy.opening_timeout * 1000
        ),
    }


@router.post("/v1/leases/{lease_id}/challenges/{sequence}/opening")
def opening(service: Service, lease_id: int, sequence: int, request: OpeningRequest) -> dict[str, Any]:
    """The audited rows with their proofs: 200 with the verdict `{"outcome", "passed", "reason"}`."""
    if len(request.opening) > _MAX_OPENING_BASE64:
        raise EvidenceRejectedError("too_large", "the opening is larger than any row opening can be")
    try:
        data = base64.b64decode(request.opening, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceRejectedError("malformed", "the opening is not standard base64") from None
    c = service.evidence.open(lease_id, sequence, data)
    return {
        "lease_id": lease_id,
        "sequence": sequence,
        "outcome": c.outcome,
        "passed": c.outcome == "passed",
        "reason": c.reason,
    }


@router.get("/v1/leases/{lease_id}/challenges/{sequence}/opening")
def opening_bytes(service: Service, lease_id: int, sequence: int) -> Response:
    """The opening a verdict was drawn from, as sent (the `RowOpening` wire form)."""
    return Response(
        content=service.evidence.opening(lease_id, sequence), media_type="application/octet-stream"
    )
