"""The devnet's child processes: started in their own process groups with their output in log files, watched,
and all ended (the whole group, so nothing a child started survives) when the devnet stops, however it stops.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class DevnetError(Exception):
    """The devnet cannot start or go on; the message says what to do."""


def check_port_free(port: int, what: str, flag: str) -> None:
    """Raises `DevnetError` naming `what` and the `flag` that moves it when 127.0.0.1:`port` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise DevnetError(
                f"port {port} on {LOOPBACK} is already in use, and the {what} needs it: stop whatever "
                f"listens there (another devnet? `ss -ltnp 'sport = :{port}'` shows it) or pass {flag} "
                f"with a free port"
            ) from None


@dataclass
class Child:
    """One child process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3_000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited with status {self.popen.returncode}"
        return f"{self.name} (pid {self.pid}) {state}; last lines of {self.log_path}:\n{self.log_tail()}"


@dataclass
class Processes:
    """Every process the devnet started, in start order; `stop_all` ends them in reverse order."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as out:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a Ctrl-C reaches the devnet, which ends it in order
            )
        child = Child(name, popen, log_path)
        self.children.append(child)
        log.debug("started %s: pid %d, log %s", name, popen.pid, log_path)
        return child

    def check_alive(self) -> None:
        """Raises `DevnetError` with the log's tail if any child has exited."""
        for child in self.children:
            if not child.alive():
                raise DevnetError(f"{child.describe()}")

    def stop(self, child: Child, timeout: float) -> None:
        """SIGTERM to the child's group (an orderly stop), SIGKILL to the group after `timeout`."""
        if child.alive():
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", child.name, timeout)
        # whatever the child started in its group goes too, even after the child itself exited
        _signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=5)

    def stop_all(self, timeout: float = 15.0, on_stop: Callable[[str], None] | None = None) -> None:
        for child in reversed(self.children):
            if on_stop is not None and child.alive():
                on_stop(child.name)
            self.stop(child, timeout)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    watch: Processes | None = None,
    poll: float = 0.25,
) -> None:
    """Polls `ready` until it holds; raises `DevnetError` after `timeout` seconds, or at once when a watched
    child exits (quoting its log)."""
    deadline = time.monotonic() + timeout
    while True:
        if watch is not None:
            watch.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise DevnetError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
