"""The matcher's one settings object: flags > environment (`GPUSPOT_MATCHER_*`) > TOML config file > defaults.

Validated at start (`MatcherSettings.load`); the operator's key is only resolved against the deployment's
chain id (`operator_account`), which refuses Anvil's well-known development keys outside a devnet.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gpuspot.deployment import DEFAULT_STATE_DIR, DEPLOYMENT_FILE_NAME, DEVNET_CHAIN_ID
from matcher.clearing import PricingRule
from matcher.errors import MatcherError
from matcher.evidence.verifier import EvidencePolicy

__all__ = ["DEV_MNEMONIC", "MatcherSettings", "SettingsError", "dev_addresses"]

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's (and Hardhat's) public development mnemonic: its keys are known to everyone."""


class SettingsError(MatcherError):
    """The matcher's configuration is unusable; the message names the setting and what to do."""


@lru_cache(maxsize=1)
def dev_addresses(count: int = 20) -> frozenset[str]:
    """Addresses of the first `count` keys of the public development mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return frozenset(
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address for i in range(count)
    )


class MatcherSettings(BaseSettings):
    """Everything the matcher reads at start. Durations in seconds, amounts in token base units."""

    model_config = SettingsConfigDict(env_prefix="GPUSPOT_MATCHER_", extra="forbid", frozen=True)

    rpc_url: str = "http://127.0.0.1:8545"
    deployment_file: Path = DEFAULT_STATE_DIR / DEPLOYMENT_FILE_NAME
    database_url: str = f"sqlite:///{DEFAULT_STATE_DIR / 'matcher.db'}"
    operator_key: SecretStr | None = Field(None, description="the operator's private key (0x hex)")
    operator_key_file: Path | None = Field(None, description="a file holding the operator's private key")
    batch_interval: float = Field(5.0, gt=0, description="seconds between batches")
    pricing_rule: PricingRule = PricingRule.UNIFORM
    min_order_lifetime: int = Field(
        0, ge=0, description="extra seconds an order must live beyond one batch interval and root posting"
    )
    root_posting_margin: int = Field(60, ge=0, description="seconds allowed for a root to be mined")
    confirmations: int = Field(2, ge=0, description="blocks the chain watcher lags behind the head")
    receipt_timeout: float = Field(120.0, gt=0)
    catalog_file: Path | None = Field(None, description="products TOML; default: the checkout's config/")
    receipt_interval: int = Field(
        30, gt=0, description="seconds between a lease's receipts, advertised to agents (GET /v1/market)"
    )
    evidence_timeout: int = Field(
        90,
        gt=0,
        description="the longest gap between receipts (and from the start to the first) before "
        "a lease's evidence ends",
    )
    clock_skew: int = Field(
        30, ge=0, description="seconds a receipt's time may differ from the matcher's clock"
    )
    challenge_interval: int = Field(300, gt=0, description="seconds between challenges of a running lease")
    challenge_n: int = Field(
        512,
        ge=16,
        le=16_384,
        multiple_of=16,
        description="challenge matrix size n (a multiple of 16); set it per deployment (proof-of-work.md)",
    )
    challenge_deadline_ms: int = Field(
        10_000,
        gt=0,
        description="milliseconds from a challenge's issue to its root, the agent's polling included",
    )
    opening_timeout: int = Field(60, gt=0, description="seconds from a root to its row opening")
    usage_interval: int = Field(300, gt=0, description="seconds between a lease's (non-final) usage leaves")
    max_blob_bytes: int = Field(16 * 1024 * 1024, gt=0, description="the largest blob PUT /v1/blobs accepts")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> MatcherSettings:
        """Settings from `overrides` (flags; None values are ignored), the environment, then `config_file`."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if config_file is None:
            return cls(**given)
        if not config_file.is_file():
            raise SettingsError(f"no matcher config file at {config_file}: fix the path or leave it out")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(**{**cls.model_config, "toml_file": config_file})

        return _FromFile(**given)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level

    @model_validator(mode="after")
    def _one_key_source(self) -> MatcherSettings:
        if self.operator_key is not None and self.operator_key_file is not None:
            raise ValueError("set operator_key or operator_key_file, not both")
        return self

    @property
    def min_lifetime(self) -> int:
        """The intake's minimum order lifetime: one batch, the root's posting, and the configured extra."""
        return int(self.batch_interval + 0.999) + self.root_posting_margin + self.min_order_lifetime

    def evidence_policy(self) -> EvidencePolicy:
        """The delivery-evidence parameters (docs/evidence.md) as the verifier takes them."""
        return EvidencePolicy(
            receipt_interval=self.receipt_interval,
            evidence_timeout=self.evidence_timeout,
            clock_skew=self.clock_skew,
            challenge_interval=self.challenge_interval,
            challenge_n=self.challenge_n,
            challenge_deadline_ms=self.challenge_deadline_ms,
            opening_timeout=self.opening_timeout,
            usage_interval=self.usage_interval,
            max_blob_bytes=self.max_blob_bytes,
        )

    def operator_account(self, chain_id: int) -> LocalAccount:
        """The operator's key; refuses a missing key, and a public development key outside chain 31337."""
        if self.operator_key is not None:
            raw = self.operator_key.get_secret_value().strip()
        elif self.operator_key_file is not None:
            try:
                raw = self.operator_key_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(f"cannot read {self.operator_key_file}: {exc}") from None
        else:
            raise SettingsError(
                "no operator key: set GPUSPOT_MATCHER_OPERATOR_KEY or GPUSPOT_MATCHER_OPERATOR_KEY_FILE "
                "(the key of the escrow's operator)"
            )
        try:
            account: LocalAccount = Account.from_key(raw)
        except (ValueError, TypeError):
            raise SettingsError("the operator key is not a 32-byte hex private key") from None
        if chain_id != DEVNET_CHAIN_ID and account.address in dev_addresses():
            raise SettingsError(
                f"the operator key ({account.address}) is one of Anvil's public development keys, and chain "
                f"{chain_id} is not a devnet ({DEVNET_CHAIN_ID}): anyone can sign with it. Use a private key"
            )
        return account
