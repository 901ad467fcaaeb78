"""The matcher's HTTP API (FastAPI): routes by resource under /v1, errors as `{"error": {"code", "message"}}`.

`create_app(service)` builds the app around a running `MatcherService`; see docs/matcher.md for the endpoints.
"""

from matcher.api.app import create_app

__all__ = ["create_app"]
