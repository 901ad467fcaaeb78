"""Replayable batches: a real batch on Anvil, its inputs served by the API, recomputed by matcher.verify
(match); tampered inputs and a different root on-chain are mismatches that say what differs."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from test_service import ask_of, submission

from matcher.api import create_app
from matcher.chain import ChainError
from matcher.verify import fetch_inputs, verify_batch, verify_inputs


class _NoPoster:
    """A root poster that never posts: the batch is recorded, its root awaits posting."""

    def prepare(self, batch_id: int, root: bytes) -> None:
        raise ChainError("not posting in this test")


def _batch(service, market, buyer, other_buyer, provider, domain, chain) -> None:
    service.sync_chain()
    service.submit(submission(market.bid(buyer), buyer, domain))
    # a bid below the ask's floor: considered, not matched
    service.submit(submission(market.bid(other_buyer, max_price_per_gpu_hour=1_000_000), other_buyer, domain))
    service.submit(submission(ask_of(provider, chain), provider, domain))
    outcome = service.run_batch()
    assert outcome.batch_id == 1 and outcome.leases == 1


@pytest.fixture
def api(make_service, market, buyer, other_buyer, provider, domain, chain):
    service = make_service()
    _batch(service, market, buyer, other_buyer, provider, domain, chain)
    with TestClient(create_app(service)) as client:
        yield client


def test_a_real_batch_verifies_against_the_api_and_the_chain(api, web3, deployment):
    inputs = api.get("/v1/batches/1/inputs").json()
    assert inputs["domain"] == {"chain_id": deployment.chain_id, "verifying_contract": deployment.escrow}
    assert len(inputs["orders"]) == 3 and [lease["lease_id"] for lease in inputs["leases"]] == [1]
    assert sorted(o["outcome"] == "matched" for o in inputs["orders"]) == [False, True, True]
    result = verify_batch(api, web3, 1)
    assert result.ok, result.report()
    assert "on-chain root" in result.checked
    assert api.get("/v1/batches/9/inputs").status_code == 404


def test_another_price_in_one_order_is_a_mismatch_naming_it(api, web3):
    inputs = fetch_inputs(api, 1)
    bid = next(o for o in inputs["orders"] if o["type"] == "bid" and o["outcome"] == "matched")
    order = json.loads(bid["order"])
    order["maxPricePerGpuHour"] = str(int(order["maxPricePerGpuHour"]) + 1)
    bid["order"] = json.dumps(order, sort_keys=True, separators=(",", ":"))
    result = verify_inputs(inputs)
    assert not result.ok
    assert any(bid["hash"] in m and "signature recovers" in m for m in result.mismatches), result.report()
    assert any(m.startswith("commitment") for m in result.mismatches)


def test_a_dropped_order_is_a_mismatch(api):
    inputs = fetch_inputs(api, 1)
    ask = next(o for o in inputs["orders"] if o["type"] == "ask")
    inputs["orders"].remove(ask)
    result = verify_inputs(inputs)
    assert not result.ok
    report = result.report()
    assert "considered orders hash" in report and "commitment" in report and "lease 1" in report
    assert "root: published" in report


def test_a_different_root_on_chain_is_a_mismatch(
    make_service, market, buyer, other_buyer, provider, domain, chain, escrow, operator, web3
):
    service = make_service(poster=_NoPoster())
    _batch(service, market, buyer, other_buyer, provider, domain, chain)
    with TestClient(create_app(service)) as client:
        assert verify_inputs(fetch_inputs(client, 1)).ok  # the published inputs agree with themselves
        unposted = verify_batch(client, web3, 1)
        assert [m for m in unposted.mismatches if m.startswith("on-chain root")], unposted.report()
        escrow.postRoot(1, b"\x22" * 32, sender=operator)
        result = verify_batch(client, web3, 1)
    assert not result.ok
    assert result.mismatches == [
        m for m in result.mismatches if m.startswith("on-chain root: batchRoot(1) is 0x" + "22" * 32)
    ]
    assert len(result.mismatches) == 1
