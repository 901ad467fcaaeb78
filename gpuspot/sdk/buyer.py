"""`Buyer`: a buyer's whole life in the market, from a deposit to a verified, settled lease.

Thin over three edges: the matcher's API (`MatcherApi`), the chain (`BuyerChain`), and the shared protocol
(`gpuspot.protocol`: bids, signatures, receipts, challenges, leaves), which it reuses and never re-implements.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from gpuspot.deployment import DEVNET_CHAIN_ID
from gpuspot.protocol import Bid, digest, keccak256, product_id, sign, to_json
from gpuspot.protocol.evidence import stop_message
from gpuspot.protocol.jobspec import JobSpec, JobSpecError, check_relative_path
from gpuspot.protocol.orders import cancellation_message
from gpuspot.sdk import verify
from gpuspot.sdk.api import MatcherApi
from gpuspot.sdk.chain import BuyerChain
from gpuspot.sdk.errors import (
    ChainError,
    FollowTimeoutError,
    InsufficientFundsError,
    MatcherApiError,
    SdkError,
    VerificationError,
    WithdrawalNotReadyError,
)
from gpuspot.sdk.models import (
    Book,
    Check,
    EscrowAccount,
    FollowResult,
    LeaseInfo,
    LeaseVerification,
    MarketInfo,
    OrderInfo,
    PendingWithdrawal,
    PlacedBid,
    Progress,
    Stage,
    VerifiedReceipt,
    derive_stage,
)
from gpuspot.sdk.settings import BuyerSettings
from gpuspot.sdk.units import format_time

__all__ = ["Buyer"]

log = logging.getLogger(__name__)

NONCE_BITS = 64
"""Nonces are drawn at random from [0, 2^64): no local state, no coordination between processes that share a
key, and a collision chance that is negligible (intake would refuse one with `nonce_used` anyway)."""

_STUCK = {
    Stage.OPEN: "no ask has matched it yet: compare its price with `gpuspot book <product>`",
    Stage.MATCHED: "the provider has not locked the lease on-chain yet",
    Stage.LOCKED: "the provider has sent no receipt yet",
    Stage.RUNNING: "the job is still running",
    Stage.FINISHED: "the final usage is not settled on-chain yet (the provider settles it)",
}


class Buyer:
    """One buyer's account on one market: the node at `chain.rpc_url`, the matcher at `api.base_url`."""

    def __init__(self, api: MatcherApi, chain: BuyerChain, account: LocalAccount) -> None:
        self.api = api
        self.chain = chain
        self.account = account
        self._market: MarketInfo | None = None
        self._lease_of_order: dict[str, int] = {}
        self._symbol: str | None = None

    # --- construction

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        matcher_url: str,
        account: LocalAccount,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> Buyer:
        """A buyer on the node at `rpc_url` and the matcher at `matcher_url`; nothing is contacted yet."""
        return cls(
            MatcherApi(matcher_url, timeout=timeout, transport=transport),
            BuyerChain(rpc_url, timeout=timeout),
            account,
        )

    @classmethod
    def from_settings(cls, settings: BuyerSettings, *, password: str | None = None) -> Buyer:
        """A buyer from its settings; the key is loaded for the node's chain id (a development key is refused
        off the devnet). `password` unlocks a keystore (else `keystore_password`)."""
        chain = BuyerChain(settings.rpc_url, timeout=settings.timeout)
        account = settings.account(chain.chain_id(), password=password)
        return cls(MatcherApi(settings.matcher_url, timeout=settings.timeout), chain, account)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Buyer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def address(self) -> str:
        return str(self.account.address)

    # --- the market

    @property
    def market(self) -> MarketInfo:
        """`GET /v1/market`, read once and checked against the node: same chain, an escrow with code."""
        if self._market is None:
            market = MarketInfo.from_json(self.api.market())
            node_chain = self.chain.chain_id()
            if node_chain != market.chain_id:
                raise SdkError(
                    f"the matcher at {self.api.base_url} serves chain {market.chain_id} but the node at "
                    f"{self.chain.rpc_url} is chain {node_chain}: point --rpc-url and --matcher-url at the "
                    "same market"
                )
            if market.domain.verifying_contract != market.escrow:
                raise SdkError(
                    f"the matcher's EIP-712 domain names {market.domain.verifying_contract} but its escrow "
                    f"is {market.escrow}: refusing to sign for it"
                )
            self.chain.bind(market.escrow, market.token)
            self._market = market
        return self._market

    def products(self) -> list[str]:
        return list(self.market.products)

    def book(self, product: str) -> Book:
        return Book.from_json(self.api.book(product))

    # --- money

    def token_balance(self) -> int:
        """The wallet's balance of the settlement token, base units."""
        token = self._token()
        return int(
            self.chain.call(
                "reading the token balance", lambda: token.functions.balanceOf(self.address).call()
            )
        )

    def token_symbol(self) -> str:
        """The settlement token's ERC20 symbol (e.g. tUSD), read once."""
        if self._symbol is None:
            token = self._token()
            self._symbol = str(
                self.chain.call("reading the token symbol", lambda: token.functions.symbol().call())
            )
        return self._symbol

    def escrow_account(self) -> EscrowAccount:
        escrow = self._escrow()
        available, reserved = self.chain.call(
            "reading the escrow account", lambda: escrow.functions.accountOf(self.address).call()
        )
        amount, ready_at = self.chain.call(
            "reading the pending withdrawal", lambda: escrow.functions.pendingWithdrawal(self.address).call()
        )
        withdrawal = None if int(amount) == 0 else PendingWithdrawal(int(amount), int(ready_at))
        return EscrowAccount(int(available), int(reserved), withdrawal)

    def mint_test_tokens(self, amount: int) -> str:
        """Mints `amount` of the devnet's test token to this wallet (chain 31337 only); the tx hash."""
        _positive(amount, "amount")
        if self.market.chain_id != DEVNET_CHAIN_ID:
            raise SdkError(
                f"test tokens exist only on the devnet (chain {DEVNET_CHAIN_ID}); this market is chain "
                f"{self.market.chain_id}: buy the settlement token {self.market.token} instead"
            )
        token = self._token()
        return self.chain.send(
            self.account, "minting test tokens", token.functions.mint(self.address, amount)
        ).tx_hash

    def deposit(self, amount: int) -> str:
        """Deposits `amount` into the escrow, approving it first when the allowance is short; the deposit's tx
        hash. Refuses (nothing sent) when the wallet holds less."""
        _positive(amount, "amount")
        token, escrow = self._token(), self._escrow()
        balance = self.token_balance()
        if balance < amount:
            faucet = (
                " (on the devnet: `gpuspot faucet AMOUNT`)" if self.market.chain_id == DEVNET_CHAIN_ID else ""
            )
            raise InsufficientFundsError(
                f"the wallet {self.address} holds {balance} base units of the token, less than the "
                f"{amount} to deposit: fund it first{faucet}",
                needed=amount,
                available=balance,
            )
        allowance = int(
            self.chain.call(
                "reading the allowance",
                lambda: token.functions.allowance(self.address, escrow.address).call(),
            )
        )
        if allowance < amount:
            self.chain.send(
                self.account, "approving the escrow", token.functions.approve(escrow.address, amount)
            )
        return self.chain.send(self.account, "depositing", escrow.functions.deposit(amount)).tx_hash

    def request_withdrawal(self, amount: int) -> str:
        """Starts the withdrawal notice for up to `amount` (replacing any pending request); the tx hash. While
        it is pending the matcher refuses this buyer's new bids and cancels the open ones."""
        _positive(amount, "amount")
        escrow = self._escrow()
        return self.chain.send(
            self.account, "requesting a withdrawal", escrow.functions.requestWithdrawal(amount)
        ).tx_hash

    def withdraw(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> int:
        """Completes the pending withdrawal once its notice has passed; the amount paid out (the lesser of the
        request and the available balance). Before the notice has passed: `WithdrawalNotReadyError`, or with
        `wait` a sleep until it has (reported through `on_wait`), then the withdrawal."""
        while True:
            try:
                return self._withdraw_now()
            except WithdrawalNotReadyError as exc:
                if not wait:
                    raise
                left = max(1, exc.ready_at - int(time.time()))
                if on_wait is not None:
                    on_wait(f"withdrawal ready at {format_time(exc.ready_at)}: waiting {left} s")
                time.sleep(min(left + 1, 30))
            except ChainError as exc:  # the chain's clock trails the wall clock by a block
                if not wait or "WithdrawalNotYetAvailable" not in str(exc):
                    raise
                if on_wait is not None:
                    on_wait("the chain's clock has not passed the notice yet: waiting for the next block")
                time.sleep(2)

    def _withdraw_now(self) -> int:
        pending = self.escrow_account().pending_withdrawal
        if pending is None:
            raise SdkError(
                "no withdrawal is pending: request one first (`gpuspot withdraw --request AMOUNT`)"
            )
        # a transaction sent now is mined no earlier than now, even when the chain's last block is older
        now = max(self.chain.latest_time(), int(time.time()))
        if now < pending.ready_at:
            raise WithdrawalNotReadyError(
                f"the withdrawal of {pending.amount} base units is ready at {format_time(pending.ready_at)} "
                f"(chain time), in {pending.ready_at - now} s: come back then, or wait with "
                "`gpuspot withdraw --complete --wait`",
                ready_at=pending.ready_at,
            )
        escrow = self._escrow()
        sent = self.chain.send(self.account, "withdrawing", escrow.functions.withdraw())
        return self.chain.withdrawn_amount(sent.receipt)

    def cancel_withdrawal(self) -> str:
        if self.escrow_account().pending_withdrawal is None:
            raise SdkError("no withdrawal is pending: there is nothing to cancel")
        escrow = self._escrow()
        return self.chain.send(
            self.account, "cancelling the withdrawal", escrow.functions.cancelWithdrawal()
        ).tx_hash

    # --- bids

    def place_bid(
        self,
        spec: JobSpec,
        *,
        product: str,
        gpus: int,
        duration: int,
        max_price_per_gpu_hour: int,
        lifetime: int = 3600,
        inputs: Mapping[str, bytes] | None = None,
        nonce: int | None = None,
    ) -> PlacedBid:
        """Signs and sends a bid for `spec`. Checked first, before anything is sent: the product, the inputs
        (each path of `inputs` must be an input of the spec with that content's hash), and the escrow's free
        balance against the bid's max cost. Then uploads the inputs and the job spec as blobs, signs the bid
        (a random nonce unless given) and submits it."""
        market = self.market
        if product not in market.products:
            raise SdkError(f"no product {product!r} in this market: use one of {', '.join(market.products)}")
        _positive(gpus, "gpus")
        _positive(duration, "duration")
        _positive(lifetime, "lifetime")
        blobs = _input_blobs(spec, inputs or {})
        bid = Bid(
            buyer=self.address,
            product=product_id(product),
            gpus=gpus,
            duration=duration,
            max_price_per_gpu_hour=max_price_per_gpu_hour,
            job_spec_hash=spec.hash(),
            nonce=secrets.randbits(NONCE_BITS) if nonce is None else nonce,
            expiry=int(time.time()) + lifetime,
        )
        self._check_funds(bid.reservation)
        for blob in blobs:
            self.api.put_blob(keccak256(blob), blob)
        self.api.put_blob(spec.hash(), spec.to_bytes())
        signature = sign(bid, self.account.key, market.domain)
        answer = self.api.submit_order({"type": "bid", "order": to_json(bid), "signature": signature.hex()})
        order_hash = "0x" + digest(bid, market.domain).hex()
        if str(answer.get("hash", "")).lower() != order_hash:
            raise SdkError(
                f"the matcher answered order hash {answer.get('hash')}, but the bid's is {order_hash}"
            )
        log.info("bid %s placed: %d x %s for %d s", order_hash, gpus, product, duration)
        return PlacedBid(order_hash=order_hash, bid=bid, job_spec_hash=spec.hash(), signature=signature)

    def _check_funds(self, max_cost: int) -> None:
        account = self.escrow_account()
        if account.pending_withdrawal is not None:
            raise SdkError(
                "a withdrawal is pending, and the matcher refuses bids meanwhile: cancel it first "
                "(`gpuspot withdraw --cancel`) or wait for it and withdraw"
            )
        reserved = int(self.api.account(self.address).get("reserved_by_matcher") or 0)
        free = account.available - reserved
        if free < max_cost:
            raise InsufficientFundsError(
                f"the bid's max cost is {max_cost} base units, but the escrow holds {account.available} "
                f"available, {reserved} of it backing open bids and unlocked leases: deposit at least "
                f"{max_cost - free} more (`gpuspot deposit`) or bid lower",
                needed=max_cost,
                available=free,
            )

    def order(self, order_hash: str) -> OrderInfo:
        body = self.api.order(order_hash)
        lease_id = self._find_lease(order_hash, body) if body.get("status") == "matched" else None
        return OrderInfo.from_json(body, lease_id)

    def _find_lease(self, order_hash: str, body: dict[str, Any]) -> int | None:
        key = order_hash.lower()
        if key in self._lease_of_order:
            return self._lease_of_order[key]
        signer = str(body.get("signer") or self.address)
        candidates = self.api.account(signer).get("leases") or []
        found = next((int(x["lease_id"]) for x in candidates if str(x["bid_hash"]).lower() == key), None)
        if found is None:
            batch_id = OrderInfo.from_json(body).matched_batch
            if batch_id is not None:
                leases = self.api.batch_inputs(batch_id).get("leases") or []
                found = next((int(x["lease_id"]) for x in leases if str(x["bid_hash"]).lower() == key), None)
        if found is not None:
            self._lease_of_order[key] = found
        return found

    def cancel(self, order_hash: str) -> OrderInfo:
        """Cancels an open order with the signer's `personal_sign` of the cancellation text."""
        text = cancellation_message(bytes.fromhex(order_hash.removeprefix("0x")))
        body = self.api.cancel_order(order_hash, self._personal_sign(text))
        return OrderInfo.from_json(body)

    # --- leases

    def lease(self, lease_id: int) -> LeaseInfo:
        return LeaseInfo.from_json(self.api.lease(lease_id))

    def stop(self, lease_id: int) -> None:
        """Asks the provider to stop the lease early (the buyer pays for proven time only)."""
        lease = self.lease(lease_id)
        if lease.buyer != self.address:
            raise SdkError(
                f"lease {lease_id} is {lease.buyer}'s, not this buyer's ({self.address}): only its buyer "
                "can stop it"
            )
        self.api.stop(lease_id, self._personal_sign(stop_message(lease_id, self.market.domain)))

    def follow(
        self,
        order_hash: str,
        *,
        until: Stage = Stage.SETTLED,
        timeout: float = 3600,
        poll: float = 1.0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> FollowResult:
        """Polls the order and its lease until `until` (or a later stage) or a terminal failure; calls
        `on_progress` whenever the stage or a figure changes. `FollowTimeoutError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Progress | None = None
        while True:
            body = self.api.order(order_hash)
            lease_id = self._find_lease(order_hash, body) if body.get("status") == "matched" else None
            lease_body = None if lease_id is None else self.api.lease(lease_id)
            stage = derive_stage(body, lease_body)
            passed = failed = 0
            if lease_body is not None and stage >= Stage.RUNNING:
                outcomes = [c.get("outcome") for c in self.api.challenges(lease_id or 0)]
                passed = sum(1 for o in outcomes if o == "passed")
                failed = sum(1 for o in outcomes if o not in (None, "passed"))
            lease = None if lease_body is None else LeaseInfo.from_json(lease_body)
            progress = Progress(
                stage=stage,
                order_hash=order_hash,
                lease_id=lease_id,
                receipts=0 if lease is None else lease.evidence.receipts,
                challenges_passed=passed,
                challenges_failed=failed,
                proven_gpu_seconds=0 if lease is None else lease.evidence.proven_gpu_seconds,
            )
            if progress != last and on_progress is not None:
                on_progress(progress)
            last = progress
            if stage.failed or stage >= until:
                return FollowResult(stage, OrderInfo.from_json(body, lease_id), lease)
            if time.monotonic() >= deadline:
                raise FollowTimeoutError(
                    f"order {order_hash} is still {stage.label} after {timeout:.0f} s: "
                    f"{_STUCK.get(stage, 'no progress')}",
                    stage=stage,
                )
            time.sleep(poll)

    def receipts(self, lease_id: int) -> list[VerifiedReceipt]:
        """The lease's receipts, each signature and hash-chain link checked locally."""
        lease = self.lease(lease_id)
        return verify.verify_receipts(
            self.api.receipts(lease_id), lease_id=lease_id, provider=lease.provider, domain=self.market.domain
        )

    def outputs(self, lease_id: int, dest: Path) -> list[Path]:
        """Downloads the outputs the final receipt lists into `dest`, each checked against the hash the
        provider signed; the paths written. Outputs the matcher does not hold (over its blob limit) are named
        in an `SdkError` after the others are written."""
        receipts = self.receipts(lease_id)
        if not receipts or not receipts[-1].job_state.terminal:
            raise SdkError(f"lease {lease_id}'s job has not ended: outputs come with its final receipt")
        final = receipts[-1]
        listed = dict((final.outputs or {}).get("outputs") or {})
        root = Path(dest).resolve()
        written: list[Path] = []
        missing: list[str] = []
        for name, hash_text in sorted(listed.items()):
            try:
                check_relative_path(name, "output path")
            except JobSpecError as exc:
                raise VerificationError(f"the final receipt lists an unsafe output path: {exc}") from None
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                raise VerificationError(f"output {name!r} would be written outside {root}")
            expected = bytes.fromhex(str(hash_text).removeprefix("0x"))
            try:
                data = self.api.get_blob(expected)
            except MatcherApiError as exc:
                if exc.code == "not_found":
                    missing.append(name)
                    continue
                raise
            if keccak256(data) != expected:
                raise VerificationError(
                    f"output {name!r}: the matcher served bytes hashing to 0x{keccak256(data).hex()}, the "
                    f"provider signed {hash_text}"
                )
            _write_atomically(target, data)
            written.append(target)
        if missing:
            raise SdkError(
                f"wrote {len(written)} output(s) under {root}; the matcher holds no blob for {missing} "
                "(larger than its blob limit?): their hashes are in the final receipt"
            )
        return written

    def verify_lease(self, lease_id: int) -> LeaseVerification:
        """Re-checks locally what the matcher published about the lease (docs/sdk.md, "What verify
        checks")."""
        market = self.market
        body = self.api.lease(lease_id)
        lease = LeaseInfo.from_json(body)
        checks: list[Check] = []
        root, posted_at = self.chain.batch_root(lease.batch_id)
        checks += verify.check_lease_leaf(lease, body.get("lock") or {}, market.domain, root, posted_at)
        bid_digest = bytes.fromhex(lease.bid_hash.removeprefix("0x"))
        if lease.locked and not lease.closed:
            leaf = self.chain.locked_leaf(bid_digest)
            lock = body.get("lock") or {}
            try:
                bid, _ = verify.bid_from_lock(lock)
                expected = verify.lease_leaf_hash(bid, market.domain, lease)
                checks.append(
                    Check("locked leaf", leaf == expected, f"the escrow holds 0x{leaf.hex()} for the bid")
                )
            except (ValueError, KeyError, TypeError) as exc:
                checks.append(Check("locked leaf", False, str(exc)))
        try:
            receipts = self.receipts(lease_id)
            checks.append(
                Check(
                    "receipts",
                    True,
                    f"{len(receipts)} receipt(s) signed by {lease.provider}, one unbroken hash chain",
                )
            )
        except VerificationError as exc:
            receipts = []
            checks.append(Check("receipts", False, str(exc)))
        bound = verify.check_usage_bound(lease, receipts)
        if bound is not None:
            checks.append(bound)
        opened_rows = int((market.evidence.get("challenge") or {}).get("opened_rows", 32))
        for challenge in self.api.challenges(lease_id):
            if challenge.get("outcome") is None:
                continue
            opening = (
                self.api.opening(lease_id, int(challenge["sequence"]))
                if challenge.get("has_opening")
                else None
            )
            checks.append(
                verify.check_challenge(
                    challenge,
                    opening,
                    provider=lease.provider,
                    domain=market.domain,
                    opened_rows=opened_rows,
                    chain_block_hash=self.chain.block_hash(int(challenge["block_number"])),
                )
            )
        for usage in lease.usage:
            if not usage.get("posted"):
                continue
            usage_batch = int(usage["usage_batch_id"])
            usage_root, _ = self.chain.batch_root(usage_batch)
            checks.append(
                verify.check_usage_leaf(
                    lease, usage, self.api.batch_inputs(usage_batch), usage_root, bid_digest
                )
            )
        if lease.closed and not lease.reclaimed:
            posted_block = self.api.batch(lease.batch_id).get("posted_block")
            events = self.chain.settled_events(lease_id, int(posted_block or 0))
            try:
                reservation = verify.bid_from_lock(body.get("lock") or {})[0].reservation
            except (ValueError, KeyError, TypeError, IndexError):
                reservation = lease.reserved or 0
            settlement = verify.check_settlement(lease, reservation, events)
            if settlement is not None:
                checks.append(settlement)
        return LeaseVerification(ok=all(c.ok for c in checks), checks=checks)

    # --- internals

    def _escrow(self) -> Any:
        _ = self.market
        return self.chain.escrow

    def _token(self) -> Any:
        _ = self.market
        return self.chain.token

    def _personal_sign(self, text: str) -> str:
        signed = self.account.sign_message(encode_defunct(text=text))
        return "0x" + bytes(signed.signature).hex()


def _positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SdkError(f"{name} must be a positive integer, got {value!r}")


def _input_blobs(spec: JobSpec, inputs: Mapping[str, bytes]) -> list[bytes]:
    """The bytes of `inputs` (path -> content), each checked against the spec's input of that path."""
    by_path = {item.path: item for item in spec.inputs}
    blobs = []
    for path, data in inputs.items():
        item = by_path.get(path)
        if item is None:
            raise SdkError(f"input {path!r} is not an input of the job spec (its inputs: {sorted(by_path)})")
        if keccak256(data) != item.keccak256:
            raise SdkError(
                f"input {path!r}: the bytes given hash to 0x{keccak256(data).hex()}, the job spec says "
                f"0x{item.keccak256.hex()}"
            )
        blobs.append(bytes(data))
    return blobs


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)
