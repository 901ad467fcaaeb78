"""Deploys the market's contracts with ape and describes the result as a `Deployment`.

Kept out of `scripts/` so tests, the devnet command and the deploy script share one procedure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpuspot.deployment import DEVNET_CHAIN_ID, Deployment, MarketParameters

log = logging.getLogger(__name__)


class DeployError(Exception):
    """A deployment was refused before any transaction; the message says why and what to pass instead."""


def deploy_market(
    project: Any,
    deployer: Any,
    chain_id: int,
    parameters: MarketParameters,
    *,
    token: str | None = None,
    owner: str | None = None,
    operator: str | None = None,
    arbiter: str | None = None,
    progress: Callable[[str], None] = log.info,
) -> Deployment:
    """Deploys (the test token on a devnet,) the provider registry and the escrow, in that order.

    `project` is ape's project manager, `deployer` an ape account that pays and signs. Roles default to the
    deployer. Outside the devnet the test token is refused: pass the address of the real settlement token.
    """
    if token is None and chain_id != DEVNET_CHAIN_ID:
        raise DeployError(
            f"chain {chain_id} is not the devnet ({DEVNET_CHAIN_ID}): the test token mints only there; "
            "pass --token with the settlement token's address"
        )
    owner = owner or deployer.address
    operator = operator or deployer.address
    arbiter = arbiter or deployer.address

    first_block: int | None = None

    def sent(contract: Any, what: str) -> Any:
        nonlocal first_block
        receipt = contract.chain_manager.get_receipt(contract.txn_hash)
        if first_block is None:
            first_block = int(receipt.block_number)
        progress(f"{what} at {contract.address} (block {receipt.block_number}, gas {receipt.gas_used})")
        return contract

    if token is None:
        token_contract = sent(deployer.deploy(project.TestStablecoin), "TestStablecoin")
    else:
        token_contract = project.TestStablecoin.at(token)
    registry = sent(
        deployer.deploy(
            project.ProviderRegistry,
            token_contract.address,
            parameters.min_stake,
            parameters.exit_delay,
            owner,
            arbiter,
        ),
        "ProviderRegistry",
    )
    escrow = sent(
        deployer.deploy(
            project.Escrow,
            token_contract.address,
            registry.address,
            owner,
            operator,
            parameters.withdrawal_notice,
            parameters.lock_window,
            parameters.settle_window,
        ),
        "Escrow",
    )
    assert first_block is not None
    return Deployment(
        chain_id=chain_id,
        block_number=first_block,
        token=token_contract.address,
        token_decimals=int(token_contract.decimals()),
        registry=registry.address,
        escrow=escrow.address,
        owner=owner,
        operator=operator,
        arbiter=arbiter,
        parameters=parameters,
    )
