"""The chain mirror: events applied with the cursor in one transaction, the views over them, and reorgs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store_market import BUYER, BUYER2, NOW, PROVIDER, accepted, ask, bid, event

from gpuspot.protocol import keccak256
from matcher.chain import (
    BlockRef,
    ChainCursor,
    ChainEvent,
    ExitRequested,
    LeaseLocked,
    LeaseReclaimed,
    LeaseSettled,
    NoncesInvalidated,
    ProviderRegistered,
    ProviderSlashed,
    Reorg,
    RootPosted,
    StakeAdded,
    WithdrawalCancelled,
    WithdrawalRequested,
    Withdrawn,
)
from matcher.intake import AcceptedOrder
from matcher.store import Store

MIN_STAKE = 100_000_000


def cursor_at(next_block: int, depth: int = 4) -> ChainCursor:
    refs = tuple(
        BlockRef(n, keccak256(b"block %d" % n)) for n in range(max(0, next_block - depth), next_block)
    )
    return ChainCursor(next_block=next_block, recent_blocks=refs)


def history() -> list[ChainEvent]:
    """A chain of events over blocks 10..14."""
    return [
        event(ProviderRegistered, 10, 0, provider=PROVIDER, stake=MIN_STAKE, metadata_hash=b"\x01" * 32),
        event(WithdrawalRequested, 10, 1, account=BUYER, amount=5, available_at=99),
        # nonces 3 and 127: two bits of state per nonce, bit 2i closes nonce i
        event(NoncesInvalidated, 11, 0, account=BUYER, word_pos=0, closed_lanes=(1 << 6) | (1 << 254)),
        event(RootPosted, 11, 1, batch_id=1, root=b"\x02" * 32, posted_at=1000),
        event(
            LeaseLocked, 12, 0, lease_id=1, buyer=BUYER2, provider=PROVIDER, batch_id=1, nonce=2**200,
            bid_digest=b"\x03" * 32, reserved=2**100,
        ),
        event(WithdrawalCancelled, 12, 1, account=BUYER),
        event(LeaseSettled, 13, 0, lease_id=1, used_gpu_seconds=600, paid=2**99, refunded=0, closed=False),
        event(ProviderSlashed, 13, 1, provider=PROVIDER, recipient=BUYER, amount=1, stake_left=MIN_STAKE - 1,
              reason=b"\x04" * 32),
        event(ExitRequested, 14, 0, provider=PROVIDER, exit_available_at=5000),
        event(WithdrawalRequested, 14, 1, account=BUYER2, amount=1, available_at=2),
    ]  # fmt: skip


def mirror(store: Store) -> dict[str, object]:
    """Everything the mirror answers, for comparisons."""
    return {
        "cursor": store.chain_cursor(),
        "nonces": [
            store.is_nonce_closed(account, nonce)
            for account in (BUYER, BUYER2)
            for nonce in (0, 3, 4, 127, 128, 2**200)
        ],
        "withdrawals": [store.withdrawal_pending(a) for a in (BUYER, BUYER2)],
        "provider": [store.provider_active(PROVIDER, MIN_STAKE), store.provider_active(PROVIDER)],
        "root": store.posted_root(1),
        "lease": store.chain_lease(1),
    }


def test_apply_chain_stores_events_and_cursor_together(store: Store) -> None:
    assert store.chain_cursor() is None
    assert store.apply_chain(history()[:2], cursor_at(11)) == 2
    assert store.chain_cursor() == cursor_at(11)
    assert store.provider_active(PROVIDER, MIN_STAKE)
    assert not store.provider_active(BUYER)
    assert store.withdrawal_pending(BUYER)
    # re-applying a poll (e.g. after a crash between two polls) stores nothing twice
    assert store.apply_chain(history()[:2], cursor_at(11)) == 0


def test_mirror_views_follow_the_events(store: Store) -> None:
    store.apply_chain(history(), cursor_at(15))
    assert store.is_nonce_closed(BUYER, 3) and store.is_nonce_closed(BUYER, 127)
    assert not store.is_nonce_closed(BUYER, 4) and not store.is_nonce_closed(BUYER, 128 + 3)
    assert store.is_nonce_closed(BUYER2, 2**200)  # consumed by the lock
    assert not store.is_nonce_closed(BUYER2, 2**200 - 1)
    assert not store.withdrawal_pending(BUYER)  # requested, then cancelled
    assert store.withdrawal_pending(BUYER2)
    assert not store.provider_active(PROVIDER)  # exit requested
    assert store.posted_root(1) == (b"\x02" * 32, 1000)
    assert store.posted_root(2) is None
    lease = store.chain_lease(1)
    assert lease.locked and lease.reserved == 2**100 and lease.paid == 2**99 and not lease.closed


def test_slashing_below_the_minimum_stake_deactivates_then_stake_restores(store: Store) -> None:
    store.apply_chain(history()[:8], cursor_at(14))
    assert not store.provider_active(PROVIDER, MIN_STAKE)
    assert store.provider_active(PROVIDER, MIN_STAKE - 1)
    store.apply_chain([event(StakeAdded, 14, 0, provider=PROVIDER, amount=1, stake=MIN_STAKE)], cursor_at(15))
    assert store.provider_active(PROVIDER, MIN_STAKE)


def test_withdrawn_ends_a_pending_withdrawal(store: Store) -> None:
    store.apply_chain(
        [
            event(WithdrawalRequested, 1, 0, account=BUYER, amount=5, available_at=9),
            event(Withdrawn, 2, 0, account=BUYER, amount=5),
        ],
        cursor_at(3),
    )
    assert not store.withdrawal_pending(BUYER)


def test_reclaim_closes_a_lease(store: Store) -> None:
    store.apply_chain(history()[:7] + [event(LeaseReclaimed, 20, 0, lease_id=1, refunded=7)], cursor_at(21))
    lease = store.chain_lease(1)
    assert lease.closed and lease.reclaimed and lease.refunded == 7


def test_rewind_restores_the_mirror_exactly(store: Store, tmp_path: Path) -> None:
    events = history()
    for block in range(10, 15):  # one poll per block
        store.apply_chain([e for e in events if e.block_number == block], cursor_at(block + 1))
    reference = Store.open(f"sqlite:///{tmp_path}/reference.db")  # fed only what survives the reorg
    reference.apply_chain([e for e in events if e.block_number < 12], cursor_at(12, depth=1))

    assert store.rewind_chain(12) == 6
    assert mirror(store) == mirror(reference)
    assert store.chain_cursor() == ChainCursor(12, (BlockRef(11, keccak256(b"block 11")),))
    reference.close()


def test_a_reorg_marker_rewinds_then_applies_the_replacement(store: Store) -> None:
    events = history()
    store.apply_chain(events, cursor_at(15))
    assert not store.withdrawal_pending(BUYER)
    replacement = [
        Reorg(from_block=12),
        event(WithdrawalRequested, 12, 0, account=BUYER2, amount=9, available_at=1),
    ]
    store.apply_chain(replacement, cursor_at(13))
    assert store.withdrawal_pending(BUYER)  # the cancellation in block 12 is gone
    assert store.withdrawal_pending(BUYER2)
    assert not store.chain_lease(1).locked
    assert not store.is_nonce_closed(BUYER2, 2**200)
    assert store.provider_active(PROVIDER, MIN_STAKE)  # slash and exit were in blocks 13 and 14
    assert store.chain_cursor() == cursor_at(13)


def test_the_mirror_survives_a_restart(open_store: Callable[[], Store]) -> None:
    store = open_store()
    store.apply_chain(history(), cursor_at(15))
    before = mirror(store)
    store.close()
    assert mirror(open_store()) == before


def _statuses(store: Store, *orders: AcceptedOrder) -> list[str]:
    return [store.get_order(o.order_hash).status.value for o in orders]  # type: ignore[union-attr]


def test_chain_events_cancel_the_open_orders_they_make_unfillable(store: Store) -> None:
    invalidated, lane_kept, other_word = (accepted(bid(nonce=n)) for n in (3, 4, 128 + 3))
    consumed = accepted(bid("buyer-2", nonce=7))
    ask_of_exiting = accepted(ask(nonce=1))
    for order in (invalidated, lane_kept, other_word, consumed, ask_of_exiting):
        store.add_order(order, NOW)
    store.apply_chain(
        [
            event(NoncesInvalidated, 10, 0, account=BUYER, word_pos=0, closed_lanes=1 << 6),  # nonce 3
            event(
                LeaseLocked, 10, 1, lease_id=9, buyer=BUYER2, provider=PROVIDER, batch_id=1, nonce=7,
                bid_digest=b"\x05" * 32, reserved=1,
            ),
            event(ExitRequested, 11, 0, provider=PROVIDER, exit_available_at=5000),
        ],
        cursor_at(12),
        at=NOW + 1,
    )  # fmt: skip
    assert _statuses(store, invalidated, lane_kept, other_word, consumed, ask_of_exiting) == [
        "cancelled", "open", "open", "cancelled", "cancelled",
    ]  # fmt: skip
    history = store.order_history(invalidated.order_hash)
    assert history[-1].at == NOW + 1 and "nonce 3 invalidated on-chain (block 10" in (
        history[-1].reason or ""
    )
    assert "lease 9" in (store.order_history(consumed.order_hash)[-1].reason or "")
    assert "requested its exit" in (store.order_history(ask_of_exiting.order_hash)[-1].reason or "")


def test_a_withdrawal_request_cancels_the_buyers_bids_and_a_light_slash_keeps_asks(store: Store) -> None:
    bid_of_leaving = accepted(bid(nonce=1))
    bid_of_other = accepted(bid("buyer-2", nonce=1))
    provider_ask = accepted(ask(nonce=2))
    for order in (bid_of_leaving, bid_of_other, provider_ask):
        store.add_order(order, NOW)
    store.apply_chain(
        [
            event(WithdrawalRequested, 10, 0, account=BUYER, amount=5, available_at=99),
            event(ProviderSlashed, 10, 1, provider=PROVIDER, recipient=BUYER, amount=1, stake_left=MIN_STAKE,
                  reason=b"\x04" * 32),
        ],
        cursor_at(11),
        at=NOW,
        min_stake=MIN_STAKE,
    )  # fmt: skip
    assert _statuses(store, bid_of_leaving, bid_of_other, provider_ask) == ["cancelled", "open", "open"]
    store.apply_chain(
        [
            event(ProviderSlashed, 11, 0, provider=PROVIDER, recipient=BUYER, amount=1,
                  stake_left=MIN_STAKE - 1, reason=b"\x04" * 32),
        ],
        cursor_at(12),
        at=NOW,
        min_stake=MIN_STAKE,
    )  # fmt: skip
    assert _statuses(store, provider_ask) == ["cancelled"]


def test_intake_state_reads_many_accounts_and_nonces_as_the_single_views_do(store: Store) -> None:
    store.apply_chain(history(), cursor_at(15))
    open_bid = accepted(bid("buyer-2", nonce=5, gpus=3))
    store.add_order(open_bid, NOW)
    pairs = [(a, n) for a in (BUYER, BUYER2) for n in (0, 3, 4, 127, 128, 5, 2**200)]
    state = store.intake_state(
        buyers=[BUYER, BUYER2],
        providers=[PROVIDER],
        nonces=pairs,
        min_stake=MIN_STAKE,
        lock_window=60,
        now=NOW,
    )
    assert state.closed_nonces == {p for p in pairs if store.is_nonce_closed(*p)}
    assert state.open_nonces == {(BUYER2, 5): open_bid.order_hash}
    assert state.pending_withdrawals == {a for a in (BUYER, BUYER2) if store.withdrawal_pending(a)}
    assert state.active_providers == set()  # slashed below the minimum, then exiting
    assert state.reservations == {BUYER2: open_bid.max_cost}
