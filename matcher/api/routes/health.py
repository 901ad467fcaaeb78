"""GET /healthz and GET /metrics (Prometheus text format, written by hand: no extra dependency)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from matcher.api.deps import Service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(service: Service) -> dict[str, Any]:
    return {"status": "ok", "chain_id": service.deployment.chain_id, "last_batch_at": service.last_batch_at}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(service: Service) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float) -> None:
        lines.extend(
            [
                f"# HELP gpuspot_matcher_{name} {help_}",
                f"# TYPE gpuspot_matcher_{name} {kind}",
                f"gpuspot_matcher_{name} {value}",
            ]
        )

    counters = service.counters
    for name, help_ in [
        ("orders_accepted", "orders accepted"),
        ("orders_rejected", "orders rejected"),
        ("orders_cancelled", "orders cancelled"),
        ("intake_rounds", "intake rounds (one state read and one commit each)"),
        ("batches", "batches recorded"),
        ("leases", "leases committed"),
        ("roots_posted", "roots posted"),
        ("usage_leaves", "usage leaves committed (kinds 1 and 2)"),
        ("receipts", "receipts accepted"),
        ("challenges_issued", "proof-of-work challenges issued"),
        ("challenges_passed", "challenges passed"),
        ("challenges_failed", "challenges failed (late, or a wrong product)"),
        ("loop_errors", "failed rounds"),
    ]:
        metric(f"{name}_total", "counter", help_, counters.get(name, 0))
    metric(
        "intake_round_seconds_total",
        "counter",
        "time spent in intake rounds (verify, read state, admit, store)",
        counters.get("intake_round_microseconds", 0) / 1e6,
    )
    metric("open_orders", "gauge", "open orders in the book", len(service.store.open_orders()))
    metric(
        "pending_roots", "gauge", "batches awaiting their root", len(service.store.batches_awaiting_root())
    )
    blob_count, blob_bytes = service.store.blob_totals()
    metric("blobs", "gauge", "blobs stored", blob_count)
    metric("blob_bytes", "gauge", "bytes of blobs stored", blob_bytes)
    return "\n".join(lines) + "\n"
