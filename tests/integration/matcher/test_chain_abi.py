"""Where the adapter gets its ABIs: ape's manifest first, forge's artifact next, else a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.chain import ESCROW, AbiNotFoundError, load_abi
from matcher.chain.abi import default_project_root


def test_abi_comes_from_ape_manifest_of_this_checkout():
    abi = load_abi(ESCROW)
    manifest = json.loads((default_project_root() / ".build" / "__local__.json").read_text())
    assert list(abi) == manifest["contractTypes"]["Escrow"]["abi"]
    assert {"postRoot", "lastBatchId", "batchRoot"} <= {e.get("name") for e in abi if e["type"] == "function"}


def test_abi_falls_back_to_forge_artifacts(tmp_path: Path):
    artifact = tmp_path / "contracts" / "out" / "Escrow.sol" / "Escrow.json"
    artifact.parent.mkdir(parents=True)
    artifact.write_text(json.dumps({"abi": [{"type": "event", "name": "Deposited", "inputs": []}]}))
    assert load_abi(ESCROW, tmp_path) == ({"type": "event", "name": "Deposited", "inputs": []},)


def test_missing_artifacts_say_to_run_ape_compile(tmp_path: Path):
    with pytest.raises(AbiNotFoundError, match="ape compile"):
        load_abi(ESCROW, tmp_path)
