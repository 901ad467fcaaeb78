"""The buyer's settings: where the node and the matcher are, and whose key signs.

Sources, first wins: keyword arguments (the CLI's flags), `GPUSPOT_BUYER_*` environment variables, the TOML
file given to `load`, defaults (`gpuspot.settings.ServiceSettings`). The key never comes from a flag: it is
`GPUSPOT_BUYER_KEY`, a file (`key_file`, `GPUSPOT_BUYER_KEY_FILE`), or an encrypted JSON keystore
(`keystore`, its password in `GPUSPOT_BUYER_KEYSTORE_PASSWORD` or asked by the CLI). A key of Anvil's
public development mnemonic is refused off the devnet's chain id.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from gpuspot.settings import KeyError_, ServiceSettings, load_account

__all__ = ["BuyerSettings", "KEY_ENV", "KEYSTORE_PASSWORD_ENV"]

KEY_ENV = "GPUSPOT_BUYER_KEY"
KEYSTORE_PASSWORD_ENV = "GPUSPOT_BUYER_KEYSTORE_PASSWORD"


class BuyerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GPUSPOT_BUYER_", extra="forbid")

    rpc_url: str = "http://127.0.0.1:8545"
    matcher_url: str = "http://127.0.0.1:8000"
    key: SecretStr | None = None
    key_file: Path | None = None
    keystore: Path | None = None
    keystore_password: SecretStr | None = None
    timeout: float = 10.0

    def account(self, chain_id: int, *, password: str | None = None) -> LocalAccount:
        """The buyer's account for chain `chain_id`: from `key`, `key_file` or `keystore` (exactly one).
        `password` overrides `keystore_password` (the CLI's prompt). Raises `KeyError_` with what to do."""
        given = [name for name in ("key", "key_file", "keystore") if getattr(self, name) is not None]
        if len(given) > 1:
            raise KeyError_(
                f"the buyer key is given {len(given)} ways ({', '.join(given)}): keep one of {KEY_ENV}, "
                f"{KEY_ENV}_FILE / --key-file, --keystore"
            )
        if self.keystore is None:
            return load_account(self.key, self.key_file, chain_id, role="buyer", env_var=KEY_ENV)
        secret = password if password is not None else _secret(self.keystore_password)
        if secret is None:
            raise KeyError_(
                f"the keystore {self.keystore} needs its password: set {KEYSTORE_PASSWORD_ENV} (the CLI asks "
                "for it when it runs in a terminal)"
            )
        try:
            document = json.loads(self.keystore.read_text())
        except (OSError, ValueError) as exc:
            raise KeyError_(f"cannot read the keystore {self.keystore}: {exc}") from None
        try:
            raw = Account.decrypt(document, secret)
        except (ValueError, TypeError, KeyError):
            raise KeyError_(f"cannot decrypt the keystore {self.keystore}: wrong password?") from None
        return load_account(SecretStr("0x" + bytes(raw).hex()), None, chain_id, role="buyer", env_var=KEY_ENV)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
