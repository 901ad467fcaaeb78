"""`./scripts/devnet`: a whole gpuspot market on this machine, in one terminal.

Starts Anvil, deploys the contracts, funds the accounts, starts the matcher (whose API and explorer are at
http://127.0.0.1:8000) and three provider agents (CPU stand-ins for GPUs, one of them faulty), then runs a
scripted market through the buyer SDK and prints a summary whose every figure is checked against the chain.
Then it keeps the market running for you until Ctrl-C; with --once it stops after the summary and exits 0
only if every check held. Either way it ends every process it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from gpuspot.deployment import DEFAULT_STATE_DIR

EPILOG = """\
examples:
  ./scripts/devnet                      the market, the scenario, then keep running until Ctrl-C
  ./scripts/devnet --once               the scenario and its checks, then stop (exit 0: all held)
  ./scripts/devnet --state-dir /tmp/gs  keep the deployment file, database, logs somewhere else
  ./scripts/devnet --port 8100 --rpc-port 8645   when 8000 or 8545 is taken

While it runs (another terminal, same checkout):
  export GPUSPOT_BUYER_KEY=<a buyer key it prints>
  .venv/bin/gpuspot balance       .venv/bin/gpuspot buy --help
Logs of every process: <state-dir>/logs/.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devnet",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--once", action="store_true", help="run the scenario, print the summary, stop")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="folder for the deployment file, the matcher's database, the agents' state and the logs; "
        "cleared of an earlier devnet's files at start (default %(default)s)",
    )
    parser.add_argument("--rpc-port", type=int, default=8545, help="Anvil's port (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="the matcher's API and explorer port (default %(default)s)"
    )
    parser.add_argument(
        "--batch-interval", type=float, default=2.0, help="seconds between batches (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="longest wait for the scenario's leases, seconds"
    )
    return parser.parse_args(argv)


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: stop in order."""


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    from gpuspot.devnet.network import BUYERS, PROVIDERS, Network, dev_account
    from gpuspot.devnet.processes import DevnetError, check_port_free

    try:
        check_port_free(args.rpc_port, "chain (Anvil)", "--rpc-port")
        check_port_free(args.port, "matcher's API and explorer", "--port")
    except DevnetError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return 2

    network = Network(args.state_dir.resolve(), args.rpc_port, args.port, args.batch_interval, progress)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    try:
        network.clear_state()
        progress(f"state folder: {network.state_dir} (logs in {network.processes.log_dir})")
        network.start_chain()
        network.deploy()
        assert network.deployment is not None
        network.fund_providers(network.deployment.parameters.min_stake)
        network.mine_every(1)
        network.start_matcher()
        network.start_agents()
        progress(f"the explorer: {network.matcher_url}/  (the API: {network.matcher_url}/v1/market)")

        from gpuspot.devnet.scenario import run_scenario
        from gpuspot.devnet.summary import summarise

        result = run_scenario(network, progress, timeout=args.timeout)
        summary = summarise(network, result)
        print(summary.render(), flush=True)
        progress(f"the explorer shows all of it: {network.matcher_url}/")
        if args.once:
            return 0 if summary.ok else 1
        ada_key = dev_account(BUYERS["ada"]).key.hex().removeprefix("0x")
        print(
            "\nThe market keeps running (Ctrl-C stops it). Try the CLI in another terminal:\n"
            f"  export GPUSPOT_BUYER_RPC_URL={network.rpc_url}\n"
            f"  export GPUSPOT_BUYER_MATCHER_URL={network.matcher_url}\n"
            f"  export GPUSPOT_BUYER_KEY=0x{ada_key}   # buyer ada: a public devnet key\n"
            "  .venv/bin/gpuspot balance\n"
            "  .venv/bin/gpuspot buy --product H100-80GB --gpus 1 --duration 2m --max-price 3 "
            '--command "python -c print(42)" --follow\n'
            f"Providers: {', '.join(f'{p.name} ({p.simulates})' for p in PROVIDERS)}.",
            flush=True,
        )
        while True:
            network.processes.check_alive()
            time.sleep(1)
    except Stopped as stop:
        progress(f"{stop}: stopping the market")
        return 0 if not args.once else 130
    except DevnetError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the orderly stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        network.stop()
        progress("every process the devnet started has stopped")


if __name__ == "__main__":
    sys.exit(main())
