"""PUT and GET /v1/blobs/0x<keccak256>: the content-addressed store of job specs, inputs and outputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from matcher.api.deps import Service, parse_hash
from matcher.errors import EvidenceRejectedError

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])


@router.put("/{blob_hash}")
async def put_blob(service: Service, blob_hash: str, request: Request) -> dict[str, Any]:
    """The raw body, stored under its keccak256 (which must be the path's): 200 `{"hash", "size",
    "already"}`; 400 `hash_mismatch`, 413 `too_large` (read no further than the limit)."""
    expected = parse_hash(blob_hash, "blob hash")
    limit = service.evidence.policy.max_blob_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise EvidenceRejectedError("too_large", f"a blob is at most {limit} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise EvidenceRejectedError("too_large", f"a blob is at most {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    created = await run_in_threadpool(service.evidence.put_blob, expected, data)
    return {"hash": "0x" + expected.hex(), "size": len(data), "already": not created}


@router.get("/{blob_hash}")
def get_blob(service: Service, blob_hash: str) -> Response:
    """The blob's bytes exactly as stored (`application/octet-stream`); 404 `not_found`."""
    data = service.evidence.get_blob(parse_hash(blob_hash, "blob hash"))
    return Response(content=data, media_type="application/octet-stream")
