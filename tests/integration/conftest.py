"""Fixtures for the escrow on Anvil: deployed contracts, funded accounts, a registered provider, and a
`Market` driver (see market_driver.py) that builds leases the way the matcher does.

ape's pytest plugin snapshots the chain after the module-scoped fixtures and reverts to it after every
test, so each test starts from the same deployed, funded market.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from market_driver import (
    DEPOSIT,
    EXIT_DELAY,
    LOCK_WINDOW,
    MIN_STAKE,
    SETTLE_WINDOW,
    WITHDRAWAL_NOTICE,
    Market,
)

from gpuspot.deploy import deploy_market
from gpuspot.deployment import Deployment, MarketParameters
from gpuspot.protocol import Eip712Domain


@pytest.fixture(scope="module")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def operator(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def provider(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def buyer(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def other_buyer(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def stranger(accounts):
    return accounts[5]


@pytest.fixture(scope="module")
def agent_account(accounts: Any, token: Any) -> Any:
    """A provider agent's key, funded with its stake but not registered: the agent registers itself."""
    account = accounts[6]
    token.mint(account, MIN_STAKE, sender=account)
    return account


@pytest.fixture(scope="module")
def deployment(project, chain, owner, operator) -> Deployment:
    """The market deployed by the same procedure as `ape run deploy`; the owner is also the arbiter."""
    parameters = MarketParameters(
        min_stake=MIN_STAKE,
        exit_delay=EXIT_DELAY,
        withdrawal_notice=WITHDRAWAL_NOTICE,
        lock_window=LOCK_WINDOW,
        settle_window=SETTLE_WINDOW,
    )
    return deploy_market(
        project, owner, chain.chain_id, parameters, operator=operator.address, progress=lambda _: None
    )


@pytest.fixture(scope="module")
def token(project, deployment):
    return project.TestStablecoin.at(deployment.token)


@pytest.fixture(scope="module")
def registry(project, deployment, token, provider):
    registry = project.ProviderRegistry.at(deployment.registry)
    token.mint(provider, MIN_STAKE, sender=provider)
    token.approve(registry, MIN_STAKE, sender=provider)
    registry.register(b"\x01" * 32, MIN_STAKE, sender=provider)
    return registry


@pytest.fixture(scope="module")
def escrow(project, deployment, token, registry, buyer, other_buyer):
    escrow = project.Escrow.at(deployment.escrow)
    for account in (buyer, other_buyer):
        token.mint(account, DEPOSIT, sender=account)
        token.approve(escrow, DEPOSIT, sender=account)
        escrow.deposit(DEPOSIT, sender=account)
    return escrow


@pytest.fixture(scope="module")
def domain(chain, escrow) -> Eip712Domain:
    return Eip712Domain(chain_id=chain.chain_id, verifying_contract=escrow.address)


@pytest.fixture
def market(escrow, chain, operator, provider, domain) -> Market:
    return Market(escrow=escrow, chain=chain, operator=operator, provider=provider, domain=domain)


@pytest.fixture
def now(chain) -> int:
    """A base time for the test, safely after the latest block."""
    return int(chain.pending_timestamp) + 10


@pytest.fixture
def interval_mining(chain: Any) -> Iterator[Callable[[int], None]]:
    """Call it with N to have Anvil mine a block every N seconds, on the wall clock, as a chain would: ape's
    revert after the previous test set the chain's clock back, and processes that time things by the wall
    clock (receipts, the matcher's evidence) must agree with block times. Back to mining at once (before
    ape reverts) after the test."""
    web3 = chain.provider.web3

    def start(seconds: int) -> None:
        latest = int(web3.eth.get_block("latest")["timestamp"])
        web3.provider.make_request("evm_setTime", [max(int(time.time()), latest + 1)])
        web3.provider.make_request("evm_setIntervalMining", [seconds])

    try:
        yield start
    finally:
        web3.provider.make_request("evm_setAutomine", [True])


@pytest.fixture
def matcher_launcher(
    tmp_path: Any, chain: Any, deployment: Deployment, operator: Any
) -> Iterator[Callable[..., Any]]:
    """Call it (with `MatcherConfig` options such as `batch_interval` or `extra_env`) for a `MatcherLauncher`
    of real `python -m matcher` processes on this test's deployment, a fresh database and the operator's
    key; every matcher still running is ended at teardown."""
    from matcher_process import MatcherConfig, MatcherLauncher

    launchers: list[MatcherLauncher] = []

    def make(**options: Any) -> MatcherLauncher:
        deployment_file = tmp_path / "deployment.json"
        deployment.save(deployment_file)
        config = MatcherConfig(
            rpc_url=chain.provider.http_uri,
            deployment_file=deployment_file,
            database_url=f"sqlite:///{tmp_path / 'matcher.db'}",
            operator_key=str(operator.private_key),
            log_dir=tmp_path / "logs",
            **options,
        )
        launchers.append(MatcherLauncher(config))
        return launchers[-1]

    try:
        yield make
    finally:
        for launcher in launchers:
            launcher.close()
