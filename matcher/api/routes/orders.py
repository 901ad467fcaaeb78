"""Orders: submit one or many, read one (with its history and why it did not trade), cancel one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from matcher.api.deps import Service, intake_of, parse_hash
from matcher.api.errors import error_body
from matcher.api.views import order_view
from matcher.intake import AcceptedOrder, OrderRejected
from matcher.store import OrderRecord

router = APIRouter(prefix="/v1/orders", tags=["orders"])


class CancelRequest(BaseModel):
    signature: str
    """personal_sign (EIP-191) of `gpuspot: cancel order 0x<hash>` by the order's signer."""


def _accepted(accepted: AcceptedOrder, record: OrderRecord) -> dict[str, Any]:
    return {
        "hash": "0x" + accepted.order_hash.hex(),
        "status": record.status.value,
        "already_open": accepted.already_open,
    }


@router.post("", response_class=JSONResponse)
async def submit(request: Request, payload: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """One signed order. 200 with its hash when it is in the book (or already was); 400 with the error code
    when it is refused, and then nothing was stored."""
    result = (await intake_of(request).submit([payload]))[0]
    if isinstance(result, OrderRejected):
        raise result
    return JSONResponse(_accepted(*result))


@router.post("/batch", response_class=JSONResponse)
async def submit_many(request: Request, payloads: list[Any] = Body(...)) -> JSONResponse:  # noqa: B008
    """Many signed orders (up to the intake round size): 200 with one result per order, in order, each
    either accepted (`hash`, `status`, `already_open`) or refused (`error` with its code). The answers are
    built as JSON directly: FastAPI's response validation would cost more than the intake itself."""
    results = []
    for result in await intake_of(request).submit(payloads):
        if isinstance(result, OrderRejected):
            results.append(error_body(result.code.value, result.message, dict(result.details)))
        else:
            results.append(_accepted(*result))
    return JSONResponse({"results": results})


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
