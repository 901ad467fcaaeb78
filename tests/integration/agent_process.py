"""The real provider agent as a child process (`python -m provider_agent`), for tests that run or crash it,
and the fast settings those tests run the matcher and a CPU-backend agent with.

Settings travel as `GPUSPOT_AGENT_*` environment variables (the key among them, never on the command line);
output goes to a log file whose tail every failure message quotes. `kill9` is a crash: no handler runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class AgentProcess:
    """One running agent; `start` again after `kill9` to restart it on the same state directory."""

    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> AgentProcess:
        assert self.popen is None or self.popen.poll() is not None, "the agent is still running"
        self.starts += 1
        path = self.log_path.with_suffix(f".{self.starts}.log")
        self.logs.append(path)
        with path.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "provider_agent"],
                cwd=REPOSITORY_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 6_000) -> str:
        text = "".join(p.read_text(errors="replace") for p in self.logs if p.exists())
        return text[-chars:]

    def kill9(self) -> int:
        assert self.popen is not None
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        return self.popen.wait(timeout=10)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (drain), then SIGKILL if it is still there after `timeout`."""
        if self.popen is None:
            return None
        if self.alive():
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
        return self.popen.wait(timeout=10)


def agent_environment(settings: dict[str, str], key: str) -> dict[str, str]:
    """The caller's environment without its own GPUSPOT_AGENT_* settings, plus `settings` (names without
    the prefix) and the provider key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSPOT_AGENT_")}
    env.update({f"GPUSPOT_AGENT_{name.upper()}": value for name, value in settings.items()})
    env["GPUSPOT_AGENT_PROVIDER_KEY"] = key
    env["PYTHONUNBUFFERED"] = "1"
    return env


FAST_EVIDENCE = {
    "RECEIPT_INTERVAL": "1",
    "EVIDENCE_TIMEOUT": "8",
    "CLOCK_SKEW": "5",
    "CHALLENGE_INTERVAL": "2",
    "CHALLENGE_N": "64",
    "CHALLENGE_DEADLINE_MS": "5000",
    "OPENING_TIMEOUT": "10",
    "USAGE_INTERVAL": "2",
}
"""The matcher's evidence settings for tests (names without the GPUSPOT_MATCHER_ prefix): receipts every
second, a challenge every two, so a lease of a few seconds sees all of it."""


def fast_evidence_env() -> dict[str, str]:
    """FAST_EVIDENCE as the matcher's environment (`MatcherConfig.extra_env`)."""
    return {f"GPUSPOT_MATCHER_{name}": value for name, value in FAST_EVIDENCE.items()}


def cpu_agent_settings(
    *, rpc_url: str, matcher_url: str, deployment_file: Path, state_dir: Path, floor_price: int = 2_000_000
) -> dict[str, str]:
    """A CPU-backend agent standing in for two H100s, acting at once: short polls, receipts every second,
    settling whatever it is owed without waiting, metrics on a free port."""
    return {
        "rpc_url": rpc_url,
        "matcher_url": matcher_url,
        "deployment_file": str(deployment_file),
        "state_dir": str(state_dir),
        "backend": "cpu",
        "cpu_gpus": "2",
        "simulates": "H100-80GB",
        "floor_price": str(floor_price),
        "poll_interval": "0.3",
        "receipt_interval": "1",
        "ask_lifetime": "600",
        "settle_min_amount": "0",
        "settle_max_delay": "0",
        "drain_timeout": "5",
        "metrics_port": "0",
    }
