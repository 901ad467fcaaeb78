"""The devnet's market: Anvil, the contracts, funded accounts, the matcher and the provider agents, each a
real process started the way a user would start it (docs/devnet.md).

Who is who, by index in Anvil's public development mnemonic (devnet only: these keys are known to everyone):
0 deploys and owns the contracts (and arbitrates), 1 is the matcher's operator, 2-4 are the providers
`alpha`, `bravo`, `charlie`, 5-7 are the buyers `ada`, `ben`, `cleo`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpuspot.chain.abi import load_abi
from gpuspot.deployment import DEPLOYMENT_FILE_NAME, DEVNET_CHAIN_ID, Deployment
from gpuspot.devnet.processes import LOOPBACK, DevnetError, Processes, http_ok, wait_until
from gpuspot.settings import DEV_MNEMONIC

log = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

LOCK_WINDOW = 30
"""Seconds after a root's post in which its leases can be locked: the agents lock within seconds."""
WITHDRAWAL_NOTICE = 35
"""Must exceed the lock window (the deployment refuses otherwise); short, so the scenario can withdraw."""
SETTLE_WINDOW = 120

MATCHER_EVIDENCE = {
    # short intervals, so a lease of half a minute sees receipts, challenges and usage leaves
    "RECEIPT_INTERVAL": "2",
    "EVIDENCE_TIMEOUT": "12",
    "CLOCK_SKEW": "5",
    "CHALLENGE_INTERVAL": "4",
    # a CPU stands in for the GPUs: a product it computes in milliseconds (docs/proof-of-work.md)
    "CHALLENGE_N": "256",
    "CHALLENGE_DEADLINE_MS": "5000",
    "OPENING_TIMEOUT": "10",
    "USAGE_INTERVAL": "4",
}

STATE_ENTRIES = (DEPLOYMENT_FILE_NAME, "matcher.db", "matcher.db-wal", "matcher.db-shm", "agents", "logs")
"""What the devnet writes under its state folder, and clears when it starts a fresh chain."""


def dev_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


@dataclass(frozen=True)
class ProviderPlan:
    """One provider agent of the devnet: what its CPU stands in for, its floor price, its fault if any."""

    name: str
    account_index: int
    simulates: str
    gpus: int
    floor_price: int
    """Base units per GPU-hour."""
    fault: str = "none"

    @property
    def account(self) -> LocalAccount:
        return dev_account(self.account_index)


PROVIDERS = (
    ProviderPlan("alpha", 2, "H100-80GB", gpus=2, floor_price=2_000_000),
    ProviderPlan("bravo", 3, "A100-80GB", gpus=2, floor_price=1_200_000),
    # a faulty GPU: answers every proof-of-work challenge with a wrong product
    ProviderPlan("charlie", 4, "L40S-48GB", gpus=1, floor_price=800_000, fault="wrong-answer"),
)
BUYERS = {"ada": 5, "ben": 6, "cleo": 7}
OPERATOR_INDEX = 1


@dataclass
class Network:
    """The running market. `start` brings it up step by step, reporting each through `progress`."""

    state_dir: Path
    rpc_port: int
    port: int
    batch_interval: float
    progress: Callable[[str], None]
    processes: Processes = field(init=False)
    deployment: Deployment | None = None
    web3: Web3 | None = None

    def __post_init__(self) -> None:
        self.processes = Processes(self.state_dir / "logs")

    @property
    def rpc_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rpc_port}"

    @property
    def matcher_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def deployment_file(self) -> Path:
        return self.state_dir / DEPLOYMENT_FILE_NAME

    def clear_state(self) -> None:
        """Removes what an earlier devnet left in the state folder: a fresh chain makes it meaningless."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for entry in STATE_ENTRIES:
            path = self.state_dir / entry
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def start_chain(self) -> None:
        anvil = shutil.which("anvil")
        if anvil is None:
            raise DevnetError(
                "anvil is not on PATH: run ./scripts/devnet (it installs Anvil), not this module"
            )
        self.progress(f"starting Anvil at {self.rpc_url} (chain {DEVNET_CHAIN_ID})")
        self.processes.start(
            "anvil",
            [anvil, "--host", LOOPBACK, "--port", str(self.rpc_port), "--chain-id", str(DEVNET_CHAIN_ID)],
        )
        wait_until(self._chain_answers, 30, f"Anvil at {self.rpc_url}", watch=self.processes)
        self.web3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))

    def _chain_answers(self) -> bool:
        try:
            answer = httpx.post(
                self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
            )
            return answer.status_code == 200 and "result" in answer.json()
        except httpx.HTTPError:
            return False

    def deploy(self) -> Deployment:
        """`ape run deploy` (the deploy script a user runs), against this Anvil while it mines on demand."""
        self.progress("deploying the contracts: `ape run deploy` (test token, provider registry, escrow)")
        ape = Path(sys.executable).with_name("ape")
        operator = dev_account(OPERATOR_INDEX).address
        child = self.processes.start(
            "deploy",
            [
                str(ape),
                "run",
                "deploy",
                "--network",
                "ethereum:local:foundry",
                "--state-dir",
                str(self.state_dir),
                "--operator",
                operator,
                "--lock-window",
                str(LOCK_WINDOW),
                "--withdrawal-notice",
                str(WITHDRAWAL_NOTICE),
                "--settle-window",
                str(SETTLE_WINDOW),
            ],  # fmt: skip
            env=os.environ | {"APE_FOUNDRY_HOST": self.rpc_url},
            cwd=REPOSITORY_ROOT,
        )
        if child.popen.wait(timeout=300) != 0:
            raise DevnetError(f"the deployment failed: {child.describe()}")
        self.processes.children.remove(child)
        self.deployment = Deployment.load(self.deployment_file)
        self.progress(
            f"deployed: escrow {self.deployment.escrow}, registry {self.deployment.registry}, "
            f"token {self.deployment.token} ({self.deployment.token_decimals} decimals)"
        )
        return self.deployment

    def fund_providers(self, stake: int) -> None:
        """Mints each provider its stake in test tokens (the agents register themselves)."""
        for plan in PROVIDERS:
            self.mint(plan.account.address, stake)
        self.progress(f"minted each provider its stake ({len(PROVIDERS)} providers)")

    def mint(self, to: str, amount: int) -> None:
        assert self.web3 is not None and self.deployment is not None
        token = self.token()
        owner = dev_account(0)
        transaction = token.functions.mint(to, amount).build_transaction(
            {"from": owner.address, "nonce": self.web3.eth.get_transaction_count(owner.address, "pending")}
        )
        signed = owner.sign_transaction(transaction)
        receipt = self.web3.eth.wait_for_transaction_receipt(
            self.web3.eth.send_raw_transaction(signed.raw_transaction), timeout=60
        )
        if receipt["status"] != 1:
            raise DevnetError(f"minting {amount} test tokens to {to} reverted")

    def mine_every(self, seconds: int) -> None:
        """From now on Anvil mines a block every `seconds`, as a chain would: the agents time receipts by the
        wall clock, and the matcher compares them with block times."""
        assert self.web3 is not None
        self.web3.provider.make_request("evm_setIntervalMining", [seconds])  # type: ignore[arg-type]
        self.progress(f"Anvil now mines a block every {seconds} s")

    def start_matcher(self) -> None:
        self.progress(f"starting the matcher (batch every {self.batch_interval:g} s) at {self.matcher_url}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSPOT_MATCHER_")}
        env |= {f"GPUSPOT_MATCHER_{name}": value for name, value in MATCHER_EVIDENCE.items()}
        env["GPUSPOT_MATCHER_OPERATOR_KEY"] = dev_account(OPERATOR_INDEX).key.hex()
        env["PYTHONUNBUFFERED"] = "1"
        self.processes.start(
            "matcher",
            [
                sys.executable,
                "-m",
                "matcher",
                "--rpc-url",
                self.rpc_url,
                "--deployment-file",
                str(self.deployment_file),
                "--database-url",
                f"sqlite:///{self.state_dir / 'matcher.db'}",
                "--batch-interval",
                str(self.batch_interval),
                "--confirmations",
                "0",  # Anvil never reorganises
                "--host",
                LOOPBACK,
                "--port",
                str(self.port),
            ],  # fmt: skip
            env=env,
            cwd=REPOSITORY_ROOT,
        )
        wait_until(
            lambda: http_ok(f"{self.matcher_url}/healthz"), 60, "the matcher's /healthz", watch=self.processes
        )

    def start_agents(self) -> None:
        for plan in PROVIDERS:
            fault = "" if plan.fault == "none" else f", simulating a faulty GPU ({plan.fault})"
            self.progress(
                f"starting provider agent {plan.name} ({plan.account.address}): CPU standing in for "
                f"{plan.gpus}x {plan.simulates}, floor {plan.floor_price} base units/GPU-hour{fault}"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSPOT_AGENT_")}
            settings = {
                "rpc_url": self.rpc_url,
                "matcher_url": self.matcher_url,
                "deployment_file": str(self.deployment_file),
                "state_dir": str(self.state_dir / "agents" / plan.name),
                "backend": "cpu",
                "cpu_gpus": str(plan.gpus),
                "simulates": plan.simulates,
                "cpu_fault": plan.fault,
                "floor_price": str(plan.floor_price),
                "poll_interval": "0.5",
                "ask_lifetime": "600",
                "settle_min_amount": "0",
                "settle_max_delay": "5",
                "drain_timeout": "5",
                "metrics_port": "0",
            }
            env |= {f"GPUSPOT_AGENT_{name.upper()}": value for name, value in settings.items()}
            env["GPUSPOT_AGENT_PROVIDER_KEY"] = plan.account.key.hex()
            env["PYTHONUNBUFFERED"] = "1"
            self.processes.start(
                f"agent-{plan.name}", [sys.executable, "-m", "provider_agent"], env=env, cwd=REPOSITORY_ROOT
            )
        for plan in PROVIDERS:
            wait_until(
                lambda plan=plan: self._offered(plan),  # type: ignore[misc]
                90,
                f"provider {plan.name}'s ask in the book",
                watch=self.processes,
            )
        self.progress("every provider registered its stake and has its GPUs in the book")

    def _offered(self, plan: ProviderPlan) -> bool:
        try:
            book = httpx.get(f"{self.matcher_url}/v1/book/{plan.simulates}", timeout=5).json()
        except (httpx.HTTPError, json.JSONDecodeError):
            return False
        return any(int(level["gpus"]) >= plan.gpus for level in book.get("asks", []))

    def stop(self) -> None:
        self.processes.stop_all(on_stop=lambda name: self.progress(f"stopping {name}"))

    def escrow(self) -> Any:
        assert self.deployment is not None
        return self._contract(self.deployment.escrow, "Escrow")

    def token(self) -> Any:
        assert self.deployment is not None
        return self._contract(self.deployment.token, "TestStablecoin")

    def _contract(self, address: str, name: str) -> Any:
        assert self.web3 is not None
        return self.web3.eth.contract(address=Web3.to_checksum_address(address), abi=list(load_abi(name)))
