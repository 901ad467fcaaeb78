"""Prometheus metrics of the agent, in the text exposition format, served on loopback by default.

Lasting figures (earnings, receipts, challenges, transactions) are read from the state file at each scrape,
so they survive restarts; the per-run counters (`gpuspot_agent_events_total`) start at zero with the process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provider_agent.agent import ProviderAgent

__all__ = ["MetricsServer", "render"]

log = logging.getLogger(__name__)


def render(agent: ProviderAgent) -> str:
    """The agent's metrics as Prometheus text."""
    state = agent.state
    backend = agent.host.backend
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, int]]) -> None:
        lines.append(f"# HELP gpuspot_agent_{name} {help_}")
        lines.append(f"# TYPE gpuspot_agent_{name} {kind}")
        lines.extend(f"gpuspot_agent_{name}{labels} {value}" for labels, value in samples)

    offered = sum(ask.gpus for ask in state.live_asks() if ask.status == "open")
    held = len(state.held_devices())
    metric(
        "gpus",
        "gauge",
        "GPUs of this host by state (backend says nvml or cpu-simulated)",
        [
            (f'{{state="total",backend="{backend}"}}', len(agent.devices)),
            (f'{{state="offered",backend="{backend}"}}', offered),
            (f'{{state="leased",backend="{backend}"}}', held),
        ],
    )
    statuses = Counter(lease.status.value for lease in state.leases())
    metric(
        "leases",
        "gauge",
        "leases of this host by status",
        [(f'{{status="{s}"}}', n) for s, n in sorted(statuses.items())],
    )
    stored, sent = state.count_receipts()
    metric(
        "receipts_total",
        "counter",
        "signed receipts stored and acknowledged by the matcher",
        [('{state="stored"}', stored), ('{state="sent"}', sent)],
    )
    metric(
        "challenges_total",
        "counter",
        "proof-of-work challenges answered, by verdict",
        [(f'{{outcome="{o}"}}', n) for o, n in sorted(state.challenge_counts().items())],
    )
    metric(
        "earnings_base_units_total",
        "counter",
        "token base units the escrow paid for this host's leases",
        [("", state.earnings())],
    )
    metric("gas_used_total", "counter", "gas used by this agent's transactions", [("", state.gas_used())])
    metric(
        "transactions_total",
        "counter",
        "transactions by kind and status",
        [(f'{{kind_status="{k}"}}', n) for k, n in sorted(state.tx_counts().items())],
    )
    metric(
        "events_total",
        "counter",
        "what this run of the agent did, by event",
        [(f'{{event="{k}"}}', n) for k, n in sorted(agent.counters.values.items())],
    )
    metric(
        "accepting",
        "gauge",
        "1 while the agent offers capacity, 0 while it drains",
        [("", int(agent.accepting))],
    )
    return "\n".join(lines) + "\n"


class MetricsServer:
    """`GET /metrics` (and `/healthz`) on a background thread."""

    def __init__(self, agent: ProviderAgent, host: str, port: int) -> None:
        owner = agent

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] == "/metrics":
                    body, kind = render(owner).encode(), "text/plain; version=0.0.4"
                elif self.path == "/healthz":
                    body, kind = b'{"status": "ok"}', "application/json"
                else:
                    self.send_error(404, "try /metrics")
                    return
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("metrics: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
