"""The HTTP API over an Anvil-backed service, through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from test_service import ask_of, submission

from matcher.api import create_app
from matcher.service import cancellation_message


@pytest.fixture
def api(make_service):
    service = make_service()
    service.sync_chain()
    with TestClient(create_app(service)) as client:
        yield client, service


def test_market_publishes_the_domain_types_and_products(api, deployment):
    client, _ = api
    body = client.get("/v1/market").json()
    assert body["chain_id"] == deployment.chain_id
    assert body["eip712"]["domain"]["verifyingContract"] == deployment.escrow
    assert [m["name"] for m in body["eip712"]["types"]["Bid"]][0] == "buyer"
    assert "H100-80GB" in [p["name"] for p in body["products"]]
    assert body["pricing_rule"] == "uniform"


def test_orders_batch_lease_and_account_round_trip(api, market, buyer, provider, domain, chain, escrow):
    client, service = api
    bid = client.post("/v1/orders", json=submission(market.bid(buyer), buyer, domain))
    assert bid.status_code == 200, bid.text
    bid_hash = bid.json()["hash"]
    many = client.post("/v1/orders/batch", json=[submission(ask_of(provider, chain), provider, domain), {}])
    assert [r.get("status") or r["error"]["code"] for r in many.json()["results"]] == ["open", "malformed"]

    book = client.get("/v1/book/H100-80GB").json()
    assert book["bids"] == [{"price_per_gpu_hour": "3000000", "gpus": 2, "orders": 1}]
    assert book["asks"][0]["gpus"] == 8

    service.run_batch()
    order = client.get(f"/v1/orders/{bid_hash}").json()
    assert order["status"] == "matched" and [h["status"] for h in order["history"]] == ["open", "matched"]
    batches = client.get("/v1/batches?limit=10").json()
    assert [b["batch_id"] for b in batches["items"]] == [1] and batches["items"][0]["status"] == "posted"
    assert client.get("/v1/batches/1").json()["root"] == "0x" + bytes(escrow.batchRoot(1).root).hex()

    lease = client.get("/v1/leases/1").json()
    assert lease["status"] == "posted" and lease["lock"]["batch_id"] == 1
    args = service.proof(1).lock_args()
    escrow.lockLeases(*args, sender=provider)
    service.sync_chain()
    assert client.get("/v1/leases/1").json()["status"] == "locked"

    account = client.get(f"/v1/accounts/{buyer.address.lower()}").json()
    assert (
        account["address"] == buyer.address and int(account["available"]) == escrow.accountOf(buyer).available
    )
    metrics = client.get("/metrics").text
    assert "gpuspot_matcher_orders_accepted_total 2" in metrics
    assert "gpuspot_matcher_roots_posted_total 1" in metrics
    assert client.get("/healthz").json()["status"] == "ok"


def test_rejections_and_unknown_ids_are_json_errors(api, market, buyer, other_buyer, domain):
    client, _ = api
    too_big = market.bid(buyer, gpus=8, duration=36_000, max_price_per_gpu_hour=20_000_000)
    answer = client.post("/v1/orders", json=submission(too_big, buyer, domain))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "insufficient_balance"
    assert client.post("/v1/orders", content=b"not json").json()["error"]["code"] == "malformed"
    missing = client.get("/v1/orders/0x" + "11" * 32)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/orders/nothex").json()["error"]["code"] == "malformed"
    assert client.get("/v1/batches/7").status_code == 404
    assert client.get("/v1/leases/7").json()["error"]["code"] == "not_found"
    assert client.get("/v1/book/NOPE").json()["error"]["code"] == "unknown_product"

    bid_hash = client.post("/v1/orders", json=submission(market.bid(buyer), buyer, domain)).json()["hash"]
    message = encode_defunct(text=cancellation_message(bytes.fromhex(bid_hash[2:])))
    wrong = Account.sign_message(message, other_buyer.private_key).signature.hex()
    refused = client.post(
        f"/v1/orders/{bid_hash}/cancel", json={"signature": "0x" + wrong.removeprefix("0x")}
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_signature"
    right = Account.sign_message(message, buyer.private_key).signature.hex()
    done = client.post(f"/v1/orders/{bid_hash}/cancel", json={"signature": "0x" + right.removeprefix("0x")})
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    again = client.post(f"/v1/orders/{bid_hash}/cancel", json={"signature": "0x" + right.removeprefix("0x")})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_open"
