"""The `gpuspot` command line without a market: every command's --help, usage errors (exit 2) before
anything is contacted, keys never from a flag, and an unreachable matcher as one line (exit 1)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gpuspot.cli import main
from gpuspot.cli.parser import COMMANDS, build_parser


@pytest.fixture(autouse=True)
def no_buyer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEY", "KEY_FILE", "KEYSTORE", "KEYSTORE_PASSWORD", "RPC_URL", "MATCHER_URL"):
        monkeypatch.delenv(f"GPUSPOT_BUYER_{name}", raising=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_parser_has_every_command() -> None:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    assert choices is not None and sorted(choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_the_shared_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: gpuspot {command}" in text
    for option in ("--json", "--rpc-url", "--matcher-url", "--key-file", "--keystore"):
        assert option in text


def test_the_top_level_help_walks_through_a_session(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for step in ("gpuspot faucet", "gpuspot deposit", "gpuspot buy", "gpuspot verify", "gpuspot withdraw"):
        assert step in text
    assert "GPUSPOT_BUYER_KEY" in text


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == 2


def test_a_key_is_never_taken_from_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["balance", "--key", "0x" + "11" * 32])
    assert done.value.code == 2
    assert "unrecognized arguments: --key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deposit", "1e5"], "AMOUNT: '1e5' is not an amount"),
        (["faucet", "-3"], "is not an amount"),
        (["withdraw"], "say what to do"),
        (["withdraw", "--request", "5", "--wait"], "--wait goes with --complete"),
        (["withdraw", "--request", "five"], "--request: 'five' is not an amount"),
        (["status", "0x1234"], "is not an order hash"),
        (["status", "latest"], "neither an order hash"),
        (
            ["buy", "--product", "H100-80GB", "--duration", "1x", "--max-price", "3", "--command", "true"],
            "--duration",
        ),
        (["buy", "--product", "H100-80GB", "--duration", "1h", "--max-price", "3"], "exactly one of them"),
        (
            [
                "buy",
                "--product",
                "H100-80GB",
                "--duration",
                "1h",
                "--max-price",
                "3",
                "--command",
                "x",
                "--gpus",
                "0",
            ],
            "--gpus must be at least 1",
        ),
        (
            ["buy", "--product", "P", "--duration", "1h", "--max-price", "3,5", "--command", "true"],
            "--max-price",
        ),
        (
            [
                "buy",
                "--product",
                "P",
                "--duration",
                "1h",
                "--max-price",
                "3",
                "--command",
                "true",
                "--file",
                "/nope/x",
            ],
            "cannot read",
        ),
        (
            ["buy", "--product", "P", "--duration", "1h", "--max-price", "3", "--command", "t", "--env", "X"],
            "NAME=VALUE",
        ),
        (
            [
                "buy",
                "--product",
                "P",
                "--duration",
                "1h",
                "--max-price",
                "3",
                "--command",
                "t",
                "--output",
                "../x",
            ],
            "the job",
        ),
    ],
)
def test_usage_errors_exit_2_before_anything_is_contacted(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # a closed port: had the CLI contacted anything, it would have failed with status 1 instead
    url = f"http://127.0.0.1:{closed_port()}"
    assert main([*argv, "--matcher-url", url, "--rpc-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpuspot: error:") and message in err
    assert err.count("\n") == 1, "one line, no traceback"


def test_a_job_document_with_a_file_it_does_not_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"version": 1, "command": ["python", "train.py"]}))
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"x")
    argv = [
        "buy",
        "--product",
        "P",
        "--duration",
        "1h",
        "--max-price",
        "3",
        "--job",
        str(job),
        "--file",
        str(extra),
    ]
    assert main(argv) == 2
    assert "is not an input of" in capsys.readouterr().err


def test_an_unreachable_matcher_is_one_line_with_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["market", "--matcher-url", url, "--rpc-url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot reach the matcher at {url}" in err and "start it" in err


def test_json_mode_prints_the_error_as_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["book", "H100-80GB", "--json", "--matcher-url", url]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["type"] == "MatcherUnavailableError"


def test_a_command_that_signs_needs_a_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    node = f"http://127.0.0.1:{closed_port()}"
    assert main(["balance", "--rpc-url", node]) == 1  # the node is asked for its chain id first: unreachable
    assert "cannot reach the node" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpuspot.cli", "withdraw"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "say what to do" in done.stderr
