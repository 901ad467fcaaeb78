"""Fixtures for the explorer's page tests: a market in a real SQLite store (explorer_market.py), and an
empty one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from explorer_market import FakeChain, Market, fill, make_client

from matcher.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/matcher.db")
    yield opened
    opened.close()


@pytest.fixture
def market(store: Store) -> Market:
    chain = FakeChain()
    bids, ask_hash, receipts = fill(store, chain)
    client, view = make_client(store, chain)
    return Market(store, chain, client, view, bids, ask_hash, receipts)


@pytest.fixture
def empty(store: Store) -> Market:
    chain = FakeChain()
    client, view = make_client(store, chain)
    return Market(store, chain, client, view, [], b"", [])
