"""The matcher service on Anvil: signed orders in, a batch cleared, its root on-chain, a lease locked with the
proof the service serves; a rejection changes nothing; a restarted service resumes without a second root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from market_driver import DEPOSIT, H100

from gpuspot.protocol import Ask, Bid, sign, to_json
from matcher.intake import OrderRejected
from matcher.service import MatcherService
from matcher.store import BatchStatus

HOST = b"\x01" * 32


def submission(order: Bid | Ask, account: Any, domain) -> dict[str, Any]:
    return {
        "type": "bid" if isinstance(order, Bid) else "ask",
        "order": to_json(order),
        "signature": "0x" + sign(order, account.private_key, domain).value.hex(),
    }


def ask_of(provider, chain, **overrides: Any) -> Ask:
    fields: dict[str, Any] = {
        "provider": provider.address,
        "product": H100,
        "host_id": HOST,
        "gpus": 8,
        "max_duration": 7_200,
        "min_price_per_gpu_hour": 2_000_000,
        "nonce": 1,
        "expiry": int(chain.pending_timestamp) + 86_400,
    }
    fields.update(overrides)
    return Ask(**fields)


def test_service_clears_posts_and_serves_a_lockable_proof(
    make_service: Callable[..., MatcherService], market, buyer, provider, domain, escrow, chain
):
    service = make_service()
    service.sync_chain()
    bid = market.bid(buyer)
    accepted_bid, _ = service.submit(submission(bid, buyer, domain))
    accepted_ask, _ = service.submit(submission(ask_of(provider, chain), provider, domain))
    assert accepted_bid.max_cost == 2 * 3_600 * 3_000_000 // 3_600

    outcome = service.run_batch()

    assert outcome.batch_id == 1 and outcome.leases == 1 and outcome.posted
    assert bytes(escrow.batchRoot(1).root) == outcome.root
    assert service.store.get_order(accepted_bid.order_hash).status.value == "matched"
    batch = service.store.get_batch(1)
    assert batch is not None and batch.status == BatchStatus.POSTED

    proof = service.proof(1)
    batch_id, leases, multiproof = proof.lock_args()
    escrow.lockLeases(batch_id, leases, multiproof, sender=provider)

    service.sync_chain()
    lease = service.store.get_lease(1)
    assert lease.status == "locked" and lease.chain.locked
    assert int(escrow.accountOf(buyer).reserved) == accepted_bid.max_cost
    # the matched bid is no longer open, but its lease holds the funds on-chain now
    assert service.reserved(buyer.address, service.clock()) == 0
    assert proof.to_json()["lease"]["leaseId"] == "1"


def test_a_bid_beyond_the_balance_is_rejected_and_changes_nothing(
    make_service: Callable[..., MatcherService], market, buyer, domain
):
    service = make_service()
    service.sync_chain()
    # 8 GPUs x 10 h x 20 tUSD = 1,600 tUSD > the 1,000 tUSD deposit
    bid = market.bid(buyer, gpus=8, duration=36_000, max_price_per_gpu_hour=20_000_000)
    with pytest.raises(OrderRejected) as info:
        service.submit(submission(bid, buyer, domain))
    assert info.value.code == "insufficient_balance"
    assert info.value.details["available"] == DEPOSIT
    assert service.store.open_orders() == []
    assert service.run_batch().batch_id is None


def test_submit_many_reserves_across_items_and_keeps_the_good_ones(
    make_service: Callable[..., MatcherService], market, buyer, domain
):
    service = make_service()
    big = market.bid(buyer, gpus=8, duration=36_000, max_price_per_gpu_hour=3_000_000)  # 240 tUSD
    items = [
        submission(
            market.bid(buyer, gpus=8, duration=36_000, max_price_per_gpu_hour=3_000_000), buyer, domain
        )
        for _ in range(5)
    ]
    results = service.submit_many([submission(big, buyer, domain), *items])
    codes = [getattr(r, "code", "ok") for r in results]
    assert codes == ["ok", "ok", "ok", "ok", "insufficient_balance", "insufficient_balance"]
    assert len(service.store.open_orders()) == 4


def test_a_restarted_service_resumes_the_stored_root_without_a_second_post(
    make_service: Callable[..., MatcherService],
    market,
    buyer,
    provider,
    domain,
    escrow,
    chain,
    web3,
    operator_key,
):
    first = make_service()
    first.sync_chain()
    first.submit(submission(market.bid(buyer), buyer, domain))
    first.submit(submission(ask_of(provider, chain), provider, domain))

    class CrashAfterStoring:  # the root tx is signed and stored, then the process dies before sending
        def __init__(self, poster):
            self._poster = poster

        def __getattr__(self, name):
            return getattr(self._poster, name)

        def send(self, signed):
            raise SystemExit("killed")

    first.poster = CrashAfterStoring(first.poster)  # type: ignore[assignment]
    with pytest.raises(SystemExit):
        first.run_batch()
    pending = first.store.batches_awaiting_root()
    assert [p.batch_id for p in pending] == [1] and pending[0].tx is not None
    assert escrow.lastBatchId() == 0
    first.close()

    second = make_service()
    outcome = second.run_batch()  # resumes batch 1 first; nothing else is open
    assert escrow.lastBatchId() == 1
    assert bytes(escrow.batchRoot(1).root) == pending[0].root
    assert second.store.batches_awaiting_root() == []
    assert outcome.batch_id is None
    nonce = web3.eth.get_transaction_count(operator_key.address)
    assert second.run_batch().batch_id is None  # and never posts batch 1 again
    assert web3.eth.get_transaction_count(operator_key.address) == nonce
    assert second.proof(1).batch_id == 1


def test_cancel_needs_the_signers_personal_signature(
    make_service: Callable[..., MatcherService], market, buyer, other_buyer, domain
):
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from matcher.errors import CancellationRejectedError
    from matcher.service import cancellation_message

    service = make_service()
    accepted, _ = service.submit(submission(market.bid(buyer), buyer, domain))
    message = encode_defunct(text=cancellation_message(accepted.order_hash))
    wrong = Account.sign_message(message, other_buyer.private_key).signature
    with pytest.raises(CancellationRejectedError) as info:
        service.cancel(accepted.order_hash, wrong)
    assert info.value.code == "bad_signature"
    right = Account.sign_message(message, buyer.private_key).signature
    assert service.cancel(accepted.order_hash, right).status.value == "cancelled"
    with pytest.raises(CancellationRejectedError) as again:
        service.cancel(accepted.order_hash, right)
    assert again.value.code == "not_open"
    assert service.store.reserved_for(buyer.address) == 0


def test_a_fresh_deposit_is_honoured_although_the_balance_was_cached(
    make_service: Callable[..., MatcherService], market, buyer, domain, token, escrow
):
    service = make_service()
    service.sync_chain()
    whole = market.bid(buyer, gpus=1, duration=3_600, max_price_per_gpu_hour=DEPOSIT)  # the whole deposit
    service.submit(submission(whole, buyer, domain))  # the balance is now cached at DEPOSIT
    token.mint(buyer, 5_000_000, sender=buyer)
    token.approve(escrow, 5_000_000, sender=buyer)
    escrow.deposit(5_000_000, sender=buyer)  # the matcher has not synced the chain since
    more = market.bid(buyer, gpus=1, duration=3_600, max_price_per_gpu_hour=5_000_000)
    accepted, record = service.submit(submission(more, buyer, domain))
    assert record.status.value == "open" and accepted.max_cost == 5_000_000
    with pytest.raises(OrderRejected) as info:  # and the re-read balance still bounds what it accepts
        service.submit(submission(market.bid(buyer, gpus=1, duration=3_600), buyer, domain))
    assert (
        info.value.code == "insufficient_balance" and info.value.details["available"] == DEPOSIT + 5_000_000
    )


def test_an_on_chain_nonce_invalidation_cancels_the_open_order_at_the_next_sync(
    make_service: Callable[..., MatcherService], market, buyer, domain, escrow
):
    service = make_service()
    service.sync_chain()
    bid = market.bid(buyer, nonce=5)
    accepted, _ = service.submit(submission(bid, buyer, domain))
    reserved = service.reserved(buyer.address, service.clock())
    escrow.invalidateNonces(0, 1 << 5, sender=buyer)
    service.sync_chain()
    record = service.get_order(accepted.order_hash)
    assert record.status.value == "cancelled"
    assert "nonce 5 invalidated on-chain" in (
        service.store.order_history(accepted.order_hash)[-1].reason or ""
    )
    assert service.reserved(buyer.address, service.clock()) == reserved - (accepted.max_cost or 0)
    with pytest.raises(OrderRejected) as info:  # and the nonce stays closed to new orders
        service.submit(submission(market.bid(buyer, nonce=5, gpus=1), buyer, domain))
    assert info.value.code == "nonce_used"


def test_an_unchanged_book_without_trades_is_not_recorded_again(
    make_service: Callable[..., MatcherService], market, buyer, provider, domain, chain
):
    service = make_service()
    service.sync_chain()
    service.submit(submission(market.bid(buyer), buyer, domain))
    first = service.run_batch()
    assert first.batch_id == 1 and first.leases == 0
    again = service.run_batch()
    assert again.batch_id is None and again.reason == "book unchanged since a batch without leases"
    assert [b.batch_id for b in service.store.list_batches().items] == [1]
    service.submit(submission(ask_of(provider, chain), provider, domain))  # the book changed: it clears
    traded = service.run_batch()
    assert traded.batch_id == 2 and traded.leases == 1
