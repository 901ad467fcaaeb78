"""The agent's client of the matcher's HTTP API (docs/matcher.md, docs/evidence.md).

Thin on purpose: one method per endpoint, JSON in and out, and one error type carrying the matcher's error
code, so the agent's decisions read `error.code` and never parse messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

__all__ = ["MatcherApiError", "MatcherClient", "MatcherUnavailableError"]


class MatcherApiError(Exception):
    """The matcher refused a request: `code` is its error code (e.g. `not_open`, `receipt_conflict`)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class MatcherUnavailableError(Exception):
    """The matcher could not be reached or answered 5xx: retry later, nothing was decided."""


class MatcherClient:
    """One `httpx.Client` to the matcher at `base_url` (e.g. http://127.0.0.1:8000)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MatcherUnavailableError(f"{method} {self.base_url}{path}: {exc}") from exc
        if response.status_code >= 500:
            raise MatcherUnavailableError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise MatcherApiError(
                    response.status_code, error["code"], error["message"], error.get("details")
                )
            except (ValueError, KeyError, TypeError):
                raise MatcherApiError(response.status_code, "http_error", response.text[:500]) from None
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # --- market and orders

    def market(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/market"))

    def submit_order(self, submission: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/orders", json=submission))

    def order(self, order_hash: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/orders/{order_hash}"))

    def cancel_order(self, order_hash: str, signature: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/orders/{order_hash}/cancel", json={"signature": signature}))

    # --- blobs

    def get_blob(self, blob_hash: bytes) -> bytes:
        return self._request("GET", f"/v1/blobs/0x{bytes(blob_hash).hex()}").content

    def put_blob(self, blob_hash: bytes, data: bytes) -> dict[str, Any]:
        return dict(
            self._json(
                "PUT",
                f"/v1/blobs/0x{bytes(blob_hash).hex()}",
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
        )

    # --- leases and proofs

    def provider_leases(self, provider: str, *, active: bool = True) -> list[dict[str, Any]]:
        """Every lease of the provider (following the pages), or only those still active."""
        leases: list[dict[str, Any]] = []
        params: dict[str, str] = {"active": str(active).lower(), "limit": "200"}
        while True:
            body = self._json("GET", f"/v1/providers/{provider}/leases", params=params)
            leases.extend(body["leases"])
            if not body.get("next_cursor"):
                return leases
            params["cursor"] = str(body["next_cursor"])

    def lock_proofs(self, lease_ids: Sequence[int]) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/proofs/lock", json={"lease_ids": list(lease_ids)}))

    def settle_proofs(self, lease_ids: Sequence[int], *, with_signatures: bool = False) -> dict[str, Any]:
        return dict(
            self._json(
                "POST",
                "/v1/proofs/settle",
                json={"lease_ids": list(lease_ids), "with_signatures": with_signatures},
            )
        )

    # --- evidence

    def post_receipt(self, lease_id: int, receipt: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/leases/{lease_id}/receipts", json=receipt))

    def challenges(self, provider: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/providers/{provider}/challenges")["challenges"])

    def commit_challenge(self, lease_id: int, sequence: int, root: bytes, signature: str) -> dict[str, Any]:
        return dict(
            self._json(
                "POST",
                f"/v1/leases/{lease_id}/challenges/{sequence}/commit",
                json={"root": "0x" + bytes(root).hex(), "signature": signature},
            )
        )

    def open_challenge(self, lease_id: int, sequence: int, opening_b64: str) -> dict[str, Any]:
        return dict(
            self._json(
                "POST", f"/v1/leases/{lease_id}/challenges/{sequence}/opening", json={"opening": opening_b64}
            )
        )
