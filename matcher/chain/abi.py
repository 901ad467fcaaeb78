"""The contracts' ABIs: moved to `gpuspot.chain.abi` (shared with the provider agent and the buyer SDK);
re-exported here so that `matcher.chain.abi` imports keep working."""

from __future__ import annotations

from gpuspot.chain.abi import (
    ESCROW,
    PROVIDER_REGISTRY,
    Abi,
    custom_errors,
    default_project_root,
    describe_revert,
    load_abi,
)
from gpuspot.chain.errors import AbiNotFoundError

__all__ = [
    "ESCROW",
    "PROVIDER_REGISTRY",
    "Abi",
    "AbiNotFoundError",
    "custom_errors",
    "default_project_root",
    "describe_revert",
    "load_abi",
]
