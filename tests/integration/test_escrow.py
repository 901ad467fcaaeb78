"""The escrow on Anvil, driven with gpuspot.protocol: the money path to the base unit, and every rejection."""

from __future__ import annotations

from eth_account import Account
from market_driver import DEPOSIT, LOCK_WINDOW, SETTLE_WINDOW, WITHDRAWAL_NOTICE, Market, reverts_with

from gpuspot.protocol import FINAL_USAGE, LEASE, USAGE, Eip712Domain, Signature, digest, lock_call, typed_data

OPEN, LOCKED, PARTIALLY_SETTLED, CLOSED = 0, 1, 2, 3


def cost(gpu_seconds: int, price_per_gpu_hour: int) -> int:
    return gpu_seconds * price_per_gpu_hour // 3600


def ledger(escrow, account) -> tuple[int, int]:
    entry = escrow.accountOf(account)
    return int(entry.available), int(entry.reserved)


def assert_conserved(escrow, token, accounts) -> None:
    """The escrow's token balance equals the sum of every ledger entry."""
    total = sum(sum(ledger(escrow, account)) for account in accounts)
    assert token.balanceOf(escrow) == total


# --- the contract computes what Python computes -------------------------------------------------------------


def test_bid_digest_and_lease_leaves_match_python(market: Market, escrow, buyer, domain):
    bid = market.bid(buyer, nonce=2**200 + 3, max_price_per_gpu_hour=2**100 + 1)
    assert bytes(escrow.bidDigest(bid.abi_values())) == digest(bid, domain)
    lease = market.lease(bid, buyer, batch_id=7, lease_id=2**63 + 5, price=2**99)
    for kind, leaf in (
        (LEASE, lease.leaf),
        (USAGE, lease.usage(12_345)),
        (FINAL_USAGE, lease.usage(99, final=True)),
    ):
        on_chain = escrow.leaseLeaf(kind, 7, lease.args(), leaf.used_gpu_seconds)
        assert bytes(on_chain) == leaf.hash()


# --- the money path -----------------------------------------------------------------------------------------


def test_full_money_path_pays_provider_exactly_and_refunds_buyer(
    market: Market, escrow, token, buyer, other_buyer, provider, now
):
    lease_a = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=10, price=2_500_001)
    lease_b = market.lease(
        market.bid(other_buyer, gpus=1), other_buyer, batch_id=1, lease_id=11, price=1_999_999
    )
    lease_c = market.lease(market.bid(buyer, duration=600), buyer, batch_id=1, lease_id=12, price=3_000_000)
    leases = [lease_a, lease_b, lease_c]

    assert token.balanceOf(escrow) == 2 * DEPOSIT and ledger(escrow, buyer) == (DEPOSIT, 0)
    posted = market.post(1, [lease.leaf for lease in leases], at=now)
    receipt = market.lock(1, [lease_c, lease_a, lease_b], at=posted + 10)
    assert [log.leaseId for log in receipt.decode_logs(escrow.LeaseLocked)] == [10, 11, 12]
    reserved_buyer = lease_a.bid.reservation + lease_c.bid.reservation
    assert lease_a.bid.reservation == 6_000_000
    assert ledger(escrow, buyer) == (DEPOSIT - reserved_buyer, reserved_buyer)
    assert ledger(escrow, other_buyer) == (DEPOSIT - lease_b.bid.reservation, lease_b.bid.reservation)
    assert escrow.bidState(buyer, lease_a.bid.nonce) == LOCKED

    # Batch 2: partial usage of A, final usage of B (which stopped early).
    market.post(2, [lease_a.usage(1_500), lease_b.usage(900, final=True)], at=posted + 1_000)
    market.settle(
        1,
        2,
        [(lease_a, lease_a.usage(1_500)), (lease_b, lease_b.usage(900, final=True))],
        at=posted + 1_001,
    )
    paid_a = cost(1_500, 2_500_001)
    paid_b = cost(900, 1_999_999)
    assert ledger(escrow, provider) == (paid_a + paid_b, 0)
    assert escrow.bidState(buyer, lease_a.bid.nonce) == PARTIALLY_SETTLED
    payment = escrow.paymentOf(lease_a.leaf.bid_digest)
    assert (payment.gpuSeconds, payment.amount) == (1_500, paid_a)
    assert ledger(escrow, other_buyer) == (DEPOSIT - paid_b, 0)

    # Batch 3: A's final usage after its whole duration.
    market.post(3, [lease_a.usage(7_000, final=True)], at=posted + 4_000)
    market.settle(1, 3, [(lease_a, lease_a.usage(7_000, final=True))], at=posted + 4_001)
    total_a = cost(7_000, 2_500_001)
    assert total_a == 4_861_113  # floor(7000 * 2_500_001 / 3600): the provider never gets the fraction
    assert ledger(escrow, provider) == (total_a + paid_b, 0)
    assert ledger(escrow, buyer) == (DEPOSIT - total_a - lease_c.bid.reservation, lease_c.bid.reservation)
    assert escrow.bidState(buyer, lease_a.bid.nonce) == CLOSED
    assert escrow.paymentOf(lease_a.leaf.bid_digest).amount == 0
    assert_conserved(escrow, token, [buyer, other_buyer, provider])


def test_lock_and_settle_in_one_call_within_the_lock_window(market: Market, escrow, buyer, provider, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=5, lease_id=1)
    posted = market.post(5, [lease.leaf], at=now)
    market.post(6, [lease.usage(400)], at=posted + 300)
    receipt = market.settle(5, 6, [(lease, lease.usage(400))], at=posted + 301)
    assert len(receipt.decode_logs(escrow.LeaseLocked)) == 1
    assert ledger(escrow, provider) == (cost(400, lease.price), 0)
    assert ledger(escrow, buyer) == (
        DEPOSIT - lease.bid.reservation,
        lease.bid.reservation - cost(400, lease.price),
    )


def test_reclaim_after_the_settle_window_refunds_what_was_not_paid(
    market: Market, escrow, token, buyer, other_buyer, provider, stranger, now
):
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=1)
    posted = market.post(1, [lease.leaf], at=now)
    market.lock(1, [lease], at=posted + 1)
    market.post(2, [lease.usage(1_000)], at=posted + 600)
    market.settle(1, 2, [(lease, lease.usage(1_000))], at=posted + 601)
    reclaimable_at = posted + lease.bid.duration + SETTLE_WINDOW

    with reverts_with(escrow.LeaseReclaimTooEarly, leaseId=1, reclaimableAt=reclaimable_at):
        market.reclaim(1, [lease], at=reclaimable_at - 1, sender=stranger)
    market.reclaim(1, [lease], at=reclaimable_at, sender=stranger)

    paid = cost(1_000, lease.price)
    assert ledger(escrow, provider) == (paid, 0)
    assert ledger(escrow, buyer) == (DEPOSIT - paid, 0)
    assert escrow.bidState(buyer, lease.bid.nonce) == CLOSED
    assert_conserved(escrow, token, [buyer, other_buyer, provider])


def test_withdraw_after_the_notice_moves_tokens_out(escrow, token, buyer, chain, now):
    chain.pending_timestamp = now
    escrow.requestWithdrawal(300_000_000, sender=buyer)
    available_at = now + WITHDRAWAL_NOTICE
    assert escrow.pendingWithdrawal(buyer).availableAt == available_at
    before = token.balanceOf(buyer)

    chain.pending_timestamp = available_at - 1
    with reverts_with(
        escrow.EscrowWithdrawalNotYetAvailable, account=buyer.address, availableAt=available_at
    ):
        escrow.withdraw(sender=buyer)

    chain.pending_timestamp = available_at
    escrow.withdraw(sender=buyer)
    assert token.balanceOf(buyer) == before + 300_000_000
    assert ledger(escrow, buyer) == (DEPOSIT - 300_000_000, 0)
    assert token.balanceOf(escrow) == 2 * DEPOSIT - 300_000_000


# --- rejections ---------------------------------------------------------------------------------------------


def test_lock_rejects_a_bid_signed_by_someone_else(market: Market, escrow, buyer, other_buyer, now):
    lease = market.lease(market.bid(buyer), other_buyer, batch_id=1, lease_id=1)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.BidSignatureInvalid, buyer=buyer.address, recovered=other_buyer.address):
        market.lock(1, [lease], at=posted + 1)


def test_lock_rejects_a_signature_for_another_chain(market: Market, escrow, buyer, chain, now):
    elsewhere = Eip712Domain(chain_id=chain.chain_id + 1, verifying_contract=escrow.address)
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=1, domain=elsewhere)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.BidSignatureInvalid, buyer=buyer.address):
        market.lock(1, [lease], at=posted + 1)


def test_lock_rejects_a_bid_expired_before_the_root(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer, expiry=now - 1), buyer, batch_id=1, lease_id=1)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.BidExpired, buyer=buyer.address, expiry=now - 1, committedAt=posted):
        market.lock(1, [lease], at=posted + 1)


def test_lock_rejects_a_price_above_the_cap(market: Market, escrow, buyer, now):
    bid = market.bid(buyer, max_price_per_gpu_hour=2_000_000)
    lease = market.lease(bid, buyer, batch_id=1, lease_id=9, price=2_000_001)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(
        escrow.LeasePriceAboveCap, leaseId=9, pricePerGpuHour=2_000_001, maxPricePerGpuHour=2_000_000
    ):
        market.lock(1, [lease], at=posted + 1)


def test_a_lease_locks_once_and_a_closed_lease_never_settles_again(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=1)
    posted = market.post(1, [lease.leaf], at=now)
    market.lock(1, [lease], at=posted + 1)
    with reverts_with(escrow.BidNotInState, buyer=buyer.address, nonce=lease.bid.nonce, state=LOCKED):
        market.lock(1, [lease], at=posted + 2)

    market.post(2, [lease.usage(100, final=True)], at=posted + 100)
    market.settle(1, 2, [(lease, lease.usage(100, final=True))], at=posted + 101)
    with reverts_with(escrow.BidNotInState, state=CLOSED):
        market.settle(1, 2, [(lease, lease.usage(100, final=True))], at=posted + 102)


def test_an_invalidated_nonce_cannot_be_locked(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer, nonce=130), buyer, batch_id=1, lease_id=1)
    escrow.invalidateNonces(1, 1 << 2, sender=buyer)  # nonce 130 = word 1, bit 2
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.BidNotInState, nonce=130, state=CLOSED):
        market.lock(1, [lease], at=posted + 1)


def test_lock_rejects_terms_the_root_did_not_commit(market: Market, escrow, buyer, now):
    committed = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=1, price=2_000_000)
    other = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=2)
    posted = market.post(1, [committed.leaf, other.leaf], at=now)
    leases, proof = lock_call(market.trees[1], [committed])
    cheaper = leases[0][:5] + (1_000_000,)  # the committed leaf's proof, a lower price than it commits
    market.chain.pending_timestamp = posted + 1
    with reverts_with(escrow.SettlementInvalidProof, batchId=1):
        escrow.lockLeases(1, [cheaper], proof, sender=market.provider)
    market.post(2, [committed.usage(0)], at=posted + 2)  # a root without the lease leaf
    market.trees[2] = market.trees[1]
    with reverts_with(escrow.SettlementInvalidProof, batchId=2):
        escrow.lockLeases(2, [committed.args()], ([other.leaf.hash()], [False]), sender=market.provider)


def test_settlement_cannot_exceed_the_time_elapsed(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer, gpus=2), buyer, batch_id=1, lease_id=4)
    posted = market.post(1, [lease.leaf], at=now)
    market.lock(1, [lease], at=posted + 1)
    market.post(2, [lease.usage(201)], at=posted + 50)
    with reverts_with(escrow.SettlementExceedsElapsed, leaseId=4, usedGpuSeconds=201, maxGpuSeconds=200):
        market.settle(1, 2, [(lease, lease.usage(201))], at=posted + 100)
    market.settle(1, 2, [(lease, lease.usage(201))], at=posted + 101)


def test_cumulative_usage_never_decreases(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=4)
    posted = market.post(1, [lease.leaf], at=now)
    market.post(2, [lease.usage(500)], at=posted + 300)
    market.settle(1, 2, [(lease, lease.usage(500))], at=posted + 301)
    market.post(3, [lease.usage(400)], at=posted + 400)
    with reverts_with(escrow.SettlementUsageDecreased, leaseId=4, usedGpuSeconds=400, paidGpuSeconds=500):
        market.settle(1, 3, [(lease, lease.usage(400))], at=posted + 401)


def test_lock_window_closes(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=1)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.LeaseLockWindowClosed, batchId=1, closedAt=posted + LOCK_WINDOW):
        market.lock(1, [lease], at=posted + LOCK_WINDOW + 1)
    market.post(2, [lease.usage(10)], at=posted + LOCK_WINDOW + 2)
    with reverts_with(escrow.LeaseLockWindowClosed, batchId=1):  # nor can settling lock it late
        market.settle(1, 2, [(lease, lease.usage(10))], at=posted + LOCK_WINDOW + 3)


def test_lock_rejects_an_inactive_provider(market: Market, escrow, registry, buyer, provider, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=3)
    registry.requestExit(sender=provider)
    posted = market.post(1, [lease.leaf], at=now)
    with reverts_with(escrow.LeaseProviderInactive, leaseId=3, provider=provider.address):
        market.lock(1, [lease], at=posted + 1)


def test_only_the_operator_posts_roots_with_increasing_batch_ids(escrow, operator, stranger):
    with reverts_with(escrow.SettlementUnauthorizedOperator, caller=stranger.address):
        escrow.postRoot(1, b"\x01" * 32, sender=stranger)
    escrow.postRoot(5, b"\x01" * 32, sender=operator)
    with reverts_with(escrow.SettlementBatchIdNotIncreasing, batchId=5, lastBatchId=5):
        escrow.postRoot(5, b"\x02" * 32, sender=operator)
    with reverts_with(escrow.SettlementBatchIdNotIncreasing, batchId=4, lastBatchId=5):
        escrow.postRoot(4, b"\x02" * 32, sender=operator)
    with reverts_with(escrow.SettlementEmptyRoot, batchId=6):
        escrow.postRoot(6, b"\x00" * 32, sender=operator)


def test_usage_must_come_from_a_later_batch(market: Market, escrow, buyer, now):
    lease = market.lease(market.bid(buyer), buyer, batch_id=2, lease_id=1)
    market.post(2, [lease.leaf], at=now)
    with reverts_with(escrow.SettlementUsageBatchNotAfterLease, batchId=2, usageBatchId=2):
        escrow.settleLeases(2, 2, [lease.args()], [(0, False)], ([], []), ([], []), sender=market.provider)


def test_a_wallet_signature_of_the_typed_data_locks(market: Market, escrow, buyer, domain, now):
    """eth_signTypedData_v4 over `typed_data(...)`, as any wallet produces it, is what the escrow accepts."""
    bid = market.bid(buyer)
    signed = Account.sign_typed_data(buyer.private_key, full_message=typed_data(bid, domain))
    lease = market.lease(bid, buyer, batch_id=1, lease_id=1)
    assert Signature(bytes(signed.signature)).compact() == lease.signature
    posted = market.post(1, [lease.leaf], at=now)
    market.lock(1, [lease], at=posted + 1)
    assert escrow.bidState(buyer, bid.nonce) == LOCKED


def test_a_lease_settles_only_under_the_leaf_it_was_locked_with(market: Market, escrow, buyer, stranger, now):
    bid = market.bid(buyer)
    # Batch 1 commits the bid to an unregistered address; nobody can lock that lease.
    shadow = market.lease(bid, buyer, batch_id=1, lease_id=1, provider=stranger.address)
    t1 = market.post(1, [shadow.leaf], at=now)
    # Batch 2, 500 s later, commits the same bid to the registered provider, and that lease is locked.
    real = market.lease(bid, buyer, batch_id=2, lease_id=2)
    t2 = market.post(2, [real.leaf], at=t1 + 500)
    market.lock(2, [real], at=t2 + 1)
    # A usage root for the shadow lease: 2 GPUs x 600 s since batch 1, more than the 2 x 100 s since the lock.
    market.post(3, [shadow.usage(1_200, final=True)], at=t1 + 599)
    with reverts_with(escrow.LeaseTermsMismatch, leaseId=1):
        market.settle(1, 3, [(shadow, shadow.usage(1_200, final=True))], at=t1 + 600)
    # Nor can the shadow leaf close the lease for the buyer after its window.
    late = t2 + bid.duration + SETTLE_WINDOW + 1
    with reverts_with(escrow.LeaseTermsMismatch, leaseId=1):
        market.reclaim(1, [shadow], at=late, sender=stranger)
    # The leaf that was locked still settles.
    market.post(4, [real.usage(180, final=True)], at=late + 1)
    market.settle(2, 4, [(real, real.usage(180, final=True))], at=late + 2)
    assert escrow.bidState(buyer, bid.nonce) == CLOSED
    assert escrow.lockedLeaf(real.leaf.bid_digest) == b"\x00" * 32
