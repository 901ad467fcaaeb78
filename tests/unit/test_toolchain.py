"""The toolchain the test command relies on must report failures: a runner that cannot fail tests nothing."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAILING_TEST = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract ProbeTest {
    function test_fails() public pure { require(1 == 2, "must fail"); }
}
"""


@pytest.mark.parametrize("passing", [False, True])
def test_forge_on_path_exits_nonzero_exactly_when_a_test_fails(tmp_path: Path, passing: bool):
    forge = shutil.which("forge")
    assert forge is not None, "forge is not on PATH: source scripts/lib.sh (./scripts/bootstrap links it)"
    (tmp_path / "test").mkdir()
    body = FAILING_TEST.replace("1 == 2", "1 == 1") if passing else FAILING_TEST
    (tmp_path / "test" / "Probe.t.sol").write_text(body)
    (tmp_path / "foundry.toml").write_text(
        f'[profile.default]\nsrc = "test"\nsolc = "{ROOT}/contracts/solc/solc"\noffline = true\n'
    )
    result = subprocess.run([forge, "test"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) == passing, result.stdout[-2000:] + result.stderr[-2000:]
