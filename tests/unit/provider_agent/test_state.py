"""The agent's state file: what a restart reads back, and the rules that keep a crash harmless (a GPU held
until its lease ends, a receipt sequence used once, a usage leaf presented once unless its transaction
failed, nonces never reused)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from provider_agent.pricing import PricingInputs, fixed, policy_named, utilisation
from provider_agent.state import AgentState, LeaseRow, LeaseStatus


def lease(lease_id: int, devices: tuple[str, ...], status: LeaseStatus = LeaseStatus.NEW) -> LeaseRow:
    return LeaseRow(
        lease_id=lease_id,
        batch_id=1,
        buyer="0x" + "11" * 20,
        bid_hash="0x" + f"{lease_id:064x}",
        gpus=len(devices),
        duration=60,
        price=3_000_000,
        job_spec_hash="0x" + "22" * 32,
        devices=devices,
        status=status,
        start=None,
        workdir=None,
        job_state=None,
        note=None,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_leases_hold_their_devices_until_they_end_and_survive_a_reopen(path: Path) -> None:
    state = AgentState(path)
    assert state.add_lease(lease(1, ("gpu-0",)), now=10)
    assert not state.add_lease(lease(1, ("gpu-1",)), now=11), "a lease is recorded once"
    assert state.add_lease(lease(2, ("gpu-1",)), now=10)
    assert state.held_devices() == {"gpu-0", "gpu-1"}
    state.update_lease(1, 12, status=LeaseStatus.RUNNING, start=5)
    state.update_lease(2, 12, status=LeaseStatus.REJECTED, note="spec mismatch")
    state.close()

    reopened = AgentState(path)
    assert reopened.held_devices() == {"gpu-0"}
    row = reopened.lease(1)
    assert row is not None and row.status is LeaseStatus.RUNNING and row.ends_at == 65
    for status in (LeaseStatus.ENDED, LeaseStatus.SETTLED, LeaseStatus.LAPSED):
        reopened.update_lease(1, 13, status=status)
        assert reopened.held_devices() == set()


def test_update_lease_refuses_unknown_columns(path: Path) -> None:
    state = AgentState(path)
    with pytest.raises(ValueError, match="update_lease takes"):
        state.update_lease(1, 1, price=1)


def test_a_receipt_sequence_is_stored_once_and_unsent_ones_come_back(path: Path) -> None:
    state = AgentState(path)
    state.add_receipt(7, 0, "0xaa", 100, 1, {"sequence": 0})
    state.add_receipt(7, 1, "0xbb", 101, 1, {"sequence": 1})
    state.mark_receipt_sent(7, 0)
    with pytest.raises(sqlite3.IntegrityError):
        state.add_receipt(7, 1, "0xcc", 102, 1, {"sequence": 1})
    state.close()
    reopened = AgentState(path)
    assert [(r.lease_id, r.sequence) for r in reopened.unsent_receipts()] == [(7, 1)]
    last = reopened.last_receipt(7)
    assert last is not None and last.receipt_hash == "0xbb" and not last.sent
    assert reopened.count_receipts() == (2, 1)


def test_a_usage_leaf_is_presented_once_unless_its_transaction_failed(path: Path) -> None:
    state = AgentState(path)
    state.add_tx("0x01", "settle", 5, "0xraw", [3], now=1, settlements=[(3, 9, 120, False)])
    assert state.presented(3, 9)
    assert state.settled_gpu_seconds(3) == 120
    with pytest.raises(sqlite3.IntegrityError):
        state.add_tx("0x02", "settle", 6, "0xraw", [3], now=2, settlements=[(3, 9, 120, False)])
    assert [t.tx_hash for t in state.pending_txs()] == ["0x01"], "the refused transaction left nothing"

    state.finish_tx("0x01", "reverted", 50_000)
    assert not state.presented(3, 9)
    assert state.settled_gpu_seconds(3) == 0
    state.add_tx("0x03", "settle", 7, "0xraw", [3], now=3, settlements=[(3, 9, 120, True)])
    state.finish_tx("0x03", "mined", 60_000, paid={3: 100})
    assert state.presented(3, 9)
    assert state.earnings() == 100
    assert state.gas_used() == 110_000
    assert state.tx_counts() == {"settle_mined": 1, "settle_reverted": 1}
    assert state.pending_txs() == []


def test_nonces_are_never_handed_out_twice_even_after_losing_the_state_file(path: Path) -> None:
    state = AgentState(path)
    first = [state.next_nonce() for _ in range(3)]
    assert first == sorted(set(first))
    state.close()
    path.unlink()
    fresh = AgentState(path)
    assert fresh.next_nonce() > first[-1], "a fresh state file starts from the clock, past the old nonces"


def test_asks_stay_live_until_known_closed(path: Path) -> None:
    state = AgentState(path)
    state.add_ask("0xa1", 1, 2, 2_000_000, 900, {"type": "ask"}, now=0)
    assert [a.status for a in state.live_asks()] == ["signed"]
    state.set_ask_status("0xa1", "open")
    assert [a.gpus for a in state.live_asks()] == [2]
    state.set_ask_status("0xa1", "closed", "matched")
    assert state.live_asks() == []


def test_pricing_policies_are_integer_and_never_below_the_floor() -> None:
    idle = PricingInputs(floor=2_000_000, recent_prices=[3_000_000, 2_500_000], leased=0, total=4)
    busy = PricingInputs(floor=2_000_000, recent_prices=[6_000_000, 5_000_000], leased=3, total=4)
    assert fixed(busy) == 2_000_000
    assert utilisation(idle) == 2_000_000
    assert utilisation(busy) == max(2_000_000 + 2_000_000 * 3 // 4, 5_500_000 * 3 // 4)
    assert isinstance(utilisation(busy), int)
    assert policy_named("utilisation") is utilisation
    with pytest.raises(ValueError, match="unknown pricing policy"):
        policy_named("surge")
