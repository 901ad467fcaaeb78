"""Fixtures for the matcher's chain adapter on Anvil: a web3.py connection to the Anvil that ape started, the
operator's key as an eth-account `LocalAccount`, and factories for the root poster and the chain watcher.

The market itself (deployment, funded buyers, registered provider, `Market` driver) comes from
tests/integration/conftest.py; ape reverts the chain after every test, as there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpuspot.catalog import Catalog
from gpuspot.deployment import Deployment
from matcher.chain import ChainWatcher, RetryPolicy, RootPoster
from matcher.service import MatcherService
from matcher.store import Store

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def web3(chain) -> Web3:
    return chain.provider.web3


@pytest.fixture(scope="module")
def operator_key(operator) -> LocalAccount:
    return Account.from_key(operator.private_key)


@pytest.fixture
def make_poster(web3, deployment: Deployment, operator_key) -> Callable[..., RootPoster]:
    """A new poster each call, as a restarted matcher would build it."""

    def make(**options: Any) -> RootPoster:
        options = {"receipt_timeout": 10.0, "poll_interval": 0.02, "retry": FAST_RETRY, **options}
        return RootPoster.from_deployment(web3, deployment, operator_key, **options)

    return make


@pytest.fixture
def poster(make_poster) -> RootPoster:
    return make_poster()


@pytest.fixture
def make_watcher(web3, deployment: Deployment) -> Callable[..., ChainWatcher]:
    def make(**options: Any) -> ChainWatcher:
        options = {"confirmations": 0, "reorg_depth": 8, "retry": FAST_RETRY, **options}
        return ChainWatcher.from_deployment(web3, deployment, **options)

    return make


@pytest.fixture
def make_service(tmp_path: Path, deployment, web3, make_poster, make_watcher, chain, escrow, registry):
    db = f"sqlite:///{tmp_path / 'matcher.db'}"
    opened: list[MatcherService] = []

    def make(**options: Any) -> MatcherService:
        service = MatcherService(
            store=Store.open(db),
            catalog=Catalog.default(),
            deployment=deployment,
            web3=web3,
            poster=options.pop("poster", None) or make_poster(),
            watcher=make_watcher(),
            root_posting_margin=60,
            clock=lambda: int(chain.pending_timestamp),
            **options,
        )
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()
