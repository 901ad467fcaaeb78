"""The deployment procedure that `ape run deploy` and the devnet use, on Anvil."""

from pathlib import Path

import pytest

from gpuspot.deploy import DeployError, deploy_market
from gpuspot.deployment import Deployment, DeploymentError, MarketParameters


def test_deploy_market_wires_contracts_and_roundtrips_the_file(project, accounts, chain, tmp_path: Path):
    deployer, operator = accounts[0], accounts[1]
    params = MarketParameters(
        min_stake=5_000_000, exit_delay=86_400, withdrawal_notice=1_800, lock_window=300, settle_window=900
    )
    lines: list[str] = []
    deployment = deploy_market(
        project, deployer, chain.chain_id, params, operator=operator.address, progress=lines.append
    )

    escrow = project.Escrow.at(deployment.escrow)
    registry = project.ProviderRegistry.at(deployment.registry)
    assert escrow.token() == deployment.token == registry.token()
    assert escrow.registry() == deployment.registry
    assert escrow.operator() == operator.address
    assert escrow.owner() == deployer.address
    assert (escrow.withdrawalNotice(), escrow.lockWindow(), escrow.settleWindow()) == (1_800, 300, 900)
    assert (registry.minStake(), registry.exitDelay()) == (5_000_000, 86_400)
    assert registry.arbiter() == deployer.address
    assert deployment.token_decimals == 6 and deployment.is_devnet
    assert len(lines) == 3 and "Escrow" in lines[-1]

    path = tmp_path / "state" / "deployment.json"
    deployment.save(path)
    assert Deployment.load(path) == deployment


def test_deploy_market_refuses_the_test_token_outside_the_devnet(project, accounts):
    with pytest.raises(DeployError, match="pass --token"):
        deploy_market(project, accounts[0], 1, MarketParameters())


def test_market_parameters_refuse_a_notice_shorter_than_the_lock_window():
    with pytest.raises(ValueError, match="must exceed lock_window"):
        MarketParameters(withdrawal_notice=600, lock_window=600)


def test_deployment_load_says_what_to_do_when_the_file_is_missing_or_bad(tmp_path: Path):
    with pytest.raises(DeploymentError, match="deploy the contracts first"):
        Deployment.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"chain_id": "x"}')
    with pytest.raises(DeploymentError, match="not a valid gpuspot deployment file"):
        Deployment.load(bad)
