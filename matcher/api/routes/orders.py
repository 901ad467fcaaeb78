"""Orders: submit one or many, read one (with its history and why it did not trade), cancel one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from matcher.api.deps import Service, parse_hash
from matcher.api.errors import error_body
from matcher.api.views import order_view
from matcher.intake import AcceptedOrder

router = APIRouter(prefix="/v1/orders", tags=["orders"])


class CancelRequest(BaseModel):
    signature: str
    """personal_sign (EIP-191) of `gpuspot: cancel order 0x<hash>` by the order's signer."""


@router.post("")
def submit(service: Service, payload: Any = Body(...)) -> dict[str, Any]:  # noqa: B008
    accepted, record = service.submit(payload)
    return {
        "hash": "0x" + accepted.order_hash.hex(),
        "status": record.status.value,
        "already_open": accepted.already_open,
    }


@router.post("/batch")
def submit_many(service: Service, payloads: list[Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    results = []
    for result in service.submit_many(payloads):
        if isinstance(result, AcceptedOrder):
            results.append(
                {
                    "hash": "0x" + result.order_hash.hex(),
                    "status": "open",
                    "already_open": result.already_open,
                }
            )
        else:
            results.append(error_body(result.code.value, result.message, dict(result.details)))
    return {"results": results}


@router.get("/{order_hash}")
def get_order(service: Service, order_hash: str) -> dict[str, Any]:
    digest = parse_hash(order_hash)
    record = service.get_order(digest)
    body = order_view(record, service.catalog)
    body["history"] = [
        {"status": c.status.value, "at": c.at, "batch_id": c.batch_id, "reason": c.reason}
        for c in service.store.order_history(digest)
    ]
    explanation = service.store.explanation(digest)
    body["explanation"] = (
        None
        if explanation is None
        else {
            "batch_id": explanation.batch_id,
            "reason": str(explanation.reason),
            "gap": explanation.gap,
            "text": explanation.text(),
        }
    )
    return body


@router.post("/{order_hash}/cancel")
def cancel(service: Service, order_hash: str, request: CancelRequest) -> dict[str, Any]:
    record = service.cancel(parse_hash(order_hash), request.signature)
    return order_view(record, service.catalog)
