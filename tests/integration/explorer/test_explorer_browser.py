"""The explorer in a real browser (Debian's Chromium driven by Playwright) against a real market on Anvil: the
matcher process, the provider agent process (CPU backend standing in for two H100s) and a buyer's signed bid,
run until the lease is settled on-chain. Then, in the browser:

- the home page shows the batch that just cleared;
- the search box takes the bid's order hash to its order page;
- the lease page shows its receipts, each re-checked;
- "verify" on a leaf reports success against the root read from the chain, and the same leaf with its price
  edited in the form reports failure (in a browser with JavaScript off: the check is the server's);
- an unknown lease id gets the 404 page.

One test, because ape reverts the chain after each test and a market takes half a minute to reach a settled
lease. Screenshots of every step go to test-artifacts/explorer/.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_process import AgentProcess, agent_environment, cpu_agent_settings, fast_evidence_env
from market_driver import H100
from polling import wait_for

from gpuspot.protocol import Bid, sign, to_json
from gpuspot.protocol.jobspec import JobSpec

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPOSITORY_ROOT / "test-artifacts" / "explorer"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BID_PRICE = 3_000_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: run ./scripts/bootstrap"
)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def agent_for(tmp_path: Path, rpc_url: str, matcher_url: str, account: Any) -> AgentProcess:
    settings = cpu_agent_settings(
        rpc_url=rpc_url,
        matcher_url=matcher_url,
        deployment_file=tmp_path / "deployment.json",
        state_dir=tmp_path / "agent",
    )
    return AgentProcess(agent_environment(settings, str(account.private_key)), tmp_path / "agent")


def test_the_explorer_shows_a_real_market_in_a_browser(
    tmp_path: Path,
    chain: Any,
    escrow: Any,
    registry: Any,
    buyer: Any,
    domain: Any,
    agent_account: Any,
    interval_mining: Callable[[int], None],
    matcher_launcher: Callable[..., Any],
    browser: Any,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    interval_mining(1)
    matcher = matcher_launcher(batch_interval=1.0, extra_env=fast_evidence_env()).start()
    agent = agent_for(tmp_path, chain.provider.http_uri, matcher.url, agent_account).start()
    api = httpx.Client(base_url=matcher.url, timeout=10.0)
    try:
        spec = JobSpec.build(command=[sys.executable, "-c", "import time\ntime.sleep(4)\n"], outputs=())
        assert api.put(f"/v1/blobs/0x{spec.hash().hex()}", content=spec.to_bytes()).status_code in (200, 201)
        bid = Bid(
            buyer=buyer.address,
            product=H100,
            gpus=1,
            duration=120,
            max_price_per_gpu_hour=BID_PRICE,
            job_spec_hash=spec.hash(),
            nonce=1,
            expiry=int(time.time()) + 3_600,
        )
        signature = "0x" + sign(bid, str(buyer.private_key), domain).value.hex()
        answer = api.post("/v1/orders", json={"type": "bid", "order": to_json(bid), "signature": signature})
        assert answer.status_code == 200, answer.text
        bid_hash = str(answer.json()["hash"])

        def logs() -> str:
            return f"agent log:\n{agent.log_tail()}\nmatcher log:\n{matcher.log_tail(3000)}"

        def lease_of_bid() -> dict[str, Any] | None:
            path = f"/v1/providers/{agent_account.address}/leases"
            leases = api.get(path, params={"active": "false"}).json()["leases"]
            return next((lease for lease in leases if lease["bid_hash"] == bid_hash), None)

        lease = dict(wait_for(lease_of_bid, 60, lambda: f"no lease for bid {bid_hash}; {logs()}"))
        lease_id, batch_id = int(lease["lease_id"]), int(lease["batch_id"])
        wait_for(
            lambda: api.get(f"/v1/leases/{lease_id}").json()["status"] == "closed",
            90,
            lambda: f"lease {lease_id} not settled; {logs()}",
        )
        receipts = api.get(f"/v1/leases/{lease_id}/receipts").json()["receipts"]
        assert len(receipts) >= 2

        page = browser.new_page(viewport={"width": 1280, "height": 900})

        # the home page shows the batch that just cleared
        page.goto(matcher.url + "/")
        latest = page.locator(f'#latest-batches a[href="/batches/{batch_id}"]')
        assert latest.count() == 1, page.content()[:3000]
        assert "H100-80GB" in page.locator("#products").inner_text()
        page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

        # search takes an order hash to its order page
        page.fill('header input[name="q"]', bid_hash)
        page.press('header input[name="q"]', "Enter")
        page.wait_for_url(f"**/orders/{bid_hash}")
        assert page.locator("#order-hash").inner_text() == bid_hash
        assert page.locator(f'a[href="/leases/{lease_id}"]').count() >= 1
        page.screenshot(path=str(ARTIFACTS / "order.png"), full_page=True)

        # the lease page shows its receipts, each re-checked
        page.goto(f"{matcher.url}/leases/{lease_id}")
        rows = page.locator("#receipts tr.receipt")
        assert rows.count() == len(receipts)
        assert page.locator("#receipts").inner_text().count("✔ hash, signer, chain") == len(receipts)
        timeline = page.locator("#timeline").inner_text()
        assert "locked on-chain" in timeline and "claim (final)" in timeline, timeline
        page.screenshot(path=str(ARTIFACTS / "lease.png"), full_page=True)

        # "verify" works with JavaScript off: the server reads the root from the chain and checks the proof
        no_js = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
        plain = no_js.new_page()
        plain.goto(f"{matcher.url}/batches/{batch_id}")
        plain.screenshot(path=str(ARTIFACTS / "batch.png"), full_page=True)
        plain.locator("#leaves a.verify").first.click()
        plain.wait_for_url("**/verify?leaf=*")
        verdict = plain.locator("#verdict")
        assert verdict.get_attribute("data-ok") == "true", verdict.inner_text()
        assert "root read from the chain at block" in plain.content()
        plain.screenshot(path=str(ARTIFACTS / "verify-ok.png"), full_page=True)

        price = plain.locator("#f-price_per_gpu_hour")
        price.fill(str(int(price.input_value()) + 1))
        plain.click("#verify-again")
        plain.wait_for_url("**price_per_gpu_hour=*")
        assert plain.locator("#verdict").get_attribute("data-ok") == "false"
        assert "Verification failed" in plain.locator("#verdict").inner_text()
        plain.screenshot(path=str(ARTIFACTS / "verify-tampered.png"), full_page=True)
        no_js.close()

        # an unknown id gets the 404 page, with the search box
        missing = page.goto(f"{matcher.url}/leases/{lease_id + 1000}")
        assert missing is not None and missing.status == 404
        assert page.locator('main input[name="q"]').count() == 1
        page.screenshot(path=str(ARTIFACTS / "not-found.png"), full_page=True)
    finally:
        api.close()
        agent.stop()
