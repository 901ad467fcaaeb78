"""`main()`: parse, load settings and key, run one command, print its result (text or one JSON document),
and turn every expected failure into one line and an exit status: 0 ok, 1 failed, 2 usage."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from pydantic import ValidationError

from gpuspot.cli.parser import build_parser
from gpuspot.protocol import keccak256
from gpuspot.protocol.jobspec import JobInput, JobSpec, JobSpecError
from gpuspot.sdk import (
    Buyer,
    BuyerSettings,
    FollowResult,
    LeaseInfo,
    MatcherApiError,
    OrderInfo,
    SdkError,
    Stage,
    derive_stage,
    format_duration,
    format_time,
    format_units,
    parse_duration,
    parse_units,
)
from gpuspot.settings import KeyError_

__all__ = ["UsageError", "main"]

READ_ONLY = frozenset({"market", "book", "status", "receipts", "outputs", "verify"})
"""Commands that sign nothing: they run without a key (with a throwaway address)."""


class UsageError(Exception):
    """A command line that cannot run as given (exit status 2)."""


@dataclass
class Output:
    """Where results go: text lines, or one JSON document, on stdout; progress on stderr."""

    json_mode: bool

    def result(self, document: dict[str, Any], lines: Sequence[str]) -> None:
        if self.json_mode:
            print(json.dumps(document, indent=2, sort_keys=True))
        else:
            for line in lines:
                print(line)

    def progress(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Money:
    """Amounts of the market's token, shown both ways."""

    def __init__(self, decimals: int, symbol: str) -> None:
        self.decimals = decimals
        self.symbol = symbol

    def text(self, amount: int) -> str:
        return f"{format_units(amount, self.decimals)} {self.symbol} ({amount} base units)"

    def json(self, amount: int | None) -> dict[str, str] | None:
        if amount is None:
            return None
        return {"base_units": str(amount), "tokens": format_units(amount, self.decimals)}

    def parse(self, text: str, what: str) -> int:
        try:
            amount = parse_units(text, self.decimals)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None
        if amount <= 0:
            raise UsageError(f"{what} must be more than 0")
        return amount


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    out = Output(bool(getattr(args, "json", False)))
    try:
        check = PRECHECKS.get(args.command)
        if check is not None:
            check(args)
    except UsageError as exc:
        return _fail(out, str(exc), 2)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = BuyerSettings.load(
            getattr(args, "config", None),
            rpc_url=getattr(args, "rpc_url", None),
            matcher_url=getattr(args, "matcher_url", None),
            key_file=getattr(args, "key_file", None),
            keystore=getattr(args, "keystore", None),
        )
    except (ValidationError, FileNotFoundError) as exc:
        return _fail(out, f"invalid settings: {exc}".replace("\n", " "), 2)
    try:
        with _buyer(settings, args.command) as buyer:
            return int(COMMANDS[args.command](buyer, args, out))
    except UsageError as exc:
        return _fail(out, str(exc), 2)
    except MatcherApiError as exc:
        return _fail(out, exc.message, 1, code=exc.code, kind=type(exc).__name__, details=exc.details)
    except (SdkError, KeyError_) as exc:
        return _fail(out, str(exc), 1, kind=type(exc).__name__)
    except KeyboardInterrupt:
        return _fail(out, "interrupted", 1)


def _fail(
    out: Output, message: str, status: int, *, code: str | None = None, kind: str = "", details: Any = None
) -> int:
    prefix = f"gpuspot: error [{code}]" if code else "gpuspot: error"
    print(f"{prefix}: {message}", file=sys.stderr)
    if out.json_mode:
        error = {"message": message, "code": code, "type": kind or None, "details": details}
        print(json.dumps({"error": error}, indent=2, sort_keys=True, default=str))
    return status


def _buyer(settings: BuyerSettings, command: str) -> Buyer:
    if (
        command in READ_ONLY
        and settings.key is None
        and settings.key_file is None
        and settings.keystore is None
    ):
        return Buyer.connect(
            settings.rpc_url, settings.matcher_url, Account.create(), timeout=settings.timeout
        )
    password = None
    if settings.keystore is not None and settings.keystore_password is None:
        if not sys.stdin.isatty():
            raise KeyError_(
                f"the keystore {settings.keystore} needs its password: set GPUSPOT_BUYER_KEYSTORE_PASSWORD"
            )
        password = getpass.getpass(f"password of {settings.keystore}: ")
    return Buyer.from_settings(settings, password=password)


def _money(buyer: Buyer) -> Money:
    return Money(buyer.market.token_decimals, buyer.token_symbol())


# --- commands


def cmd_market(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    m = buyer.market
    money = _money(buyer)
    p = m.parameters
    document = {
        "chain_id": m.chain_id,
        "escrow": m.escrow,
        "registry": m.registry,
        "token": {"address": m.token, "decimals": m.token_decimals, "symbol": money.symbol},
        "products": list(m.products),
        "batch_interval": m.batch_interval,
        "pricing_rule": m.pricing_rule,
        "min_order_lifetime": m.min_order_lifetime,
        "parameters": p.model_dump(),
        "evidence": m.evidence,
    }
    lines = [
        f"chain {m.chain_id}, escrow {m.escrow}",
        f"token {money.symbol} at {m.token} ({m.token_decimals} decimals)",
        f"products: {', '.join(m.products)}",
        f"batches every {m.batch_interval:g} s, pricing rule {m.pricing_rule}",
        f"withdrawal notice {format_duration(p.withdrawal_notice)}, lock window "
        f"{format_duration(p.lock_window)}, settle window {format_duration(p.settle_window)}",
        f"provider minimum stake {money.text(p.min_stake)}",
    ]
    out.result(document, lines)
    return 0


def cmd_book(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    book = buyer.book(args.product)
    money = _money(buyer)

    def level(x: Any) -> dict[str, Any]:
        return {"price_per_gpu_hour": money.json(x.price_per_gpu_hour), "gpus": x.gpus, "orders": x.orders}

    lines = [f"{book.product}: {len(book.bids)} bid level(s), {len(book.asks)} ask level(s) (per GPU-hour)"]
    lines += [
        f"  ask {money.text(a.price_per_gpu_hour)}: {a.gpus} GPU(s), {a.orders} order(s)"
        for a in reversed(book.asks)
    ]
    lines += [
        f"  bid {money.text(b.price_per_gpu_hour)}: {b.gpus} GPU(s), {b.orders} order(s)" for b in book.bids
    ]
    out.result(
        {
            "product": book.product,
            "bids": [level(b) for b in book.bids],
            "asks": [level(a) for a in book.asks],
        },
        lines,
    )
    return 0


def cmd_balance(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    wallet = buyer.token_balance()
    account = buyer.escrow_account()
    pending = account.pending_withdrawal
    document = {
        "address": buyer.address,
        "wallet": money.json(wallet),
        "escrow": {"available": money.json(account.available), "reserved": money.json(account.reserved)},
        "pending_withdrawal": None
        if pending is None
        else {"amount": money.json(pending.amount), "ready_at": pending.ready_at},
    }
    lines = [
        f"address {buyer.address}",
        f"wallet:            {money.text(wallet)}",
        f"escrow available:  {money.text(account.available)}",
        f"escrow reserved:   {money.text(account.reserved)}",
    ]
    if pending is not None:
        lines.append(
            f"withdrawal pending: {money.text(pending.amount)}, ready at {format_time(pending.ready_at)}"
        )
    out.result(document, lines)
    return 0


def cmd_faucet(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    amount = money.parse(args.amount, "AMOUNT")
    tx = buyer.mint_test_tokens(amount)
    out.result(
        {"minted": money.json(amount), "tx": tx}, [f"minted {money.text(amount)} to {buyer.address} ({tx})"]
    )
    return 0


def cmd_deposit(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    amount = money.parse(args.amount, "AMOUNT")
    tx = buyer.deposit(amount)
    available = buyer.escrow_account().available
    out.result(
        {"deposited": money.json(amount), "tx": tx, "available": money.json(available)},
        [f"deposited {money.text(amount)} ({tx})", f"escrow available: {money.text(available)}"],
    )
    return 0


def _job(args: argparse.Namespace) -> tuple[JobSpec, dict[str, bytes]]:
    """The job spec and the input bytes to upload, from --job or --command/--file/--output/--env."""
    if (args.job is None) == (args.job_command is None):
        raise UsageError('give the job either as --job FILE or as --command "..." (exactly one of them)')
    files: dict[str, bytes] = {}
    for path in args.files:
        name = path.as_posix() if not path.is_absolute() and ".." not in path.parts else path.name
        files[name] = _read(path)
    if args.job is not None:
        if args.outputs or args.env:
            raise UsageError("--output and --env go with --command; a --job document lists its own")
        try:
            spec = JobSpec.parse(_read(args.job))
        except JobSpecError as exc:
            raise UsageError(f"{args.job}: {exc}") from None
        for item in spec.inputs:  # inputs next to the job file are uploaded too
            local = args.job.parent / item.path
            if item.url is None and item.path not in files and local.is_file():
                files[item.path] = _read(local)
        unknown = sorted(set(files) - {i.path for i in spec.inputs})
        if unknown:
            raise UsageError(
                f"--file {unknown[0]} is not an input of {args.job} "
                f"(its inputs: {[i.path for i in spec.inputs]})"
            )
        return spec, files
    env: dict[str, str] = {}
    for pair in args.env:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--env {pair!r}: write NAME=VALUE")
        env[name] = value
    try:
        spec = JobSpec.build(
            command=shlex.split(args.job_command),
            env=env,
            inputs=[JobInput(path=name, keccak256=keccak256(data)) for name, data in files.items()],
            outputs=args.outputs,
        )
    except (JobSpecError, ValueError) as exc:
        raise UsageError(f"the job: {exc}") from None
    return spec, files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _duration(text: str, what: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def check_buy(args: argparse.Namespace) -> None:
    """Everything about `buy` that needs no market: the job, durations, GPUs, the price's form."""
    args.spec, args.files = _job(args)
    args.duration_s = _duration(args.duration, "--duration")
    args.lifetime_s = _duration(args.lifetime, "--lifetime")
    args.timeout_s = _duration(args.timeout, "--timeout")
    if args.gpus <= 0:
        raise UsageError("--gpus must be at least 1")
    _amount_form(args.max_price, "--max-price")
    if args.outputs_dir is not None and not args.follow:
        raise UsageError("--outputs-dir goes with --follow")


def check_withdraw(args: argparse.Namespace) -> None:
    if not (args.request or args.all or args.cancel or args.complete):
        raise UsageError("say what to do: --request AMOUNT, --all, --cancel or --complete (see --help)")
    if args.wait and not args.complete:
        raise UsageError("--wait goes with --complete")
    if args.request:
        _amount_form(args.request, "--request")


def check_amount(args: argparse.Namespace) -> None:
    _amount_form(args.amount, "AMOUNT")


def check_status(args: argparse.Namespace) -> None:
    target = str(args.target)
    if target.startswith("0x"):
        if len(target) != 66 or not all(c in "0123456789abcdefABCDEF" for c in target[2:]):
            raise UsageError(f"{target!r} is not an order hash (0x and 64 hex digits)")
    elif not target.isdigit():
        raise UsageError(f"{target!r} is neither an order hash (0x...) nor a lease id (a number)")


def _amount_form(text: str, what: str) -> None:
    """The amount is a plain decimal (the token's decimals are checked once the market is read)."""
    try:
        parse_units(text, 77)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def cmd_buy(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    price = money.parse(args.max_price, "--max-price")
    timeout = args.timeout_s
    placed = buyer.place_bid(
        args.spec,
        product=args.product,
        gpus=args.gpus,
        duration=args.duration_s,
        max_price_per_gpu_hour=price,
        lifetime=args.lifetime_s,
        inputs=args.files,
    )
    bid = placed.bid
    document: dict[str, Any] = {
        "order_hash": placed.order_hash,
        "product": args.product,
        "gpus": bid.gpus,
        "duration": bid.duration,
        "max_price_per_gpu_hour": money.json(bid.max_price_per_gpu_hour),
        "max_cost": money.json(placed.max_cost),
        "job_spec_hash": "0x" + placed.job_spec_hash.hex(),
        "nonce": str(bid.nonce),
        "expiry": bid.expiry,
    }
    lines = [
        f"bid {placed.order_hash} placed: {bid.gpus} x {args.product} for {format_duration(bid.duration)} "
        f"at most {money.text(price)} per GPU-hour",
        f"max cost {money.text(placed.max_cost)}; job spec 0x{placed.job_spec_hash.hex()}",
    ]
    if not args.follow:
        lines.append(f"follow it with: gpuspot status {placed.order_hash}")
        out.result(document, lines)
        return 0
    if not out.json_mode:
        for line in lines:
            print(line)
        lines = []
    result = buyer.follow(placed.order_hash, timeout=timeout, on_progress=lambda p: out.progress(str(p)))
    document |= _follow_document(result, money)
    lines += _follow_lines(result, money)
    status = 0 if result.stage is Stage.SETTLED else 1
    if result.lease is not None and args.outputs_dir is not None and result.stage is Stage.SETTLED:
        written = buyer.outputs(result.lease.lease_id, args.outputs_dir)
        document["outputs"] = [str(p) for p in written]
        lines += [f"output written: {p}" for p in written]
    out.result(document, lines)
    return status


def _follow_document(result: FollowResult, money: Money) -> dict[str, Any]:
    lease = result.lease
    document: dict[str, Any] = {
        "stage": result.stage.label,
        "lease_id": None if lease is None else lease.lease_id,
    }
    if lease is not None:
        document["bill"] = {
            "used_gpu_seconds": lease.used_gpu_seconds,
            "price_per_gpu_hour": money.json(lease.price_per_gpu_hour),
            "reserved": money.json(lease.reserved),
            "paid": money.json(lease.paid),
            "refunded": money.json(lease.refunded),
        }
    return document


def _follow_lines(result: FollowResult, money: Money) -> list[str]:
    lease = result.lease
    lines = [f"stage: {result.stage.label}"]
    if result.order.explanation and lease is None:
        lines.append(f"why: {result.order.explanation}")
    if lease is not None:
        lines += [
            f"lease {lease.lease_id}: {lease.gpus} x {lease.product_name} from {lease.provider} at "
            f"{money.text(lease.price_per_gpu_hour)} per GPU-hour",
            f"used {lease.used_gpu_seconds} GPU-seconds; paid {money.text(lease.paid)}, refunded "
            f"{money.text(lease.refunded)}",
        ]
    return lines


def cmd_status(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    target = str(args.target)
    if target.startswith("0x"):
        order = buyer.order(target)
        lease_body = None if order.lease_id is None else buyer.api.lease(order.lease_id)
        stage = derive_stage(order.raw, lease_body)
        lease = None if lease_body is None else LeaseInfo.from_json(lease_body)
        document = {"order": _order_document(order, money), "stage": stage.label}
        lines = [f"order {order.order_hash}: {order.status} (stage {stage.label})"]
        lines += [
            f"  {h.get('status')} at {format_time(int(h['at']))}"
            + (f" ({h['reason']})" if h.get("reason") else "")
            for h in order.history
            if h.get("at") is not None
        ]
        if order.explanation:
            lines.append(f"  last batch: {order.explanation}")
    else:
        lease = buyer.lease(int(target))
        stage = derive_stage({"status": "matched"}, lease.raw)
        document = {"stage": stage.label}
        lines = []
    if lease is not None:
        document["lease"] = _lease_document(lease, money)
        e = lease.evidence
        lines += [
            f"lease {lease.lease_id} (stage {stage.label}, {lease.status}): {lease.gpus} x "
            f"{lease.product_name} for {format_duration(lease.duration)} at "
            f"{money.text(lease.price_per_gpu_hour)} per GPU-hour",
            f"  provider {lease.provider}; started {format_time(lease.start) if lease.start else 'not yet'}",
            f"  evidence {e.state}{f' ({e.end_reason})' if e.end_reason else ''}: {e.receipts} receipt(s), "
            f"{e.proven_gpu_seconds} GPU-seconds proven",
            f"  on-chain: locked {lease.locked}, paid {money.text(lease.paid)}, "
            f"refunded {money.text(lease.refunded)}, closed {lease.closed}",
        ]
    out.result(document, lines)
    return 0


def _order_document(order: OrderInfo, money: Money) -> dict[str, Any]:
    return {
        "order_hash": order.order_hash,
        "status": order.status,
        "product": order.product_name,
        "gpus": order.gpus,
        "duration": order.duration,
        "max_price_per_gpu_hour": money.json(order.price_per_gpu_hour),
        "max_cost": money.json(order.max_cost),
        "expiry": order.expiry,
        "history": list(order.history),
        "explanation": order.explanation,
        "lease_id": order.lease_id,
    }


def _lease_document(lease: LeaseInfo, money: Money) -> dict[str, Any]:
    e = lease.evidence
    return {
        "lease_id": lease.lease_id,
        "batch_id": lease.batch_id,
        "status": lease.status,
        "provider": lease.provider,
        "buyer": lease.buyer,
        "product": lease.product_name,
        "gpus": lease.gpus,
        "duration": lease.duration,
        "price_per_gpu_hour": money.json(lease.price_per_gpu_hour),
        "start": lease.start,
        "locked": lease.locked,
        "reserved": money.json(lease.reserved),
        "paid": money.json(lease.paid),
        "refunded": money.json(lease.refunded),
        "closed": lease.closed,
        "used_gpu_seconds": lease.used_gpu_seconds,
        "evidence": {
            "state": e.state,
            "end_reason": e.end_reason,
            "receipts": e.receipts,
            "proven_gpu_seconds": e.proven_gpu_seconds,
        },
    }


def cmd_receipts(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    receipts = buyer.receipts(args.lease_id)
    document = {
        "lease_id": args.lease_id,
        "verified": True,
        "receipts": [
            {
                "sequence": r.sequence,
                "time": r.time,
                "job_state": r.job_state.name.lower(),
                "hash": "0x" + r.hash.hex(),
                "signer": r.signer,
                "outputs": r.outputs,
            }
            for r in receipts
        ],
    }
    lines = [f"lease {args.lease_id}: {len(receipts)} receipt(s), signatures and hash chain verified"]
    lines += [
        f"  #{r.sequence} {format_time(r.time)} {r.job_state.name.lower():<9} 0x{r.hash.hex()}"
        for r in receipts
    ]
    out.result(document, lines)
    return 0


def cmd_outputs(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    written = buyer.outputs(args.lease_id, args.dest)
    out.result(
        {"lease_id": args.lease_id, "outputs": [str(p) for p in written]},
        [f"wrote {len(written)} output(s), each matching its signed hash:"] + [f"  {p}" for p in written],
    )
    return 0


def cmd_verify(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    result = buyer.verify_lease(args.lease_id)
    held = sum(1 for c in result.checks if c.ok)
    document = {
        "lease_id": args.lease_id,
        "ok": result.ok,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
    }
    lines = [
        f"lease {args.lease_id}: {held} of {len(result.checks)} checks hold{'' if result.ok else ' - FAILED'}"
    ]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in result.checks]
    out.result(document, lines)
    return 0 if result.ok else 1


def cmd_cancel(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    order = buyer.cancel(args.order_hash)
    out.result(
        {"order_hash": order.order_hash, "status": order.status},
        [f"order {order.order_hash}: {order.status}"],
    )
    return 0


def cmd_stop(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    buyer.stop(args.lease_id)
    out.result(
        {"lease_id": args.lease_id, "stop_requested": True},
        [f"stop requested for lease {args.lease_id}: the provider ends the job; you pay for proven time"],
    )
    return 0


def cmd_withdraw(buyer: Buyer, args: argparse.Namespace, out: Output) -> int:
    money = _money(buyer)
    document: dict[str, Any] = {}
    lines: list[str] = []
    if args.cancel:
        tx = buyer.cancel_withdrawal()
        document["cancelled"] = tx
        lines.append(f"withdrawal cancelled ({tx})")
    if args.request or args.all:
        amount = money.parse(args.request, "--request") if args.request else buyer.escrow_account().available
        if amount <= 0:
            raise SdkError("nothing is available in the escrow to withdraw")
        tx = buyer.request_withdrawal(amount)
        pending = buyer.escrow_account().pending_withdrawal
        document["requested"] = {
            "amount": money.json(amount),
            "tx": tx,
            "ready_at": pending and pending.ready_at,
        }
        lines.append(
            f"withdrawal of {money.text(amount)} requested ({tx})"
            + (f"; ready at {format_time(pending.ready_at)}" if pending else "")
        )
    if args.complete:
        withdrawn = buyer.withdraw(wait=args.wait, on_wait=out.progress)
        document["withdrawn"] = money.json(withdrawn)
        lines.append(f"withdrew {money.text(withdrawn)} to {buyer.address}")
    out.result(document, lines)
    return 0


COMMANDS: dict[str, Callable[[Buyer, argparse.Namespace, Output], int]] = {
    "market": cmd_market,
    "book": cmd_book,
    "balance": cmd_balance,
    "faucet": cmd_faucet,
    "deposit": cmd_deposit,
    "buy": cmd_buy,
    "status": cmd_status,
    "receipts": cmd_receipts,
    "outputs": cmd_outputs,
    "verify": cmd_verify,
    "cancel": cmd_cancel,
    "stop": cmd_stop,
    "withdraw": cmd_withdraw,
}

PRECHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "buy": check_buy,
    "withdraw": check_withdraw,
    "faucet": check_amount,
    "deposit": check_amount,
    "status": check_status,
}
"""Usage checks that need neither the matcher nor the node: a bad command line fails fast, with status 2."""
