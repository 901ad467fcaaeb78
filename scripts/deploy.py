"""Deploys gpuspot's contracts to the network ape is connected to and writes the deployment file.

\b
    ape run deploy --network ethereum:local:foundry            # devnet: test token, account 0 deploys
    ape run deploy --network ethereum:sepolia:node --account me --token 0x... --operator 0x...

The matcher, provider agents and the SDK read the file (default .state/deployment.json).
"""

from pathlib import Path

import click
from ape import accounts, project
from ape.cli import ConnectedProviderCommand

from gpuspot.deploy import DeployError, deploy_market
from gpuspot.deployment import DEFAULT_STATE_DIR, DEPLOYMENT_FILE_NAME, DEVNET_CHAIN_ID, MarketParameters

DEFAULTS = MarketParameters()


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@click.option("--account", "account_alias", help="ape account alias that deploys (devnet: test account 0)")
@click.option("--token", help="settlement token address; omit on the devnet to deploy the test stablecoin")
@click.option("--owner", help="owner of the contracts (default: the deployer)")
@click.option("--operator", help="matcher address allowed to post roots (default: the deployer)")
@click.option("--arbiter", help="address allowed to slash provider stakes (default: the deployer)")
@click.option("--min-stake", type=int, default=DEFAULTS.min_stake, show_default=True,
              help="minimum provider stake, token base units")
@click.option("--exit-delay", type=int, default=DEFAULTS.exit_delay, show_default=True,
              help="seconds a provider waits for its stake after announcing its exit")
@click.option("--withdrawal-notice", type=int, default=DEFAULTS.withdrawal_notice, show_default=True,
              help="seconds a withdrawal waits; must exceed --lock-window")
@click.option("--lock-window", type=int, default=DEFAULTS.lock_window, show_default=True,
              help="seconds after a root's post in which its leases can be locked")
@click.option("--settle-window", type=int, default=DEFAULTS.settle_window, show_default=True,
              help="seconds after a lease's end kept for its final settlement")
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR, show_default=True,
              help="folder for the deployment file")
def cli(provider, account_alias, token, owner, operator, arbiter, min_stake, exit_delay,
        withdrawal_notice, lock_window, settle_window, state_dir):
    chain_id = provider.chain_id
    if account_alias:
        deployer = accounts.load(account_alias)
    elif chain_id == DEVNET_CHAIN_ID:
        deployer = accounts.test_accounts[0]
    else:
        raise click.UsageError(f"chain {chain_id} is not the devnet: pass --account with a real deployer")
    try:
        parameters = MarketParameters(
            min_stake=min_stake,
            exit_delay=exit_delay,
            withdrawal_notice=withdrawal_notice,
            lock_window=lock_window,
            settle_window=settle_window,
        )
        deployment = deploy_market(
            project, deployer, chain_id, parameters,
            token=token, owner=owner, operator=operator, arbiter=arbiter, progress=click.echo,
        )
    except (DeployError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    path = state_dir / DEPLOYMENT_FILE_NAME
    deployment.save(path)
    click.echo(
        f"wrote {path}: escrow {deployment.escrow}, registry {deployment.registry}, token {deployment.token}"
    )
