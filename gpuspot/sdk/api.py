"""The buyer's client of the matcher's HTTP API (docs/matcher.md, docs/evidence.md): one method per endpoint,
JSON in and out. Every error answer (`{"error": {"code", "message", "details"?}}`) becomes a
`MatcherApiError` carrying the code; an unreachable or failing matcher a `MatcherUnavailableError`."""

from __future__ import annotations

from typing import Any

import httpx

from gpuspot.sdk.errors import MatcherApiError, MatcherUnavailableError

__all__ = ["MatcherApi"]

_PAGE = 100


class MatcherApi:
    """One `httpx.Client` to the matcher at `base_url` (e.g. http://127.0.0.1:8000)."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise MatcherUnavailableError(
                f"the matcher at {self.base_url} did not answer {method} {path} in time ({exc}): it is "
                "overloaded or stuck; try again, or raise the timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise MatcherUnavailableError(
                f"cannot reach the matcher at {self.base_url} ({exc}): start it (`python -m matcher`) or "
                "point --matcher-url / GPUSPOT_BUYER_MATCHER_URL at a running one"
            ) from None
        if response.status_code >= 500:
            raise MatcherUnavailableError(
                f"the matcher at {self.base_url} failed on {method} {path} ({response.status_code}: "
                f"{response.text[:200]}); nothing was decided, try again later"
            )
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise MatcherUnavailableError(
                f"{method} {self.base_url}{path} answered {response.status_code} without JSON: is "
                f"{self.base_url} a gpuspot matcher?"
            ) from None

    # --- market

    def market(self) -> dict[str, Any]:
        return dict(self.json("GET", "/v1/market"))

    def book(self, product: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/book/{product}"))

    def account(self, address: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/accounts/{address}"))

    # --- orders

    def submit_order(self, submission: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "/v1/orders", json=submission))

    def order(self, order_hash: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/orders/{order_hash}"))

    def cancel_order(self, order_hash: str, signature: str) -> dict[str, Any]:
        return dict(self.json("POST", f"/v1/orders/{order_hash}/cancel", json={"signature": signature}))

    # --- batches and leases

    def batches(self) -> list[dict[str, Any]]:
        """Every batch, newest first (following the pages)."""
        batches: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(_PAGE)}
        while True:
            body = self.json("GET", "/v1/batches", params=params)
            batches.extend(body["items"])
            if not body.get("next_cursor"):
                return batches
            params["cursor"] = str(body["next_cursor"])

    def batch(self, batch_id: int) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/batches/{batch_id}"))

    def batch_inputs(self, batch_id: int) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/batches/{batch_id}/inputs"))

    def lease(self, lease_id: int) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/leases/{lease_id}"))

    def receipts(self, lease_id: int) -> list[dict[str, Any]]:
        """Every receipt of the lease, in sequence order (following the pages)."""
        receipts: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(_PAGE)}
        while True:
            body = self.json("GET", f"/v1/leases/{lease_id}/receipts", params=params)
            receipts.extend(body["receipts"])
            if not body.get("next_cursor"):
                return receipts
            params["cursor"] = str(body["next_cursor"])

    def challenges(self, lease_id: int) -> list[dict[str, Any]]:
        return list(self.json("GET", f"/v1/leases/{lease_id}/challenges")["challenges"])

    def opening(self, lease_id: int, sequence: int) -> bytes:
        return self.request("GET", f"/v1/leases/{lease_id}/challenges/{sequence}/opening").content

    def stop(self, lease_id: int, signature: str) -> dict[str, Any]:
        return dict(self.json("POST", f"/v1/leases/{lease_id}/stop", json={"signature": signature}))

    # --- blobs

    def put_blob(self, blob_hash: bytes, data: bytes) -> dict[str, Any]:
        return dict(
            self.json(
                "PUT",
                f"/v1/blobs/0x{bytes(blob_hash).hex()}",
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
        )

    def get_blob(self, blob_hash: bytes) -> bytes:
        return self.request("GET", f"/v1/blobs/0x{bytes(blob_hash).hex()}").content


def _api_error(response: httpx.Response) -> MatcherApiError:
    try:
        error = response.json()["error"]
        return MatcherApiError(
            response.status_code, str(error["code"]), str(error["message"]), error.get("details")
        )
    except (ValueError, KeyError, TypeError):
        return MatcherApiError(
            response.status_code, "http_error", response.text[:500] or response.reason_phrase
        )
