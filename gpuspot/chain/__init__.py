"""What every participant needs to talk to the market's contracts, without importing another's package:
the contracts' ABIs from the compiled artifacts (`abi`), revert decoding with custom error names, and the
fee fields of a transaction (`fees`)."""

from gpuspot.chain.abi import (
    ESCROW,
    PROVIDER_REGISTRY,
    TEST_STABLECOIN,
    Abi,
    custom_errors,
    default_project_root,
    describe_revert,
    load_abi,
)
from gpuspot.chain.errors import AbiNotFoundError
from gpuspot.chain.fees import fees

__all__ = [
    "ESCROW",
    "PROVIDER_REGISTRY",
    "TEST_STABLECOIN",
    "Abi",
    "AbiNotFoundError",
    "custom_errors",
    "default_project_root",
    "describe_revert",
    "fees",
    "load_abi",
]
