"""HTTP errors, made here and in the routes only: every error answer is `{"error": {"code", "message"}}`
(plus `details` for intake rejections), with stable codes (the intake's `RejectCode`s, `not_found`,
`not_open`, `bad_signature`, `malformed`, and the evidence codes of `EVIDENCE_STATUS`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.errors import CancellationRejectedError, EvidenceRejectedError, NotFoundError
from matcher.explorer.routes import not_found_page, wants_page
from matcher.intake import OrderRejected
from matcher.store import InvalidPageError

EVIDENCE_STATUS = {
    "malformed": 400,
    "hash_mismatch": 400,
    "bad_signature": 400,
    "bad_time": 400,
    "wrong_commitment": 400,
    "too_large": 413,
    "not_posted": 409,
    "out_of_order": 409,
    "broken_chain": 409,
    "receipt_conflict": 409,
    "evidence_ended": 409,
    "not_committed": 409,
    "commit_conflict": 409,
    "resolved": 409,
    "late": 409,
}
"""HTTP status of each `EvidenceRejectedError` code: 400 for a request that is wrong in itself, 409 for one
that conflicts with the lease's recorded evidence, 413 for one too large."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(OrderRejected)
    async def _rejected(_: Request, exc: OrderRejected) -> JSONResponse:
        return JSONResponse(error_body(exc.code.value, exc.message, dict(exc.details)), status_code=400)

    @app.exception_handler(NotFoundError)
    async def _missing(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(error_body("not_found", str(exc)), status_code=404)

    @app.exception_handler(CancellationRejectedError)
    async def _cancel(_: Request, exc: CancellationRejectedError) -> JSONResponse:
        status = 409 if exc.code == "not_open" else 400
        return JSONResponse(error_body(exc.code, exc.message), status_code=status)

    @app.exception_handler(EvidenceRejectedError)
    async def _evidence(_: Request, exc: EvidenceRejectedError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=EVIDENCE_STATUS.get(exc.code, 400))

    @app.exception_handler(InvalidPageError)
    async def _page(_: Request, exc: InvalidPageError) -> JSONResponse:
        return JSONResponse(error_body("malformed", str(exc)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("malformed", f"invalid request: {exc.errors()}"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and wants_page(request):
            return not_found_page(request)
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)
