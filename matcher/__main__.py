"""`python -m matcher` / `gpuspot-matcher`: runs the batch loop and the HTTP API until SIGTERM or Ctrl-C.

Settings come from flags, then `GPUSPOT_MATCHER_*` environment variables, then the TOML file of `--config`.

`python -m matcher verify-batch <id> --api URL --rpc-url URL` (or `gpuspot-verify-batch`) recomputes a
recorded batch from its published inputs and compares it with the root on-chain (matcher/verify.py): exit 0
on match, 1 on mismatch, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

log = logging.getLogger("matcher")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpuspot-matcher",
        description="The gpuspot matcher: order intake, batch auctions, one settlement root per batch.",
        epilog="Every flag also reads GPUSPOT_MATCHER_<NAME> (e.g. GPUSPOT_MATCHER_OPERATOR_KEY); flags win.",
    )
    parser.add_argument("--config", type=Path, help="TOML file of settings (same names as the flags)")
    parser.add_argument(
        "--rpc-url", dest="rpc_url", help="the node's JSON-RPC URL (default http://127.0.0.1:8545)"
    )
    parser.add_argument(
        "--deployment-file",
        dest="deployment_file",
        type=Path,
        help="written by `ape run deploy`: chain id, contracts, parameters (default .state/deployment.json)",
    )
    parser.add_argument(
        "--database-url",
        dest="database_url",
        help="sqlite:///path/to/matcher.db (default sqlite:///.state/matcher.db) or postgresql://user:pw@host/db",
    )
    parser.add_argument(
        "--operator-key-file",
        dest="operator_key_file",
        type=Path,
        help="file holding the escrow operator's private key; or set GPUSPOT_MATCHER_OPERATOR_KEY "
        "(never a flag: it would land in shell history)",
    )
    parser.add_argument(
        "--batch-interval", dest="batch_interval", type=float, help="seconds between batches (default 5)"
    )
    parser.add_argument(
        "--pricing-rule",
        dest="pricing_rule",
        choices=["uniform", "mcafee", "pay-as-bid"],
        help="how a batch's prices are set (default uniform; docs/clearing.md)",
    )
    parser.add_argument(
        "--min-order-lifetime",
        dest="min_order_lifetime",
        type=int,
        help="extra seconds an order must still live when it arrives (default 0)",
    )
    parser.add_argument(
        "--confirmations", type=int, help="blocks the chain watcher stays behind the head (default 2)"
    )
    parser.add_argument(
        "--catalog-file", dest="catalog_file", type=Path, help="products TOML (default config/products.toml)"
    )
    parser.add_argument("--host", help="address the API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port the API listens on (default 8000)")
    parser.add_argument("--log-level", dest="log_level", help="DEBUG, INFO (default), WARNING or ERROR")
    return parser.parse_args(argv)


def parse_verify_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpuspot-verify-batch",
        description="Recompute a batch from its published inputs and compare it with the root on-chain.",
    )
    parser.add_argument("batch_id", type=int, help="the batch id")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the matcher API's base URL")
    parser.add_argument("--rpc-url", dest="rpc_url", default="http://127.0.0.1:8545", help="the node")
    return parser.parse_args(argv)


def verify_main(argv: list[str] | None = None) -> int:
    """`verify-batch`: 0 on match, 1 on mismatch, 2 on usage errors (argparse) or unreachable inputs."""
    try:
        args = parse_verify_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    import httpx

    from matcher.verify import verify_batch

    try:
        result = verify_batch(args.api, args.rpc_url, args.batch_id)
    except httpx.HTTPStatusError as exc:
        print(
            f"verify-batch: the API answered {exc.response.status_code}: {exc.response.text}", file=sys.stderr
        )
        return 2
    except (httpx.HTTPError, OSError) as exc:
        print(f"verify-batch: cannot read the inputs or the chain: {exc}", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify-batch"]:
        return verify_main(argv[1:])
    args = parse_args(argv)
    import uvicorn

    from matcher.api import create_app
    from matcher.errors import MatcherError
    from matcher.service import MatcherService
    from matcher.settings import MatcherSettings

    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    try:
        settings = MatcherSettings.load(args.config, **overrides)
    except (ValidationError, MatcherError) as exc:
        print(f"gpuspot-matcher: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        service = MatcherService.from_settings(settings)
    except Exception as exc:  # the message says what to fix; a traceback would bury it
        log.error("cannot start: %s", exc)
        return 1

    stop = threading.Event()
    loop = threading.Thread(target=service.run_forever, args=(stop,), name="batch-loop", daemon=True)
    server = uvicorn.Server(
        # No access log: a line per request would cost more than the request at full load; the service
        # logs what it decides (every intake round, batch and root) and /metrics counts the rest.
        uvicorn.Config(
            create_app(service), host=settings.host, port=settings.port, log_config=None, access_log=False
        )
    )

    def shutdown(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        server.should_exit = True

    loop.start()
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("serving on http://%s:%d", settings.host, settings.port)
    server.run()
    stop.set()
    loop.join(timeout=max(settings.batch_interval, 1.0) + settings.receipt_timeout)
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
