"""What every gpuspot service's settings share: the sources and their order, a config file, the log level,
and loading a private key safely.

Sources, first wins: command-line flags (passed to `load` as keyword arguments; None means "not given"),
environment variables (each service's prefix, e.g. `GPUSPOT_MATCHER_`), the TOML file given to `load`,
defaults. Keys never come from a flag (shell history); a key of Anvil's public development mnemonic is
refused outside the devnet's chain id.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gpuspot.deployment import DEVNET_CHAIN_ID

__all__ = ["DEV_MNEMONIC", "KeyError_", "ServiceSettings", "dev_addresses", "load_account"]

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's (and Hardhat's) public development mnemonic: its keys are known to everyone."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@lru_cache(maxsize=1)
def dev_addresses(count: int = 20) -> frozenset[str]:
    """Addresses of the first `count` keys of the public development mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return frozenset(
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address for i in range(count)
    )


class KeyError_(ValueError):  # noqa: N801 (not the builtin KeyError)
    """A key setting is missing, unreadable, malformed, or a public development key off the devnet."""


def load_account(
    key: SecretStr | None, key_file: Path | None, chain_id: int, *, role: str, env_var: str
) -> LocalAccount:
    """The account of `key` or `key_file` (one of them); `role` and `env_var` name it in errors. Refuses a
    missing key, and a key of the public development mnemonic when `chain_id` is not the devnet's."""
    if key is not None:
        raw = key.get_secret_value().strip()
    elif key_file is not None:
        try:
            raw = key_file.read_text().strip()
        except OSError as exc:
            raise KeyError_(f"cannot read {key_file}: {exc}") from None
    else:
        raise KeyError_(f"no {role} key: set {env_var} or {env_var}_FILE (a file holding the key)")
    try:
        account: LocalAccount = Account.from_key(raw)
    except (ValueError, TypeError):
        raise KeyError_(f"the {role} key is not a 32-byte hex private key") from None
    if chain_id != DEVNET_CHAIN_ID and account.address in dev_addresses():
        raise KeyError_(
            f"the {role} key ({account.address}) is one of Anvil's public development keys, and chain "
            f"{chain_id} is not a devnet ({DEVNET_CHAIN_ID}): anyone can sign with it. Use a private key"
        )
    return account


class ServiceSettings(BaseSettings):
    """Base of a service's settings: subclasses set `model_config` (their env prefix) and their fields."""

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
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Settings from `overrides` (flags; None values are ignored), the environment, then `config_file`.
        A missing config file raises FileNotFoundError with the path."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if config_file is None:
            return cls(**given)
        if not config_file.is_file():
            raise FileNotFoundError(f"no config file at {config_file}: fix the path or leave it out")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(**{**cls.model_config, "toml_file": config_file})

        return _FromFile(**given)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level
