"""The stage of a bid, derived from the matcher's order and lease bodies (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from gpuspot.sdk import Stage, derive_stage


def lease(
    *,
    locked: bool = False,
    closed: bool = False,
    reclaimed: bool = False,
    state: str = "waiting",
    end_reason: str | None = None,
    last_sequence: int | None = None,
) -> dict[str, Any]:
    return {
        "chain": {"locked": locked, "closed": closed, "reclaimed": reclaimed},
        "evidence": {"state": state, "end_reason": end_reason, "last_sequence": last_sequence},
    }


@pytest.mark.parametrize(
    ("order_status", "lease_body", "stage"),
    [
        ("open", None, Stage.OPEN),
        ("matched", None, Stage.MATCHED),  # matched, lease not found yet
        ("cancelled", None, Stage.CANCELLED),
        ("expired", None, Stage.EXPIRED),
        ("matched", lease(state="unposted"), Stage.MATCHED),
        ("matched", lease(locked=True), Stage.LOCKED),
        ("matched", lease(locked=True, state="collecting", last_sequence=0), Stage.RUNNING),
        ("matched", lease(state="collecting", last_sequence=3), Stage.RUNNING),  # receipts before the lock
        (
            "matched",
            lease(locked=True, state="ended", end_reason="terminal", last_sequence=5),
            Stage.FINISHED,
        ),
        ("matched", lease(locked=True, state="ended", end_reason="gap", last_sequence=2), Stage.FINISHED),
        ("matched", lease(locked=True, closed=True, state="ended", last_sequence=5), Stage.SETTLED),
        ("matched", lease(state="ended", end_reason="rejected", last_sequence=0), Stage.REJECTED),
        ("matched", lease(locked=True, closed=True, reclaimed=True, state="ended"), Stage.RECLAIMED),
        ("matched", lease(state="lapsed"), Stage.LAPSED),
    ],
)
def test_stage_from_order_and_lease(
    order_status: str, lease_body: dict[str, Any] | None, stage: Stage
) -> None:
    assert derive_stage({"status": order_status}, lease_body) is stage


def test_progress_stages_are_ordered_and_failures_are_terminal() -> None:
    progress = [Stage.OPEN, Stage.MATCHED, Stage.LOCKED, Stage.RUNNING, Stage.FINISHED, Stage.SETTLED]
    assert progress == sorted(progress)
    assert not any(s.failed for s in progress)
    assert all(
        s.failed for s in (Stage.CANCELLED, Stage.EXPIRED, Stage.REJECTED, Stage.RECLAIMED, Stage.LAPSED)
    )
    assert Stage.SETTLED.label == "settled"
