"""Dependencies the routes inject: the service the app was built around, and parsed path values."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from matcher.api.errors import ApiError
from matcher.api.intake import LoopIntake
from matcher.service import MatcherService

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


async def get_service(request: Request) -> MatcherService:
    """`async` although it does not wait: FastAPI runs a plain `def` dependency in its thread pool, one
    more thread hop per request for a dictionary lookup."""
    service: MatcherService = request.app.state.service
    return service


Service = Annotated[MatcherService, Depends(get_service)]


def intake_of(request: Request) -> LoopIntake:
    intake: LoopIntake = request.app.state.intake
    return intake


def parse_hash(value: str, what: str = "order hash") -> bytes:
    if not _HASH.match(value):
        raise ApiError(400, "malformed", f"{what} must be 0x followed by 64 hex digits, got {value!r}")
    return bytes.fromhex(value[2:])
