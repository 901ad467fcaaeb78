"""The explorer's pages: server-rendered HTML at the root path, next to the JSON API under /v1.

Routes are thin: parse nothing they can hand on as text (an id that is not one is a 404 page, not a 422),
ask `Explorer` for the page's context, render its template. Errors of these routes are HTML pages; the JSON
API's errors stay JSON.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from matcher.explorer.chain import ChainUnavailableError
from matcher.explorer.explorer import Explorer, PageNotFoundError

__all__ = ["STATIC_DIR", "render", "router", "templates"]

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(tags=["explorer"], include_in_schema=False)


def explorer_of(request: Request) -> Explorer:
    explorer: Explorer = request.app.state.explorer
    return explorer


def render(name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)


API_PREFIXES = ("/v1/", "/healthz", "/metrics", "/docs", "/openapi.json", "/static/")


def wants_page(request: Request) -> bool:
    """A browser asking for a path outside the JSON API: it gets the explorer's 404 page, not JSON."""
    path = request.url.path
    return not path.startswith(API_PREFIXES) and "text/html" in request.headers.get("accept", "")


def not_found_page(request: Request) -> HTMLResponse:
    message = f"there is no page at {request.url.path}"
    return render(
        "not_found.html", explorer_of(request).not_found(message) | {"request_path": request.url.path}, 404
    )


def _page(request: Request, name: str, build: Any) -> Response:
    explorer = explorer_of(request)
    try:
        context = build(explorer)
    except PageNotFoundError as exc:
        return render(
            "not_found.html", explorer.not_found(str(exc)) | {"request_path": request.url.path}, 404
        )
    except ChainUnavailableError as exc:  # pragma: no cover - pages catch it themselves
        return render(
            "not_found.html", explorer.not_found(str(exc)) | {"request_path": request.url.path}, 503
        )
    return render(name, context | {"request_path": request.url.path})


def _cursor(request: Request, name: str = "cursor") -> str | None:
    value = request.query_params.get(name)
    return value or None


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _page(request, "home.html", lambda e: e.home())


@router.get("/batches", response_class=HTMLResponse)
def batches(request: Request) -> Response:
    return _page(request, "batches.html", lambda e: e.batches(_cursor(request)))


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch(request: Request, batch_id: str) -> Response:
    cursors = {k: _cursor(request, k) for k in ("leases", "orders", "leaves")}
    return _page(request, "batch.html", lambda e: e.batch(batch_id, cursors))


@router.get("/batches/{batch_id}/verify", response_class=HTMLResponse)
def verify(request: Request, batch_id: str) -> Response:
    params = dict(request.query_params)
    return _page(request, "verify.html", lambda e: e.verify(batch_id, params))


@router.get("/orders/{order_hash}", response_class=HTMLResponse)
def order(request: Request, order_hash: str) -> Response:
    return _page(request, "order.html", lambda e: e.order(order_hash))


@router.get("/leases/{lease_id}", response_class=HTMLResponse)
def lease(request: Request, lease_id: str) -> Response:
    return _page(request, "lease.html", lambda e: e.lease(lease_id, _cursor(request, "receipts")))


@router.get("/address/{address}", response_class=HTMLResponse)
def address(request: Request, address: str) -> Response:
    cursors = {k: _cursor(request, k) for k in ("orders", "leases")}
    return _page(request, "address.html", lambda e: e.address(address, cursors))


@router.get("/providers", response_class=HTMLResponse)
def providers(request: Request) -> Response:
    return _page(request, "providers.html", lambda e: e.providers(_cursor(request)))


@router.get("/tx/{tx_hash}", response_class=HTMLResponse)
def tx(request: Request, tx_hash: str) -> Response:
    return _page(request, "tx.html", lambda e: e.tx(tx_hash))


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, q: str = "") -> Response:
    explorer = explorer_of(request)
    if not q.strip():
        return render(
            "search.html", explorer.search_page(explorer.search("")) | {"request_path": "/search", "q": q}
        )
    outcome = explorer.search(q)
    if outcome.redirect is not None:
        return RedirectResponse(outcome.redirect, status_code=303)
    status = 200 if outcome.choices else 404
    return render("search.html", explorer.search_page(outcome) | {"request_path": "/search", "q": q}, status)
