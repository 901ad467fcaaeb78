"""GroupCommit: concurrent requests handled in shared rounds, each caller getting exactly its own answers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from matcher.group_commit import GroupCommit


def test_each_caller_gets_its_own_results_in_order_and_rounds_are_shared() -> None:
    rounds: list[list[int]] = []
    gate = threading.Event()

    def process(items: list[int]) -> list[int]:
        gate.wait(5)  # hold the first round so that the others queue behind it
        rounds.append(items)
        return [item * 10 for item in items]

    group = GroupCommit(process)
    requests = [[n, n + 1000] for n in range(40)]
    with ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(group.submit, r) for r in requests]
        threading.Timer(0.2, gate.set).start()
        answers = [f.result(timeout=10) for f in futures]
    assert answers == [[n * 10, (n + 1000) * 10] for n in range(40)]
    assert sorted(i for r in rounds for i in r) == sorted(i for r in requests for i in r)  # each item once
    assert len(rounds) < len(requests)  # requests that waited shared rounds
    assert group.rounds == len(rounds)


def test_a_round_never_exceeds_max_items_and_never_splits_a_request() -> None:
    seen: list[int] = []
    gate = threading.Event()

    def process(items: list[str]) -> list[str]:
        gate.wait(5)
        seen.append(len(items))
        return items

    group = GroupCommit(process, max_items=5)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(group.submit, ["x"] * 2) for _ in range(10)]
        futures.append(pool.submit(group.submit, ["big"] * 7))  # over the limit: a round of its own
        threading.Timer(0.2, gate.set).start()
        for f in futures:
            f.result(timeout=10)
    assert all(size <= 5 or size == 7 for size in seen)
    assert 7 in seen and sum(seen) == 27


def test_an_error_reaches_every_request_of_its_round_and_the_next_round_runs() -> None:
    calls = 0

    def process(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return items

    group = GroupCommit(process)
    with pytest.raises(OSError, match="disk full"):
        group.submit([1])
    assert group.submit([2, 3]) == [2, 3]


def test_a_process_that_loses_results_is_an_error_not_a_wrong_answer() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="2 items gave 1 results"):
        group.submit([1, 2])


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items"):
        GroupCommit(lambda items: items, max_items=0)


def test_enqueued_requests_wait_for_a_drain_which_handles_them_in_shared_rounds() -> None:
    rounds: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        rounds.append(items)
        return [-item for item in items]

    group = GroupCommit(process, max_items=3)
    pending = [group.enqueue([n]) for n in range(5)]
    assert not any(p.done for p in pending) and rounds == []
    group.drain()
    assert [p.result() for p in pending] == [[0], [-1], [-2], [-3], [-4]]
    assert rounds == [[0, 1, 2], [3, 4]]
