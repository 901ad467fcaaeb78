"""The chain watcher on Anvil: every market event decoded in chain order, bounded reads, a saved cursor that
survives a restart, the confirmation lag, and reorgs (Anvil snapshots replace blocks) reported and re-read."""

from __future__ import annotations

import pytest
from hexbytes import HexBytes
from market_driver import DEPOSIT, MIN_STAKE, WITHDRAWAL_NOTICE

from matcher.chain import (
    ArbiterChanged,
    ChainCursor,
    ChainEvent,
    Deposited,
    InvalidCursorError,
    LeaseLocked,
    LeaseSettled,
    NoncesInvalidated,
    OperatorChanged,
    ProviderRegistered,
    Reorg,
    ReorgTooDeepError,
    RootPosted,
    WithdrawalCancelled,
    WithdrawalRequested,
)
from matcher.chain.events import ESCROW_EVENTS, REGISTRY_EVENTS, snake_case

ZERO_ADDRESS = "0x" + "00" * 20


def poll_all(watcher, cursor):
    """Polls until caught up; returns everything seen and the last cursor, round-tripping it through JSON
    between polls as the service does."""
    items: list = []
    while True:
        new_items, new_cursor = watcher.poll(ChainCursor.from_json(cursor.to_json()))
        items.extend(new_items)
        if new_cursor == cursor:
            return items, cursor
        cursor = new_cursor


def drive_lease_flow(market, buyer, now):
    """Post, lock and settle one lease; returns the lease and the post time."""
    lease = market.lease(market.bid(buyer), buyer, batch_id=1, lease_id=7, price=2_500_000)
    posted = market.post(1, [lease.leaf], at=now)
    market.lock(1, [lease], at=posted + 5)
    market.post(2, [lease.usage(1_800, final=True)], at=posted + 1_000)
    market.settle(1, 2, [(lease, lease.usage(1_800, final=True))], at=posted + 1_001)
    return lease, posted


def test_watcher_decodes_the_market_events_in_chain_order(
    web3, make_watcher, deployment, escrow, registry, market, buyer, other_buyer, provider, now
):
    withdrawal = escrow.requestWithdrawal(250_000, sender=buyer)
    escrow.cancelWithdrawal(sender=buyer)
    escrow.invalidateNonces(1, 1 << 2, sender=other_buyer)
    lease, posted = drive_lease_flow(market, buyer, now)

    watcher = make_watcher()
    items, cursor = watcher.poll(watcher.start_cursor(deployment))

    assert all(isinstance(item, ChainEvent) for item in items)
    assert [type(item).__name__ for item in items] == [
        "ArbiterChanged",  # the registry's and the escrow's constructors
        "OperatorChanged",
        "ProviderRegistered",
        "Deposited",
        "Deposited",
        "WithdrawalRequested",
        "WithdrawalCancelled",
        "NoncesInvalidated",
        "RootPosted",
        "LeaseLocked",
        "RootPosted",
        "LeaseSettled",
    ]
    assert [item.position for item in items] == sorted(item.position for item in items)
    arbiter, operator_set, registered, deposit_a, deposit_b, requested, cancelled, invalidated, *rest = items
    root_1, locked, root_2, settled = rest
    assert isinstance(arbiter, ArbiterChanged) and isinstance(operator_set, OperatorChanged)
    assert (arbiter.previous_arbiter, arbiter.new_arbiter) == (ZERO_ADDRESS, deployment.arbiter)
    assert (operator_set.previous_operator, operator_set.new_operator) == (ZERO_ADDRESS, deployment.operator)
    assert arbiter.block_number == deployment.block_number + 1  # the token is deployed first
    assert isinstance(registered, ProviderRegistered)
    assert (registered.provider, registered.stake, registered.metadata_hash) == (
        provider.address,
        MIN_STAKE,
        b"\x01" * 32,
    )
    assert isinstance(deposit_a, Deposited) and isinstance(deposit_b, Deposited)
    assert [(d.account, d.amount) for d in (deposit_a, deposit_b)] == [
        (buyer.address, DEPOSIT),
        (other_buyer.address, DEPOSIT),
    ]
    assert isinstance(requested, WithdrawalRequested)
    assert (requested.account, requested.amount) == (buyer.address, 250_000)
    assert (
        requested.available_at == web3.eth.get_block(requested.block_number)["timestamp"] + WITHDRAWAL_NOTICE
    )
    assert (requested.tx_hash, requested.block_number) == (
        bytes(HexBytes(withdrawal.txn_hash)),
        withdrawal.block_number,
    )
    assert requested.block_hash == bytes(web3.eth.get_block(requested.block_number)["hash"])
    assert isinstance(cancelled, WithdrawalCancelled) and cancelled.account == buyer.address
    assert isinstance(invalidated, NoncesInvalidated)
    assert (invalidated.account, invalidated.word_pos) == (other_buyer.address, 1)
    assert invalidated.closed_lanes == 1 << 4  # nonce 130: bit 2 of the mask, lane bit 2 * 2
    assert isinstance(root_1, RootPosted) and isinstance(root_2, RootPosted)
    assert (root_1.batch_id, root_1.root, root_1.posted_at) == (1, market.trees[1].root, posted)
    assert (root_2.batch_id, root_2.root, root_2.posted_at) == (2, market.trees[2].root, posted + 1_000)
    assert isinstance(locked, LeaseLocked)
    assert (locked.lease_id, locked.buyer, locked.provider, locked.batch_id, locked.nonce) == (
        7,
        buyer.address,
        provider.address,
        1,
        lease.bid.nonce,
    )
    assert (locked.bid_digest, locked.reserved) == (lease.leaf.bid_digest, lease.bid.reservation)
    assert isinstance(settled, LeaseSettled)
    paid = 1_800 * 2_500_000 // 3600
    assert (settled.lease_id, settled.used_gpu_seconds, settled.paid, settled.closed) == (
        7,
        1_800,
        paid,
        True,
    )
    assert settled.refunded == lease.bid.reservation - paid
    for item in items:
        assert len(item.block_hash) == 32 and len(item.tx_hash) == 32 and item.log_index >= 0

    assert cursor.next_block == watcher.safe_head() + 1
    assert watcher.poll(cursor) == ([], cursor)


def test_bounded_ranges_and_saved_cursors_give_the_same_events(
    make_watcher, deployment, escrow, market, buyer, now
):
    drive_lease_flow(market, buyer, now)
    whole, whole_cursor = make_watcher().poll(ChainCursor.start(deployment.block_number))

    watcher = make_watcher(max_block_range=2, max_ranges_per_poll=2)  # 4 blocks a poll: several polls
    pieces, cursor = poll_all(watcher, watcher.start_cursor(deployment))
    assert pieces == whole and cursor == whole_cursor
    assert len(cursor.recent_blocks) == watcher.reorg_depth
    assert ChainCursor.from_json(cursor.to_json()) == cursor


def test_confirmations_hold_back_the_newest_blocks(make_watcher, deployment, escrow, buyer, chain, web3):
    watcher = make_watcher(confirmations=2)
    chain.mine(2)
    _, cursor = watcher.poll(watcher.start_cursor(deployment))
    assert cursor.next_block == web3.eth.block_number - 1
    escrow.requestWithdrawal(1, sender=buyer)
    items, cursor = watcher.poll(cursor)
    assert items == []
    chain.mine(1)
    items, cursor = watcher.poll(cursor)
    assert items == []
    chain.mine(1)
    items, _ = watcher.poll(cursor)
    assert [type(item) for item in items] == [WithdrawalRequested]


def test_a_reorg_is_reported_and_the_new_blocks_are_read(
    make_watcher, deployment, escrow, buyer, other_buyer, chain
):
    watcher = make_watcher(reorg_depth=4)
    _, cursor = watcher.poll(watcher.start_cursor(deployment))
    fork_block = cursor.next_block
    snapshot = chain.snapshot()

    escrow.requestWithdrawal(111, sender=buyer)
    escrow.requestWithdrawal(222, sender=buyer)
    items, cursor = watcher.poll(cursor)
    assert [(item.amount, item.block_number) for item in items] == [(111, fork_block), (222, fork_block + 1)]
    old_hash = cursor.last_block.hash

    chain.restore(snapshot)  # the two blocks vanish; another history replaces them
    escrow.requestWithdrawal(333, sender=other_buyer)
    escrow.requestWithdrawal(444, sender=other_buyer)
    escrow.requestWithdrawal(555, sender=other_buyer)
    items, cursor = watcher.poll(cursor)

    assert items[0] == Reorg(from_block=fork_block)
    assert [(item.account, item.amount) for item in items[1:]] == [
        (other_buyer.address, 333),
        (other_buyer.address, 444),
        (other_buyer.address, 555),
    ]
    assert items[1].block_number == fork_block
    assert cursor.next_block == fork_block + 3 and cursor.recent_blocks[-3].hash != old_hash
    assert watcher.poll(cursor) == ([], cursor)


def test_a_reorg_to_a_shorter_chain_rewinds_the_cursor(make_watcher, deployment, escrow, buyer, chain):
    watcher = make_watcher(reorg_depth=4)
    _, cursor = watcher.poll(watcher.start_cursor(deployment))
    fork_block = cursor.next_block
    snapshot = chain.snapshot()
    escrow.requestWithdrawal(111, sender=buyer)
    _, cursor = watcher.poll(cursor)

    chain.restore(snapshot)
    items, rewound = watcher.poll(cursor)
    assert items == [Reorg(from_block=fork_block)] and rewound.next_block == fork_block

    escrow.requestWithdrawal(222, sender=buyer)
    items, _ = watcher.poll(rewound)
    assert [(type(item), item.amount) for item in items] == [(WithdrawalRequested, 222)]


def test_a_reorg_deeper_than_the_kept_hashes_is_refused(make_watcher, deployment, escrow, buyer, chain):
    watcher = make_watcher(reorg_depth=2)
    _, cursor = watcher.poll(watcher.start_cursor(deployment))
    snapshot = chain.snapshot()
    for amount in (1, 2, 3):
        escrow.requestWithdrawal(amount, sender=buyer)
    _, cursor = watcher.poll(cursor)
    chain.restore(snapshot)
    escrow.requestWithdrawal(9, sender=buyer)
    escrow.requestWithdrawal(8, sender=buyer)
    escrow.requestWithdrawal(7, sender=buyer)
    with pytest.raises(ReorgTooDeepError, match="raise reorg_depth"):
        watcher.poll(cursor)


def test_a_corrupt_cursor_is_refused_with_what_to_do():
    with pytest.raises(InvalidCursorError, match="Delete it to resync"):
        ChainCursor.from_json('{"next_block": "x"}')
    with pytest.raises(InvalidCursorError, match="consecutive"):
        ChainCursor.from_json('{"next_block": 10, "recent_blocks": [[3, "0x' + "00" * 32 + '"]]}')


def test_every_event_of_the_interfaces_has_a_typed_dataclass():
    from matcher.chain import ESCROW, PROVIDER_REGISTRY, load_abi

    for contract, classes in ((ESCROW, ESCROW_EVENTS), (PROVIDER_REGISTRY, REGISTRY_EVENTS)):
        interface = load_abi("I" + contract)
        declared = {entry["name"] for entry in interface if entry["type"] == "event"}
        assert declared == {cls.__name__ for cls in classes}
    assert snake_case("usedGpuSeconds") == "used_gpu_seconds"
