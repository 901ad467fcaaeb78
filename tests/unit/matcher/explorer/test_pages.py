"""Every explorer page renders from a real store: for a small market, for an empty one, for unknown ids (a
404 page with the search box, never a stack trace), and with the chain unreachable."""

from __future__ import annotations

import re

import pytest
from explorer_market import Market

PROVIDER_PAGES = ("/", "/batches", "/providers", "/search", "/search?q=")


def test_home_shows_the_market_at_a_glance(market: Market) -> None:
    page = market.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'href="/batches/2"' in html and 'href="/batches/1"' in html
    assert "H100-80GB" in html and "<svg" in html and "<polyline" not in html or "<circle" in html
    assert 'id="active-leases"' in html
    assert "#120" in html  # the chain head
    assert "tUSD" in html and "base units" in html


@pytest.mark.parametrize("path", PROVIDER_PAGES + ("/batches/1", "/batches/2", "/leases/1", "/leases/2"))
def test_pages_render_for_a_market(market: Market, path: str) -> None:
    page = market.client.get(path)
    assert page.status_code == 200, page.text[:2000]
    assert "<main" in page.text and "Traceback" not in page.text


@pytest.mark.parametrize("path", PROVIDER_PAGES)
def test_pages_render_for_an_empty_market(empty: Market, path: str) -> None:
    page = empty.client.get(path)
    assert page.status_code == 200, page.text[:2000]
    assert "Traceback" not in page.text


def test_empty_home_says_nothing_cleared_yet(empty: Market) -> None:
    html = empty.client.get("/").text
    assert "no batch has cleared a trade yet" in html and "No batches yet" in html


@pytest.mark.parametrize(
    "path",
    [
        "/batches/99",
        "/batches/abc",
        "/batches/-1",
        "/batches/1/verify?leaf=99",
        "/batches/1/verify?leaf=x",
        "/batches/99/verify?leaf=0",
        "/leases/99",
        "/leases/1x",
        "/orders/0x" + "ab" * 32,
        "/orders/nothex",
        "/tx/0x" + "cd" * 32,
        "/tx/0x12",
        "/address/0x1234",
        "/batches/1?leaves=zz",
        "/search?q=nothing-like-this",
        "/search?q=0x" + "ef" * 32,
        "/search?q=12345",
    ],
)
def test_unknown_ids_get_a_404_page_with_the_search_box(market: Market, path: str) -> None:
    page = market.client.get(path, follow_redirects=False)
    assert page.status_code == 404, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="q"' in page.text and "Traceback" not in page.text


@pytest.mark.parametrize("path", ["/batches/1", "/leases/1", "/orders/0x" + "ab" * 32, "/tx/0x" + "cd" * 32])
def test_unknown_ids_in_an_empty_market_get_a_404_page(empty: Market, path: str) -> None:
    page = empty.client.get(path)
    assert page.status_code == 404 and 'name="q"' in page.text


def test_a_browser_on_an_unknown_path_gets_the_404_page_and_the_api_keeps_json(market: Market) -> None:
    page = market.client.get("/nonsense/here", headers={"accept": "text/html,*/*"})
    assert page.status_code == 404 and 'name="q"' in page.text
    assert "there is no page at /nonsense/here" in page.text
    api = market.client.get("/v1/nowhere", headers={"accept": "text/html,*/*"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    script = market.client.get("/nonsense/here")  # curl, scripts: JSON as before
    assert script.status_code == 404 and script.json()["error"]["code"] == "not_found"


def test_batch_page_shows_prices_matches_root_and_leaves(market: Market) -> None:
    html = market.client.get("/batches/1").text
    batch = market.store.get_batch(1)
    assert batch is not None and batch.root is not None
    assert "0x" + batch.root.hex() in html
    assert "/tx/0x" + bytes(batch.posted_tx_hash or b"").hex() in html
    assert html.count('class="button verify"') == 2
    assert 'href="/leases/1"' in html and 'href="/leases/2"' in html
    for h in market.bid_hashes:
        assert "/orders/0x" + h.hex() in html


def test_order_page_shows_fields_history_batch_and_lease(market: Market) -> None:
    html = market.client.get("/orders/0x" + market.bid_hashes[0].hex()).text
    assert "matched" in html and 'href="/batches/1"' in html and 'href="/leases/1"' in html
    ask_html = market.client.get("/orders/0x" + market.ask_hash.hex()).text
    assert 'href="/leases/1"' in ask_html and 'href="/leases/2"' in ask_html


def test_lease_page_shows_receipts_checked_timeline_and_money(market: Market) -> None:
    html = market.client.get("/leases/1").text
    assert html.count('class="receipt"') == 2
    assert html.count("✔ hash, signer, chain") == 2
    assert "locked on-chain" in html and "claim" in html and "challenge 0 passed" in html
    assert 'title="5,000,000 base units">5</span>' in html  # locked 5 tUSD
    assert 'title="41,666 base units">0.041666</span>' in html  # paid


def test_verify_reports_success_for_the_stored_leaf_and_failure_when_tampered(market: Market) -> None:
    ok = market.client.get("/batches/1/verify?leaf=0")
    assert ok.status_code == 200
    assert 'data-ok="true"' in ok.text and "root read from the chain at block 120" in ok.text
    assert re.search(r"proof of depth \d", ok.text)
    assert market.chain.root_reads[-1] == (1, 120)
    tampered = market.client.get("/batches/1/verify?leaf=0&tamper=1")
    assert 'data-ok="false"' in tampered.text and "price_per_gpu_hour" in tampered.text
    edited = market.client.get("/batches/1/verify?leaf=1&gpus=7")
    assert 'data-ok="false"' in edited.text
    garbage = market.client.get("/batches/1/verify?leaf=1&buyer=nope")
    assert garbage.status_code == 200 and 'data-ok="false"' in garbage.text
    assert "does not parse" in garbage.text
    usage = market.client.get("/batches/2/verify?leaf=0")
    assert 'data-ok="true"' in usage.text


def test_verify_fails_against_another_batch_root(market: Market) -> None:
    market.chain.roots[1] = market.chain.roots[2]
    assert 'data-ok="false"' in market.client.get("/batches/1/verify?leaf=0").text


def test_search_goes_to_the_page_of_what_it_names(market: Market) -> None:
    def where(q: str) -> str:
        answer = market.client.get("/search", params={"q": q}, follow_redirects=False)
        assert answer.status_code == 303, (q, answer.status_code)
        return answer.headers["location"]

    bid = "0x" + market.bid_hashes[0].hex()
    assert where(bid) == f"/orders/{bid}"
    assert where(bid.upper().replace("0X", "0x")) == f"/orders/{bid}"
    assert where("0x" + market.store.get_batch(1).posted_tx_hash.hex()) == (  # type: ignore[union-attr]
        "/tx/0x" + market.store.get_batch(1).posted_tx_hash.hex()  # type: ignore[union-attr]
    )
    lease = market.store.get_lease(1)
    assert where(lease.buyer.lower()) == f"/address/{lease.buyer}"
    assert where("0x" + market.receipt_hashes[1].hex()) == "/leases/1"
    assert where("batch 2") == "/batches/2"
    assert where("lease 2") == "/leases/2"
    both = market.client.get("/search", params={"q": "1"})
    assert both.status_code == 200 and 'href="/batches/1"' in both.text and 'href="/leases/1"' in both.text


def test_address_and_providers_pages_show_balances_stake_and_record(market: Market) -> None:
    lease = market.store.get_lease(1)
    provider = market.client.get(f"/address/{lease.provider}").text
    assert 'title="41,666 base units"' in provider  # earnings
    assert 'title="100,000,000 base units"' in provider  # stake read from the chain
    buyer = market.client.get(f"/address/{lease.buyer}").text
    assert 'title="1,000,000,000 base units">1,000</span>' in buyer and "/orders/0x" in buyer
    providers = market.client.get("/providers").text
    assert lease.provider in providers and "2 × H100-80GB" not in providers or "8 × H100-80GB" in providers


def test_tx_page_names_the_batch_whose_root_it_posted(market: Market) -> None:
    batch = market.store.get_batch(1)
    assert batch is not None and batch.posted_tx_hash is not None
    html = market.client.get("/tx/0x" + batch.posted_tx_hash.hex()).text
    assert "Posted the settlement root of" in html and 'href="/batches/1"' in html


def test_pages_render_with_the_chain_unreachable(market: Market) -> None:
    market.chain.down = True
    for path in ("/", "/batches/1", "/leases/1", f"/address/{market.store.get_lease(1).buyer}", "/providers"):
        page = market.client.get(path)
        assert page.status_code == 200, path
        assert "Chain unreachable" in page.text
    verify = market.client.get("/batches/1/verify?leaf=0")
    assert verify.status_code == 200 and 'data-ok="false"' in verify.text and "Not checked" in verify.text


def test_pagination_links_follow_cursors(market: Market) -> None:
    html = market.client.get("/batches").text
    assert 'href="/batches/1"' in html and "Older" not in html
