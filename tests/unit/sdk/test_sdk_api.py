"""The matcher's answers mapped to the SDK's errors, at the HTTP edge only (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from gpuspot.sdk import MatcherApiError, MatcherUnavailableError, SdkError
from gpuspot.sdk.api import MatcherApi


def api(handler: object) -> MatcherApi:
    return MatcherApi("http://matcher.test", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_an_error_body_becomes_matcher_api_error_with_its_code_and_details() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {"code": "insufficient_balance", "message": "not enough", "details": {"needed": "6"}}
        }
        return httpx.Response(400, json=body)

    with pytest.raises(MatcherApiError) as refused:
        api(handler).submit_order({"type": "bid"})
    error = refused.value
    assert (error.status, error.code, error.message, error.details) == (
        400,
        "insufficient_balance",
        "not enough",
        {"needed": "6"},
    )
    assert isinstance(error, SdkError)
    assert "insufficient_balance" in str(error)


def test_a_4xx_without_the_error_shape_is_http_error() -> None:
    with pytest.raises(MatcherApiError) as refused:
        api(lambda request: httpx.Response(404, text="nope")).order("0x" + "00" * 32)
    assert (refused.value.status, refused.value.code, refused.value.message) == (404, "http_error", "nope")


def test_a_5xx_is_unavailable_not_a_decision() -> None:
    with pytest.raises(MatcherUnavailableError, match="nothing was decided"):
        api(lambda request: httpx.Response(503, text="busy")).market()


def test_a_refused_connection_names_the_url_and_says_to_start_the_matcher() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        MatcherUnavailableError, match=r"http://matcher.test .*start it \(`python -m matcher`\)"
    ):
        api(handler).market()


def test_a_body_that_is_not_json_is_not_a_matcher() -> None:
    with pytest.raises(MatcherUnavailableError, match="is http://matcher.test a gpuspot matcher"):
        api(lambda request: httpx.Response(200, text="<html>")).market()


def test_receipts_follow_the_pages() -> None:
    pages = {
        None: {"receipts": [{"sequence": 0}, {"sequence": 1}], "next_cursor": "1"},
        "1": {"receipts": [{"sequence": 2}], "next_cursor": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/leases/7/receipts"
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    assert [r["sequence"] for r in api(handler).receipts(7)] == [0, 1, 2]


def test_batches_follow_the_pages() -> None:
    pages = {
        None: {"items": [{"batch_id": 3}, {"batch_id": 2}], "next_cursor": "c2"},
        "c2": {"items": [{"batch_id": 1}], "next_cursor": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/batches"
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    assert [b["batch_id"] for b in api(handler).batches()] == [3, 2, 1]


def test_a_blob_is_put_under_its_hash_as_raw_bytes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"hash": "0x", "size": 3, "already": False})

    api(handler).put_blob(b"\x01" * 32, b"abc")
    assert seen[0].method == "PUT" and seen[0].url.path == "/v1/blobs/0x" + "01" * 32
    assert seen[0].content == b"abc"
