"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI

from matcher import explorer
from matcher.api import errors
from matcher.api.intake import LoopIntake
from matcher.api.routes import (
    accounts,
    batches,
    blobs,
    book,
    challenges,
    health,
    leases,
    market,
    orders,
    proofs,
    providers,
    receipts,
)
from matcher.service import MatcherService


def create_app(service: MatcherService) -> FastAPI:
    app = FastAPI(title="gpuspot matcher", version="0.1.0")
    app.state.service = service
    app.state.intake = LoopIntake(service.admission)
    errors.install(app)
    for module in (
        market,
        orders,
        book,
        batches,
        leases,
        receipts,
        challenges,
        providers,
        proofs,
        blobs,
        accounts,
        health,
    ):
        app.include_router(module.router)
    explorer.install(app, explorer.Explorer.from_service(service))  # HTML pages at /, docs/explorer.md
    return app
