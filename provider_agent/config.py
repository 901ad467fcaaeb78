"""The agent's settings: flags > environment (`GPUSPOT_AGENT_*`) > TOML config file > defaults.

The provider's key never comes from a flag (it would land in shell history): `GPUSPOT_AGENT_PROVIDER_KEY`
or `provider_key_file`. Prices and amounts are integer token base units; durations are seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gpuspot.deployment import DEFAULT_STATE_DIR, DEPLOYMENT_FILE_NAME
from gpuspot.settings import KeyError_, ServiceSettings, load_account
from provider_agent.host import CPU_FAULTS

__all__ = ["AgentSettings", "ConfigError"]


class ConfigError(Exception):
    """The agent's configuration is unusable; the message names the setting and what to do."""


class AgentSettings(ServiceSettings):
    """Everything the agent reads at start."""

    model_config = SettingsConfigDict(env_prefix="GPUSPOT_AGENT_", extra="forbid", frozen=True)

    rpc_url: str = Field("http://127.0.0.1:8545", description="the node's JSON-RPC URL")
    matcher_url: str = Field("http://127.0.0.1:8000", description="the matcher's API")
    deployment_file: Path = Field(
        DEFAULT_STATE_DIR / DEPLOYMENT_FILE_NAME, description="from `ape run deploy`"
    )
    state_dir: Path = Field(
        DEFAULT_STATE_DIR / "agent", description="state.db and the jobs' work directories"
    )
    catalog_file: Path | None = Field(None, description="products TOML; default: the checkout's config/")
    provider_key: SecretStr | None = Field(None, description="the provider's private key (0x hex)")
    provider_key_file: Path | None = Field(None, description="a file holding the provider's private key")
    backend: str = Field("auto", description="auto, nvml or cpu (a CPU standing in for GPUs: devnet only)")
    cpu_gpus: int = Field(1, ge=1, le=64, description="how many GPUs the CPU backend simulates")
    simulates: str | None = Field(None, description="the catalog product the CPU backend stands in for")
    cpu_fault: str = Field(
        "none",
        description="none, or wrong-answer: the CPU stand-in answers challenges with a wrong product, as a "
        "faulty or cheating GPU would (devnet demonstrations and tests of the verifier)",
    )
    stake: int | None = Field(
        None, ge=0, description="stake to register with; default the registry's minimum"
    )
    floor_price: int = Field(2_000_000, gt=0, description="lowest price per GPU-hour, token base units")
    pricing: str = Field("fixed", description="fixed (the floor) or utilisation (floor raised when busy)")
    max_duration: int = Field(86_400, gt=0, description="longest lease the asks accept, seconds")
    ask_lifetime: int = Field(900, gt=0, description="seconds an ask is valid; re-posted before it expires")
    repost_margin: int = Field(120, ge=0, description="re-post an ask this many seconds before its expiry")
    poll_interval: float = Field(1.0, gt=0, description="seconds between the agent's rounds")
    receipt_interval: int | None = Field(
        None, gt=0, description="seconds between receipts; default the market's"
    )
    settle_min_amount: int = Field(
        1_000_000, ge=0, description="settle running leases once this much (base units) is owed in total"
    )
    settle_max_delay: int = Field(
        900, ge=0, description="or once the oldest unpaid usage is this old, seconds"
    )
    drain_timeout: float = Field(
        300.0, ge=0, description="on shutdown, seconds to let running jobs finish before stopping them"
    )
    tx_timeout: float = Field(120.0, gt=0, description="seconds to wait for a transaction to be mined")
    metrics_host: str = Field("127.0.0.1", description="where /metrics listens")
    metrics_port: int = Field(9100, ge=0, le=65535, description="0 picks a free port; the log says which")

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> AgentSettings:
        """Settings from `overrides` (flags; None values are ignored), the environment, then `config_file`."""
        try:
            return super().load(config_file, **overrides)
        except FileNotFoundError as exc:
            raise ConfigError(f"no agent config file: {exc}") from None

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in {"auto", "nvml", "cpu"}:
            raise ValueError(f"backend must be auto, nvml or cpu, got {value!r}")
        return value

    @field_validator("cpu_fault")
    @classmethod
    def _cpu_fault(cls, value: str) -> str:
        if value not in CPU_FAULTS:
            raise ValueError(f"cpu_fault must be one of {', '.join(CPU_FAULTS)}, got {value!r}")
        return value

    @field_validator("pricing")
    @classmethod
    def _pricing(cls, value: str) -> str:
        if value not in {"fixed", "utilisation"}:
            raise ValueError(f"pricing must be fixed or utilisation, got {value!r}")
        return value

    @model_validator(mode="after")
    def _checks(self) -> AgentSettings:
        if self.provider_key is not None and self.provider_key_file is not None:
            raise ValueError("set provider_key or provider_key_file, not both")
        if self.backend == "cpu" and not self.simulates:
            raise ValueError(
                "backend cpu needs `simulates`: the catalog product the CPU stands in for (devnet only)"
            )
        if self.cpu_fault != "none" and self.backend != "cpu":
            raise ValueError("cpu_fault simulates a faulty GPU on the cpu backend only")
        if self.repost_margin >= self.ask_lifetime:
            raise ValueError("repost_margin must be shorter than ask_lifetime")
        return self

    def provider_account(self, chain_id: int) -> LocalAccount:
        """The provider's key; refuses a missing key, and a public development key outside chain 31337."""
        try:
            return load_account(
                self.provider_key,
                self.provider_key_file,
                chain_id,
                role="provider",
                env_var="GPUSPOT_AGENT_PROVIDER_KEY",
            )
        except KeyError_ as exc:
            raise ConfigError(str(exc)) from None
