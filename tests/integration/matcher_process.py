"""The real matcher as a child process (`python -m matcher`), for tests that crash it.

`MatcherLauncher` starts matchers one after another with the same settings (same Anvil, deployment file,
database, operator key), each on a fresh free port on 127.0.0.1, and waits until one serves. `kill9` sends
SIGKILL: no signal handler runs and nothing is flushed or closed, exactly a crash. Each process writes its
output to its own log file, whose tail every failure message quotes; `close` ends whatever is still running,
so a failing test leaves no matcher behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
LOG_TAIL_CHARS = 4_000


class MatcherDidNotStartError(AssertionError):
    """The matcher exited or did not serve in time; the message carries its exit status and log tail."""


@dataclass(frozen=True)
class MatcherConfig:
    """What every matcher of one test runs with. `database_url` is the state that survives the kills."""

    rpc_url: str
    deployment_file: Path
    database_url: str
    operator_key: str
    log_dir: Path
    batch_interval: float = 1.0
    confirmations: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    """More `GPUSPOT_MATCHER_*` settings, e.g. the evidence intervals of a test."""

    def arguments(self, port: int) -> list[str]:
        return [
            "--rpc-url",
            self.rpc_url,
            "--deployment-file",
            str(self.deployment_file),
            "--database-url",
            self.database_url,
            "--batch-interval",
            str(self.batch_interval),
            # Anvil mines a block per transaction and never reorganises: no lag needed, and the watcher sees
            # the provider's registration at once
            "--confirmations",
            str(self.confirmations),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "INFO",
        ]

    def environment(self) -> dict[str, str]:
        """The caller's environment without any GPUSPOT_MATCHER_* setting of its own, plus the operator key
        (kept off the command line, where `ps` would show it) and unbuffered output (a killed process
        flushes nothing, and its log is what explains a failure)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSPOT_MATCHER_")}
        env.update(self.extra_env)
        env["GPUSPOT_MATCHER_OPERATOR_KEY"] = self.operator_key
        env["PYTHONUNBUFFERED"] = "1"
        return env


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class MatcherProcess:
    """One running `python -m matcher`."""

    number: int
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return text[-chars:]

    def describe(self) -> str:
        status = "running" if self.alive() else f"exited with status {self.popen.returncode}"
        return (
            f"matcher #{self.number} (pid {self.pid}, {self.url}) {status}; "
            f"last output of {self.log_path}:\n{self.log_tail()}"
        )

    def wait_ready(
        self, timeout: float, ready: Callable[[httpx.Client], bool] | None = None, poll: float = 0.05
    ) -> None:
        """Waits until GET /healthz answers 200 and `ready(client)` holds; raises `MatcherDidNotStartError`
        with the exit status and the log's tail if the process exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        last_problem = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise MatcherDidNotStartError(f"the matcher did not start: {self.describe()}")
                try:
                    health = client.get("/healthz")
                    if health.status_code == 200 and (ready is None or ready(client)):
                        return
                    last_problem = f"/healthz answered {health.status_code}, or not ready yet"
                except httpx.TransportError as exc:
                    last_problem = f"{type(exc).__name__}: {exc}"
                time.sleep(poll)
        raise MatcherDidNotStartError(
            f"the matcher did not serve within {timeout:.0f} s ({last_problem}): {self.describe()}"
        )

    def kill9(self) -> int:
        """SIGKILL, then reaps the process; returns its exit status (-9 when the kill is what ended it)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        return self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (the matcher's orderly stop), then SIGKILL if it is still there after `timeout`."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill9()
        return int(self.popen.returncode)


@dataclass
class MatcherLauncher:
    """Starts matchers on one configuration, one at a time, and ends whichever is still running at close."""

    config: MatcherConfig
    startup_timeout: float = 30.0
    processes: list[MatcherProcess] = field(default_factory=list)

    @property
    def current(self) -> MatcherProcess | None:
        last = self.processes[-1] if self.processes else None
        return last if last is not None and last.alive() else None

    def start(self, ready: Callable[[httpx.Client], bool] | None = None) -> MatcherProcess:
        """A new matcher on the same database and a fresh port, once it serves and `ready` holds."""
        if self.current is not None:
            raise RuntimeError(f"matcher #{self.current.number} is still running: kill or stop it first")
        number = len(self.processes) + 1
        port = free_port()
        log_path = self.config.log_dir / f"matcher-{number:02d}.log"
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", "matcher", *self.config.arguments(port)],
                cwd=REPOSITORY_ROOT,
                env=self.config.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal goes to pytest, which then ends it
            )
        process = MatcherProcess(number, port, log_path, popen)
        self.processes.append(process)
        process.wait_ready(self.startup_timeout, ready)
        return process

    def close(self) -> None:
        """Ends every process this launcher started that still runs (SIGKILL: teardown, not a test)."""
        for process in self.processes:
            if process.alive():
                process.kill9()
