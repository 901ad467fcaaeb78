"""Fixtures for the escrow on Anvil: deployed contracts, funded accounts, a registered provider, and a
`Market` driver (see market_driver.py) that builds leases the way the matcher does.

ape's pytest plugin snapshots the chain after the module-scoped fixtures and reverts to it after every
test, so each test starts from the same deployed, funded market.
"""

from __future__ import annotations

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
def token(project, owner):
    return owner.deploy(project.TestStablecoin)


@pytest.fixture(scope="module")
def registry(project, owner, token, provider):
    registry = owner.deploy(project.ProviderRegistry, token, MIN_STAKE, EXIT_DELAY, owner, owner)
    token.mint(provider, MIN_STAKE, sender=provider)
    token.approve(registry, MIN_STAKE, sender=provider)
    registry.register(b"\x01" * 32, MIN_STAKE, sender=provider)
    return registry


@pytest.fixture(scope="module")
def escrow(project, owner, operator, token, registry, buyer, other_buyer):
    escrow = owner.deploy(
        project.Escrow, token, registry, owner, operator, WITHDRAWAL_NOTICE, LOCK_WINDOW, SETTLE_WINDOW
    )
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
