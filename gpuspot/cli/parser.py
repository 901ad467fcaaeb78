"""The `gpuspot` command line: one subcommand per thing a buyer does, each with a `--help` a newcomer can
follow. Options shared by every command (where the node and matcher are, whose key, `--json`) are accepted
before or after the command's name."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["COMMANDS", "build_parser"]

DESCRIPTION = """\
The gpuspot buyer CLI: rent GPUs by the hour on a gpuspot market.

A typical session on a devnet:
  export GPUSPOT_BUYER_KEY=0x...            # your key (or --key-file / --keystore; never a flag value)
  gpuspot market                            # products, token, parameters
  gpuspot faucet 100                        # devnet test tokens into your wallet
  gpuspot deposit 50                        # into the escrow (approves it first)
  gpuspot buy --product H100-80GB --gpus 1 --duration 30m --max-price 3 \\
      --command "python train.py" --file train.py --output out/model.bin --follow
  gpuspot verify LEASE_ID                   # re-check everything the matcher published
  gpuspot withdraw --all --complete --wait  # your money back, after the notice period

Amounts are token units as exact decimals (12.5); they are shown in token units and base units.
Exit status: 0 ok, 1 a failed operation or check, 2 a usage error."""

EPILOG = """\
environment:
  GPUSPOT_BUYER_KEY                  the buyer's private key (0x + 64 hex digits)
  GPUSPOT_BUYER_KEY_FILE             a file holding it (same as --key-file)
  GPUSPOT_BUYER_KEYSTORE             an encrypted JSON keystore (same as --keystore)
  GPUSPOT_BUYER_KEYSTORE_PASSWORD    its password (else asked for in a terminal)
  GPUSPOT_BUYER_RPC_URL, GPUSPOT_BUYER_MATCHER_URL   defaults of --rpc-url and --matcher-url
See docs/sdk.md."""


def _common() -> argparse.ArgumentParser:
    """Options every command takes; SUPPRESS so that a value given before the command is not overwritten by
    the subcommand's default."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = common.add_argument_group("connection and key")
    group.add_argument(
        "--rpc-url",
        default=argparse.SUPPRESS,
        help="the chain's JSON-RPC URL (env GPUSPOT_BUYER_RPC_URL; default http://127.0.0.1:8545)",
    )
    group.add_argument(
        "--matcher-url",
        default=argparse.SUPPRESS,
        help="the matcher's API (env GPUSPOT_BUYER_MATCHER_URL; default http://127.0.0.1:8000)",
    )
    group.add_argument(
        "--key-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="a file holding the buyer's private key (or env GPUSPOT_BUYER_KEY / GPUSPOT_BUYER_KEY_FILE)",
    )
    group.add_argument(
        "--keystore",
        type=Path,
        default=argparse.SUPPRESS,
        help="an encrypted JSON keystore; password from GPUSPOT_BUYER_KEYSTORE_PASSWORD or a prompt",
    )
    group.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="a TOML file of settings (rpc_url, matcher_url...)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document on stdout (progress goes to stderr)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="gpuspot",
        allow_abbrev=False,  # `--key 0x...` must not pass as an abbreviation of --key-file or --keystore
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=description or summary,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )

    command("market", "show the market: chain, escrow, token, products, batch interval, parameters")

    book = command("book", "show a product's open order book (bids and asks per price level)")
    book.add_argument(
        "product", metavar="PRODUCT", help="a product name, e.g. H100-80GB (see `gpuspot market`)"
    )

    command(
        "balance",
        "show your wallet's token balance and your escrow account (available, reserved, withdrawal)",
    )

    faucet = command(
        "faucet",
        "mint devnet test tokens into your wallet (chain 31337 only)",
        "Mint test tokens (devnet only).",
    )
    faucet.add_argument("amount", metavar="AMOUNT", help="token units, e.g. 100 or 12.5")

    deposit = command(
        "deposit",
        "deposit tokens from your wallet into the escrow",
        "Deposit AMOUNT into the escrow (approving it first when needed). Bids are paid from the escrow.",
    )
    deposit.add_argument("amount", metavar="AMOUNT", help="token units, e.g. 50 or 12.5")

    buy = command(
        "buy",
        "bid for GPUs to run a job; --follow it until settled",
        "Sign and send a bid: GPUS GPUs of PRODUCT on one host for DURATION, paying at most MAX_PRICE per "
        "GPU-hour.\nThe job is a job spec document (--job) or a command with its input files and outputs.\n\n"
        "examples:\n"
        "  gpuspot buy --product H100-80GB --duration 2h --max-price 3.5 --job job.json --follow\n"
        "  gpuspot buy --product H100-80GB --gpus 2 --duration 30m --max-price 3 \\\n"
        '      --command "python train.py" --file train.py --file data/x.bin --output out/model.bin \\\n'
        "      --follow --outputs-dir results/",
    )
    buy.add_argument("--product", required=True, help="a product name (see `gpuspot market`)")
    buy.add_argument("--gpus", type=int, default=1, help="GPUs on one host (default 1)")
    buy.add_argument("--duration", required=True, help="how long: 90s, 30m, 2h, 1h30m (or seconds)")
    buy.add_argument("--max-price", required=True, help="the most you pay per GPU-hour, in token units")
    buy.add_argument("--lifetime", default="1h", help="how long the bid stays in the book (default 1h)")
    job = buy.add_argument_group("the job (either --job, or --command with --file/--output/--env)")
    job.add_argument("--job", type=Path, help="a job spec document (JSON, docs/evidence.md 'Job specs')")
    job.add_argument(
        "--command", dest="job_command", help='the command to run, e.g. "python train.py --epochs 1"'
    )
    job.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        type=Path,
        help="an input file, placed at the same relative path in the job's directory (repeat it)",
    )
    job.add_argument(
        "--output", dest="outputs", action="append", default=[], help="an output path (repeat it)"
    )
    job.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the job's environment (repeat it)"
    )
    follow = buy.add_argument_group("following")
    follow.add_argument("--follow", action="store_true", help="show progress until settled, then the bill")
    follow.add_argument("--timeout", default="2h", help="give up following after this long (default 2h)")
    follow.add_argument("--outputs-dir", type=Path, help="with --follow: download the outputs here when done")

    status = command(
        "status", "show an order (by its 0x hash) or a lease (by its id): stage, history, figures"
    )
    status.add_argument("target", metavar="ORDER_HASH|LEASE_ID")

    receipts = command("receipts", "list a lease's receipts, each signature and hash-chain link checked")
    receipts.add_argument("lease_id", metavar="LEASE_ID", type=int)

    outputs = command("outputs", "download a finished lease's outputs, each checked against its signed hash")
    outputs.add_argument("lease_id", metavar="LEASE_ID", type=int)
    outputs.add_argument("dest", metavar="DEST", type=Path, help="folder to write them into")

    verify = command(
        "verify",
        "re-verify a lease locally: root on-chain, proofs, receipts, challenges, usage, payment",
        "Re-check everything the matcher published about a lease against the chain.\n"
        "Exit status 1 if any check fails. See docs/sdk.md 'What verify checks'.",
    )
    verify.add_argument("lease_id", metavar="LEASE_ID", type=int)

    cancel = command("cancel", "cancel an open bid (signed with your key)")
    cancel.add_argument("order_hash", metavar="ORDER_HASH")

    stop = command("stop", "ask the provider to stop a running lease early (you pay proven time only)")
    stop.add_argument("lease_id", metavar="LEASE_ID", type=int)

    withdraw = command(
        "withdraw",
        "take money out of the escrow: request, wait out the notice, complete",
        "Withdrawals wait a notice period (`gpuspot market` shows withdrawal_notice).\n\n"
        "examples:\n"
        "  gpuspot withdraw --request 20          # start the notice for 20 tokens\n"
        "  gpuspot withdraw --complete            # once the notice has passed\n"
        "  gpuspot withdraw --all --complete --wait   # everything available, waiting out the notice",
    )
    amount = withdraw.add_mutually_exclusive_group()
    amount.add_argument("--request", metavar="AMOUNT", help="request a withdrawal of AMOUNT token units")
    amount.add_argument("--all", action="store_true", help="request a withdrawal of everything available")
    amount.add_argument("--cancel", action="store_true", help="cancel the pending withdrawal")
    withdraw.add_argument("--complete", action="store_true", help="complete the pending withdrawal")
    withdraw.add_argument(
        "--wait", action="store_true", help="with --complete: wait until the notice has passed"
    )
    return parser


COMMANDS = (
    "market",
    "book",
    "balance",
    "faucet",
    "deposit",
    "buy",
    "status",
    "receipts",
    "outputs",
    "verify",
    "cancel",
    "stop",
    "withdraw",
)
