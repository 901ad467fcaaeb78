"""`python -m provider_agent` / `gpuspot-provider`: runs a provider agent until SIGTERM or Ctrl-C.

Settings come from flags, then `GPUSPOT_AGENT_*` environment variables, then the TOML file of `--config`.
SIGTERM or Ctrl-C drains (docs/provider.md): no new asks or leases, running jobs get `drain_timeout`
seconds to finish, then are stopped with a final receipt. A second signal stops at once; the state file
lets the next start resume where this one stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

log = logging.getLogger("provider_agent")

FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--rpc-url", {"help": "the node's JSON-RPC URL (default http://127.0.0.1:8545)"}),
    ("--matcher-url", {"help": "the matcher's API (default http://127.0.0.1:8000)"}),
    ("--deployment-file", {"type": Path, "help": "from `ape run deploy` (default .state/deployment.json)"}),
    (
        "--state-dir",
        {"type": Path, "help": "where state.db and job work directories live (default .state/agent)"},
    ),
    (
        "--provider-key-file",
        {
            "type": Path,
            "help": "file holding the provider's private key; or set "
            "GPUSPOT_AGENT_PROVIDER_KEY (never a flag: it would land in shell history)",
        },
    ),
    (
        "--backend",
        {
            "choices": ["auto", "nvml", "cpu"],
            "help": "GPUs through NVML, or a CPU standing in for "
            "GPUs (devnet only, labelled cpu-simulated everywhere); auto: NVML if present (default)",
        },
    ),
    ("--cpu-gpus", {"type": int, "help": "how many GPUs the CPU backend simulates (default 1)"}),
    ("--simulates", {"help": "the catalog product the CPU backend stands in for, e.g. H100-80GB"}),
    (
        "--cpu-fault",
        {
            "choices": ["none", "wrong-answer"],
            "help": "make the CPU backend answer challenges wrongly, as a faulty GPU would (default none; "
            "for demonstrating that the verifier catches it)",
        },
    ),
    ("--stake", {"type": int, "help": "stake to register with, token base units (default: the minimum)"}),
    ("--floor-price", {"type": int, "help": "lowest price per GPU-hour, token base units (default 2000000)"}),
    ("--pricing", {"choices": ["fixed", "utilisation"], "help": "pricing policy (default fixed: the floor)"}),
    ("--max-duration", {"type": int, "help": "longest lease accepted, seconds (default 86400)"}),
    (
        "--ask-lifetime",
        {"type": int, "help": "seconds an ask is valid; re-posted before expiry (default 900)"},
    ),
    ("--poll-interval", {"type": float, "help": "seconds between the agent's rounds (default 1)"}),
    ("--receipt-interval", {"type": int, "help": "seconds between receipts (default: the market's)"}),
    (
        "--settle-min-amount",
        {"type": int, "help": "settle once this much is owed, base units (default 1000000)"},
    ),
    (
        "--settle-max-delay",
        {"type": int, "help": "or once usage has waited this long, seconds (default 900)"},
    ),
    ("--drain-timeout", {"type": float, "help": "on shutdown, seconds jobs get to finish (default 300)"}),
    ("--catalog-file", {"type": Path, "help": "products TOML (default config/products.toml)"}),
    ("--metrics-host", {"help": "where /metrics listens (default 127.0.0.1)"}),
    ("--metrics-port", {"type": int, "help": "port of /metrics (default 9100; 0 picks a free one)"}),
    ("--log-level", {"help": "DEBUG, INFO (default), WARNING or ERROR"}),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpuspot-provider",
        description="The gpuspot provider agent: offers this host's GPUs, runs leased jobs, proves delivery "
        "with receipts and proof-of-work challenges, and settles its earnings on-chain.",
        epilog="Every flag also reads GPUSPOT_AGENT_<NAME> (e.g. GPUSPOT_AGENT_PROVIDER_KEY); flags win. "
        "`%(prog)s check --help`: the host's self-test (GPUs, a timed challenge per GPU, a pinned job).",
    )
    parser.add_argument("--config", type=Path, help="TOML file of settings (same names as the flags)")
    for flag, options in FLAGS:
        parser.add_argument(flag, dest=flag[2:].replace("-", "_"), **options)
    parser.add_argument("--log-json", action="store_true", help="structured logs: one JSON object per line")
    return parser.parse_args(argv)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)


def build_agent(settings: Any) -> Any:
    """The agent for `settings` (an `AgentSettings`): discovery, chain, matcher client, state."""
    from gpuspot.catalog import Catalog
    from gpuspot.deployment import DEVNET_CHAIN_ID, Deployment
    from matcher.chain.connection import connect
    from provider_agent.agent import AgentOptions, ProviderAgent
    from provider_agent.chain import ProviderChain
    from provider_agent.client import MatcherClient
    from provider_agent.config import ConfigError
    from provider_agent.host import discover, product_for
    from provider_agent.pricing import policy_named
    from provider_agent.state import AgentState

    deployment = Deployment.load(settings.deployment_file)
    catalog = Catalog.load(settings.catalog_file) if settings.catalog_file else Catalog.default()
    account = settings.provider_account(deployment.chain_id)
    host = discover(
        settings.backend, cpu_gpus=settings.cpu_gpus, simulates=settings.simulates, fault=settings.cpu_fault
    )
    if host.backend != "nvml" and deployment.chain_id != DEVNET_CHAIN_ID:
        raise ConfigError(
            f"the {host.backend} backend stands in for GPUs and is for devnets only "
            f"(chain {DEVNET_CHAIN_ID}); "
            f"chain {deployment.chain_id} needs real GPUs (--backend nvml)"
        )
    product = product_for(host.devices(), catalog)
    client = MatcherClient(settings.matcher_url)
    market = client.market()
    state = AgentState(settings.state_dir / "state.db")
    chain = ProviderChain(
        connect(settings.rpc_url), deployment, account, state, receipt_timeout=settings.tx_timeout
    )
    options = AgentOptions(
        floor_price=settings.floor_price,
        max_duration=settings.max_duration,
        ask_lifetime=settings.ask_lifetime,
        repost_margin=settings.repost_margin,
        receipt_interval=settings.receipt_interval
        or int(market.get("evidence", {}).get("receipt_interval", 30)),
        settle_min_amount=settings.settle_min_amount,
        settle_max_delay=settings.settle_max_delay,
        stake=settings.stake,
        max_blob_bytes=int(market.get("evidence", {}).get("max_blob_bytes", 16 * 2**20)),
    )
    return ProviderAgent(
        account=account,
        deployment=deployment,
        host=host,
        product=product,
        chain=chain,
        client=client,
        state=state,
        policy=policy_named(settings.pricing),
        options=options,
        work_root=settings.state_dir / "jobs",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        from provider_agent.check import main as check

        return check(argv[1:])
    args = parse_args(argv)
    from provider_agent.config import AgentSettings, ConfigError

    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "log_json")}
    try:
        settings = AgentSettings.load(args.config, **overrides)
    except (ValidationError, ConfigError) as exc:
        print(f"gpuspot-provider: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, args.log_json)
    try:
        agent = build_agent(settings)
        agent.start()
    except Exception as exc:  # the message says what to fix; a traceback would bury it
        log.error("cannot start: %s", exc)
        log.debug("cannot start", exc_info=True)
        return 1

    from provider_agent.metrics import MetricsServer

    metrics = MetricsServer(agent, settings.metrics_host, settings.metrics_port)
    metrics.start()
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, metrics.port)
    stop = threading.Event()
    signals = 0

    def shutdown(signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: stopping now; the state file resumes the rest")
            raise SystemExit(1)
        log.info("signal %d: draining", signum)
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    agent.run_forever(stop, settings.poll_interval)
    agent.drain(settings.drain_timeout, settings.poll_interval)
    metrics.close()
    agent.state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
