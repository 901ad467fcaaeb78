"""The contracts' ABIs, read from the compiled artifacts of `contracts/src`, never written by hand; shared
by the matcher, the provider agent and the buyer SDK (none of them imports another's package for it).

Decision: the ABI is a build product of the Solidity sources, which are normative, so the adapter reads it
from the compiler's output instead of keeping a copy that could drift. Two places are tried, in this order:

1. ape's project manifest, `.build/__local__.json`, entry `contractTypes.<Name>.abi` (written by
   `ape compile`, which `scripts/test` and the devnet command already run, with the settings the contracts
   are deployed with);
2. forge's artifact, `contracts/out/<Name>.sol/<Name>.json`, entry `abi` (written by `forge build`).

If neither exists the error says to run `ape compile`. The project root defaults to the checkout this package
lives in; a service installed elsewhere passes its own. Loaded ABIs are cached per (name, root).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_typing import ABIError
from eth_utils.abi import function_abi_to_4byte_selector
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError

from gpuspot.chain.errors import AbiNotFoundError

__all__ = [
    "ESCROW",
    "PROVIDER_REGISTRY",
    "TEST_STABLECOIN",
    "AbiNotFoundError",
    "Abi",
    "custom_errors",
    "default_project_root",
    "describe_revert",
    "load_abi",
]

log = logging.getLogger(__name__)

Abi = tuple[dict[str, Any], ...]

ESCROW = "Escrow"
PROVIDER_REGISTRY = "ProviderRegistry"
TEST_STABLECOIN = "TestStablecoin"
"""Its ABI serves the settlement token's ERC20 calls (approve, allowance, balanceOf): any ERC20 has them."""

APE_MANIFEST = Path(".build") / "__local__.json"
FORGE_OUT = Path("contracts") / "out"


def default_project_root() -> Path:
    """The repository root of this checkout (gpuspot/chain/abi.py is three levels below it)."""
    return Path(__file__).resolve().parents[2]


def load_abi(name: str, project_root: Path | None = None) -> Abi:
    """The ABI of contract `name` (e.g. "Escrow") from ape's manifest, else forge's artifact."""
    return _load_abi(name, (project_root or default_project_root()).resolve())


@lru_cache(maxsize=16)
def _load_abi(name: str, root: Path) -> Abi:
    manifest = root / APE_MANIFEST
    forge_artifact = root / FORGE_OUT / f"{name}.sol" / f"{name}.json"
    if manifest.is_file():
        abi = _read(manifest, ("contractTypes", name, "abi"))
        if abi is not None:
            log.debug("ABI of %s from %s", name, manifest)
            return abi
    if forge_artifact.is_file():
        abi = _read(forge_artifact, ("abi",))
        if abi is not None:
            log.debug("ABI of %s from %s", name, forge_artifact)
            return abi
    raise AbiNotFoundError(
        f"no compiled ABI for {name}: neither {manifest} (contractTypes.{name}.abi) nor {forge_artifact} has "
        f"it. Compile the contracts first: `cd {root} && ape compile` (or `forge build`)"
    )


def _read(path: Path, keys: tuple[str, ...]) -> Abi | None:
    try:
        node: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AbiNotFoundError(
            f"cannot read compiled artifact {path}: {exc}. Recompile: `ape compile --force`"
        ) from None
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, list) or not all(isinstance(entry, dict) for entry in node):
        raise AbiNotFoundError(
            f"{path}: {'.'.join(keys)} is not an ABI list. Recompile: `ape compile --force`"
        )
    return tuple(node)


def custom_errors(*abis: Abi) -> dict[bytes, dict[str, Any]]:
    """The custom errors of `abis` by 4-byte selector, for `describe_revert`."""
    return {
        bytes(function_abi_to_4byte_selector(cast(ABIError, entry))): entry
        for abi in abis
        for entry in abi
        if entry.get("type") == "error"
    }


def describe_revert(errors: dict[bytes, dict[str, Any]], exc: ContractLogicError) -> str:
    """`ErrorName(arg=value, ...)` when the revert data is one of `errors` (`custom_errors`), else the
    exception's own text."""
    data = exc.data if isinstance(exc.data, str) else None
    if data is None:
        return str(exc)
    raw = bytes(HexBytes(data))
    entry = errors.get(raw[:4])
    if entry is None:
        return str(exc)
    types = [arg["type"] for arg in entry["inputs"]]
    values = abi_decode(types, raw[4:]) if types else ()
    args = ", ".join(f"{arg['name']}={value!r}" for arg, value in zip(entry["inputs"], values, strict=True))
    return f"{entry['name']}({args})"
