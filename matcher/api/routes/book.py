"""GET /v1/book/{product}: the open book's depth, per price level (a product's name or 0x id)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from matcher.api.deps import Service, parse_hash
from matcher.api.errors import ApiError

router = APIRouter(prefix="/v1/book", tags=["book"])


@router.get("/{product}")
def depth(service: Service, product: str) -> dict[str, Any]:
    found = (
        service.catalog.get(parse_hash(product, "product id"))
        if product.startswith("0x")
        else next((p for p in service.catalog if p.name == product), None)
    )
    if found is None:
        raise ApiError(
            404, "unknown_product", f"no product {product!r}: use one of {list(service.catalog.names)}"
        )
    levels: dict[str, dict[int, list[int]]] = {"bid": {}, "ask": {}}
    for record in service.store.open_orders(bytes(found.id)):
        level = levels[record.kind].setdefault(record.price, [0, 0])
        level[0] += record.gpus
        level[1] += 1
    return {
        "product": found.name,
        "bids": [
            {"price_per_gpu_hour": str(p), "gpus": g, "orders": n}
            for p, (g, n) in sorted(levels["bid"].items(), reverse=True)
        ],
        "asks": [
            {"price_per_gpu_hour": str(p), "gpus": g, "orders": n}
            for p, (g, n) in sorted(levels["ask"].items())
        ],
    }
