"""The matcher's one settings object: flags > environment (`GPUSPOT_MATCHER_*`) > TOML config file > defaults.

Validated at start (`MatcherSettings.load`); the operator's key is only resolved against the deployment's
chain id (`operator_account`), which refuses Anvil's well-known development keys outside a devnet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from gpuspot.deployment import DEFAULT_STATE_DIR, DEPLOYMENT_FILE_NAME
from gpuspot.settings import DEV_MNEMONIC, KeyError_, ServiceSettings, dev_addresses, load_account
from matcher.clearing import PricingRule
from matcher.errors import MatcherError
from matcher.evidence.verifier import EvidencePolicy

__all__ = ["DEV_MNEMONIC", "MatcherSettings", "SettingsError", "dev_addresses"]


class SettingsError(MatcherError):
    """The matcher's configuration is unusable; the message names the setting and what to do."""


class MatcherSettings(ServiceSettings):
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
        8_192,
        ge=16,
        le=16_384,
        multiple_of=16,
        description="challenge matrix size n (multiple of 16): 8192 fails CPU-only hosts (proof-of-work.md);"
        " a devnet of CPU stand-ins needs a small one",
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

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> MatcherSettings:
        """Settings from `overrides` (flags; None values are ignored), the environment, then `config_file`."""
        try:
            return super().load(config_file, **overrides)
        except FileNotFoundError as exc:
            raise SettingsError(f"no matcher config file: {exc}") from None

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
        try:
            return load_account(
                self.operator_key,
                self.operator_key_file,
                chain_id,
                role="operator",
                env_var="GPUSPOT_MATCHER_OPERATOR_KEY",
            )
        except KeyError_ as exc:
            raise SettingsError(str(exc)) from None
