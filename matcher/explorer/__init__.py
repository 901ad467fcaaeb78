"""The explorer: block-explorer-style pages served by the matcher (docs/explorer.md).

`install(app, explorer)` mounts the pages at the root path and the static files under /static; the JSON API
keeps /v1, /healthz and /metrics.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from matcher.explorer.chain import BlockHead, ChainReader, ChainUnavailableError, Web3ChainReader
from matcher.explorer.explorer import Explorer, PageNotFoundError
from matcher.explorer.routes import STATIC_DIR, router

__all__ = [
    "BlockHead",
    "ChainReader",
    "ChainUnavailableError",
    "Explorer",
    "PageNotFoundError",
    "Web3ChainReader",
    "install",
]


def install(app: FastAPI, explorer: Explorer) -> None:
    app.state.explorer = explorer
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="explorer-static")
    app.include_router(router)
