"""`./scripts/devnet --once`, exactly as the README gives it (on spare ports and a scratch state folder): the
whole market comes up, the scripted scenario runs, every check of its summary holds against the chain, and
nothing it started is left running. Also: a port already in use gets a clear message and starts nothing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from matcher_process import LOOPBACK, free_port

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[str]:
    """Processes (other than this one) whose command line or environment contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:200]}")
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def test_devnet_once_runs_the_scenario_and_every_check_holds(tmp_path: Path) -> None:
    state = tmp_path / "devnet-state"
    rpc_port, port = free_port(), free_port()
    done = subprocess.run(
        [str(REPOSITORY_ROOT / "scripts" / "devnet"), "--once", "--state-dir", str(state),
         "--rpc-port", str(rpc_port), "--port", str(port)],
        cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    logs = "\n".join(
        f"--- {log.name}:\n{log.read_text(errors='replace')[-2500:]}"
        for log in sorted((state / "logs").glob("*"))
    )
    assert done.returncode == 0, f"devnet --once failed:\n{output[-8000:]}\n{logs}"

    held = re.search(r"checks against the chain: (\d+) of (\d+) held", output)
    assert held and held.group(1) == held.group(2) and int(held.group(2)) >= 15, output[-6000:]
    assert "FAIL" not in output
    assert f"the explorer: http://127.0.0.1:{port}/" in output
    for figure in ("batches cleared:", "clearing prices per GPU-hour:", "paid to alpha:", "refunded to"):
        assert figure in output, figure
    assert "charlie's faulty GPU caught" in output

    # the state folder holds what the README says; nothing the devnet started is still running
    assert (state / "deployment.json").is_file() and (state / "matcher.db").is_file()
    assert processes_mentioning(str(state)) == []
    assert port_is_free(rpc_port) and port_is_free(port)


def test_devnet_refuses_a_port_in_use_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gpuspot.devnet", "--once", "--state-dir", str(tmp_path / "s"),
             "--port", str(port), "--rpc-port", str(free_port())],
            cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port" in done.stderr
    assert not (tmp_path / "s").exists(), "nothing was started or written"
