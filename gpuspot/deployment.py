"""The deployment file: where the market's contracts live and with which parameters.

`scripts/deploy.py` writes it; the matcher, the provider agent and the SDK read it, so they never need
contract addresses on their command lines. It is JSON, written atomically, and validated on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_STATE_DIR = Path(".state")
DEPLOYMENT_FILE_NAME = "deployment.json"
DEVNET_CHAIN_ID = 31337


class DeploymentError(Exception):
    """The deployment file is missing or unreadable; the message says which file and what to do."""


def _checksummed(value: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return str(to_checksum_address(value))


class MarketParameters(BaseModel):
    """Constructor parameters of the contracts, in seconds and token base units (integers only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_stake: int = Field(100_000_000, ge=0, description="minimum provider stake, token base units")
    exit_delay: int = Field(7 * 24 * 3600, ge=0, description="seconds an exiting provider waits")
    withdrawal_notice: int = Field(3600, gt=0, description="seconds a withdrawal waits")
    lock_window: int = Field(600, gt=0, description="seconds after a root's post in which its leases lock")
    settle_window: int = Field(3600, ge=0, description="seconds after a lease's end kept for settling it")

    def model_post_init(self, __context: object) -> None:
        if self.withdrawal_notice <= self.lock_window:
            raise ValueError(
                f"withdrawal_notice ({self.withdrawal_notice}s) must exceed lock_window "
                f"({self.lock_window}s), or a buyer could withdraw funds a posted root already committed"
            )


class Deployment(BaseModel):
    """One deployment of the market on one chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int
    block_number: int = Field(description="block of the first deployment transaction: watchers start here")
    token: str
    token_decimals: int
    registry: str
    escrow: str
    owner: str
    operator: str
    arbiter: str
    parameters: MarketParameters

    _addresses = field_validator("token", "registry", "escrow", "owner", "operator", "arbiter")(
        classmethod(lambda cls, v: _checksummed(v))
    )

    @property
    def is_devnet(self) -> bool:
        return self.chain_id == DEVNET_CHAIN_ID

    def save(self, path: Path) -> None:
        """Writes the file atomically (a reader never sees half of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deployment-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(self.model_dump(mode="json"), out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            raw = path.read_text()
        except FileNotFoundError:
            raise DeploymentError(
                f"no deployment file at {path}: deploy the contracts first (ape run deploy --help)"
            ) from None
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise DeploymentError(f"{path} is not a valid gpuspot deployment file: {exc}") from None
