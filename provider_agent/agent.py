"""The provider agent's rounds: offer free GPUs, take leases, run jobs, prove delivery, collect payment.

One thread runs `step()` every `poll_interval`; each phase reads the state file, acts, and writes what it
did before the next phase reads it, so a `kill -9` anywhere leaves a state the next `step()` continues from
(docs/provider.md walks through each crash point). The phases, in order:

1. resend receipts stored but not acknowledged;
2. asks: learn whether the live ask is still open at the matcher;
3. leases: record new leases of this host, each with the free devices it will run on;
4. prepare and lock: fetch each posted lease's job spec (refused if its hash is not the bid's), fetch its
   inputs, then lock all ready leases on-chain in one transaction;
5. start jobs of locked leases under the supervisor, pinned to their devices;
6. receipts: a signed, hash-chained receipt per lease every `receipt_interval`, and a final one when the job
   ends (its outputs uploaded as blobs first); the devices are free again at once;
7. challenges: answer proof-of-work challenges on the lease's GPU;
8. offer: one ask for exactly the free devices; a stale ask (wrong size, near expiry) is cancelled first,
   and a new one is posted only once the old is known closed, so no GPU is ever offered twice;
9. settle: usage leaves the matcher committed are presented on-chain in bulk, on a schedule that weighs gas
   against money owed, each leaf once.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from gpuspot.catalog import Product
from gpuspot.deployment import Deployment
from gpuspot.protocol import (
    Ask,
    Eip712Domain,
    cancellation_message,
    cost,
    evidence,
    jobspec,
    keccak256,
    order_hash,
    product_id,
    sign,
    to_json,
)
from gpuspot.protocol import challenge as pow
from provider_agent import jobs
from provider_agent.chain import CallReverted, ProviderChain
from provider_agent.client import MatcherApiError, MatcherClient, MatcherUnavailableError
from provider_agent.host import Device, Host, host_id
from provider_agent.pricing import PricingInputs, PricingPolicy
from provider_agent.state import AgentState, LeaseRow, LeaseStatus

__all__ = ["AgentOptions", "ProviderAgent", "call_args"]

log = logging.getLogger(__name__)

ZERO = b"\x00" * 32
SPEC_WAIT_FRACTION = 2
"""A posted lease whose job spec is not at the matcher yet is retried until half its lock window passed."""
OFFER_BACKOFF = 2
"""Seconds the agent waits before offering again after the matcher refused an ask."""
LOCK_MARGIN = 15
"""Seconds before the lock window closes after which the agent no longer tries to lock (too late)."""


@dataclass(frozen=True)
class AgentOptions:
    """The agent's knobs (from `AgentSettings`)."""

    floor_price: int
    max_duration: int = 86_400
    ask_lifetime: int = 900
    repost_margin: int = 120
    receipt_interval: int = 30
    settle_min_amount: int = 1_000_000
    settle_max_delay: int = 900
    stake: int | None = None
    max_blob_bytes: int = 16 * 2**20


@dataclass
class Counters:
    """Counted since start, for /metrics (the state file keeps the lasting figures)."""

    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, by: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + by


def call_args(function: str, call: dict[str, Any]) -> list[Any]:
    """The contract arguments of one call of the matcher's /v1/proofs answers (decimal strings, 0x hex)."""
    leases = [_lease_tuple(item) for item in call["leases"]]
    if function == "lockLeases":
        return [int(call["batch_id"]), leases, _proof(call["proof"])]
    usages = [(int(u["usedGpuSeconds"]), bool(u["isFinal"])) for u in call["usages"]]
    return [
        int(call["batch_id"]),
        int(call["usage_batch_id"]),
        leases,
        usages,
        _proof(call["lease_proof"]),
        _proof(call["usage_proof"]),
    ]


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _lease_tuple(item: dict[str, Any]) -> tuple[Any, ...]:
    buyer, product, gpus, duration, price, spec, nonce, expiry = item["bid"]
    bid = (
        buyer,
        _bytes(product),
        int(gpus),
        int(duration),
        int(price),
        _bytes(spec),
        int(nonce),
        int(expiry),
    )
    return (
        bid,
        _bytes(item["r"]),
        _bytes(item["vs"]),
        int(item["leaseId"]),
        item["provider"],
        int(item["pricePerGpuHour"]),
    )


def _proof(proof: dict[str, Any]) -> tuple[list[bytes], list[bool]]:
    return [_bytes(p) for p in proof["proof"]], [bool(f) for f in proof["proofFlags"]]


class ProviderAgent:
    """One host's agent. Build it with `provider_agent.__main__.build_agent` (or directly in tests), call
    `start()`, then `step()` in a loop (`run_forever`), and `drain()` on shutdown."""

    def __init__(
        self,
        *,
        account: LocalAccount,
        deployment: Deployment,
        host: Host,
        product: Product,
        chain: ProviderChain,
        client: MatcherClient,
        state: AgentState,
        policy: PricingPolicy,
        options: AgentOptions,
        work_root: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.deployment = deployment
        self.host = host
        self.product = product
        self.chain = chain
        self.client = client
        self.state = state
        self.policy = policy
        self.options = options
        self.work_root = work_root
        self.clock = clock
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.escrow)
        self.devices: dict[str, Device] = {d.uuid: d for d in host.devices()}
        self.host_id = host_id(tuple(self.devices.values()))
        self.counters = Counters()
        self.accepting = True
        self._handles: dict[int, jobs.JobHandle] = {}
        self._views: dict[int, dict[str, Any]] = {}
        self._answers: dict[tuple[int, int], pow.Answer] = {}
        self._owed_since: dict[tuple[int, int], int] = {}
        self._settle_retry_at: dict[int, int] = {}
        self._offer_after = 0
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return str(self.account.address)

    def now(self) -> int:
        return int(self.clock())

    # --- start

    def metadata(self) -> dict[str, Any]:
        """What the registry's metadata hash commits to: the host as discovered, labelled with its backend."""
        return {
            "host_id": "0x" + self.host_id.hex(),
            "product": self.product.name,
            "host": self.host.describe(),
        }

    def start(self) -> None:
        """Checks the chain, finishes transactions an earlier run left in flight, registers if needed."""
        self.chain.check_chain()
        self.chain.resume()
        stake = self.options.stake
        if stake is None:
            stake = int(self.chain.registry.functions.minStake().call())
        self.chain.ensure_registered(stake, keccak256(evidence.canonical_json(self.metadata())))
        for lease in self.state.leases(LeaseStatus.LOCKING):
            self._after_lock_attempt([lease])
        log.info(
            "agent %s: host 0x%s, %d device(s) (%s) sold as %s; state %s",
            self.address,
            self.host_id.hex(),
            len(self.devices),
            self.host.backend,
            self.product.name,
            self.state.path,
        )

    # --- the loop

    def step(self) -> None:
        """One round of every phase; a phase that fails (matcher or node unreachable) is logged and the
        round goes on: each phase picks up where the state file says it is."""
        with self._lock:
            for phase in (
                self._send_unsent_receipts,
                self._sync_asks,
                self._sync_leases,
                self._prepare_and_lock,
                self._start_jobs,
                self._receipts,
                self._challenges,
                self._offer,
                self._settle,
            ):
                try:
                    phase()
                except (MatcherUnavailableError, ConnectionError, OSError) as exc:
                    self.counters.add("phase_errors")
                    log.warning("%s: %s; retrying next round", phase.__name__.strip("_"), exc)
                except Exception:
                    self.counters.add("phase_errors")
                    log.exception("%s failed; retrying next round", phase.__name__.strip("_"))

    def run_forever(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.step()
            stop.wait(max(0.0, poll_interval - (time.monotonic() - started)))

    def drain(self, timeout: float, poll_interval: float = 1.0) -> None:
        """Graceful shutdown: stop offering (the live ask is cancelled), lock no new lease (a lease never
        locked costs its buyer nothing), let running jobs finish for up to `timeout` seconds while receipts
        and challenges go on, then stop the rest (their final receipts say `stopped`: the buyer pays only the
        proven time). Final usage is settled by the next run if it is not committed before this returns."""
        self.accepting = False
        deadline = time.monotonic() + timeout
        log.info("draining: no new asks or leases; waiting up to %.0f s for running jobs", timeout)
        with self._lock:
            self._cancel_live_asks("agent shutting down")
        while self.state.leases(LeaseStatus.RUNNING) and time.monotonic() < deadline:
            self.step()
            time.sleep(poll_interval)
        running = self.state.leases(LeaseStatus.RUNNING)
        for lease in running:
            log.warning("lease %d: still running at shutdown; stopping its job", lease.lease_id)
            self._handle(lease).stop()
        settle_until = time.monotonic() + max(5.0, 3 * poll_interval)
        while self.state.leases(LeaseStatus.RUNNING) and time.monotonic() < settle_until:
            self.step()
            time.sleep(poll_interval / 2)
        log.info("drained: %d lease(s) ended at shutdown", len(running))

    # --- 1. receipts left unsent

    def _send_unsent_receipts(self) -> None:
        for row in self.state.unsent_receipts():
            self._post_receipt(row.lease_id, row.sequence, row.body)

    def _post_receipt(self, lease_id: int, sequence: int, body: dict[str, Any]) -> bool:
        try:
            self.client.post_receipt(lease_id, body)
        except MatcherApiError as exc:
            if exc.code == "not_posted":  # the root is not posted yet: send it again later
                return False
            # Any other refusal is final: the receipt chain cannot go on past it, so no later receipt can
            # prove anything either. The lease's evidence ends (the buyer pays what was proven) and the job
            # stops, instead of running for nobody's money.
            if exc.code == "evidence_ended":
                log.warning("lease %d: the matcher closed its evidence (%s); stopping", lease_id, exc.message)
            else:
                log.error("lease %d: receipt %d refused (%s); ending the lease", lease_id, sequence, exc)
                self.counters.add("receipts_refused")
            self.state.mark_receipt_sent(lease_id, sequence)
            self._end_lease_job(lease_id)
            return False
        self.state.mark_receipt_sent(lease_id, sequence)
        self.counters.add("receipts_sent")
        return True

    # --- 2. asks

    def _sync_asks(self) -> None:
        for ask in self.state.live_asks():
            if ask.status == "signed":  # stored, perhaps never sent (a crash): sending again is idempotent
                self._submit_ask(ask.ask_hash, ask.submission)
                continue
            try:
                status = self.client.order(ask.ask_hash)["status"]
            except MatcherApiError as exc:
                status = "unknown" if exc.status == 404 else None
            if status is not None and status != "open":
                self.state.set_ask_status(ask.ask_hash, "closed", status)
                log.info("ask %s: %s", ask.ask_hash, status)

    def _submit_ask(self, ask_hash: str, submission: dict[str, Any]) -> None:
        try:
            self.client.submit_order(submission)
        except MatcherApiError as exc:
            self.state.set_ask_status(ask_hash, "closed", f"refused: {exc.code}")
            self.counters.add("asks_refused")
            self._offer_after = self.now() + OFFER_BACKOFF
            if exc.code == "provider_inactive" and self.chain.is_active():
                log.info("ask %s: the matcher has not seen the registration yet; retrying", ask_hash)
            else:
                log.error("ask %s refused by the matcher: %s", ask_hash, exc)
            return
        self.state.set_ask_status(ask_hash, "open")
        self.counters.add("asks_posted")

    def _cancel_live_asks(self, why: str) -> bool:
        """Cancels every live ask; True when none is left open (a cancelled or already closed ask)."""
        done = True
        for ask in self.state.live_asks():
            message = encode_defunct(text=cancellation_message(_bytes(ask.ask_hash)))
            signature = "0x" + bytes(Account.sign_message(message, self.account.key).signature).hex()
            try:
                self.client.cancel_order(ask.ask_hash, signature)
                self.state.set_ask_status(ask.ask_hash, "closed", f"cancelled: {why}")
                log.info("ask %s cancelled: %s", ask.ask_hash, why)
            except MatcherApiError as exc:
                if exc.code in ("not_open", "not_found"):
                    self.state.set_ask_status(ask.ask_hash, "closed", exc.code)
                else:
                    log.warning("ask %s: cancelling failed: %s", ask.ask_hash, exc)
                    done = False
            except MatcherUnavailableError as exc:
                log.warning("ask %s: cancelling failed: %s", ask.ask_hash, exc)
                done = False
        return done

    # --- 3. leases

    def _sync_leases(self) -> None:
        now = self.now()
        for view in self.client.provider_leases(self.address, active=True):
            if view.get("host_id") != "0x" + self.host_id.hex():
                continue  # another host of the same provider key
            lease_id = int(view["lease_id"])
            self._views[lease_id] = view
            known = self.state.lease(lease_id)
            if known is None:
                self._take_lease(view, now)
            elif known.start is None and view.get("start") is not None:
                self.state.update_lease(lease_id, now, start=int(view["start"]))

    def _take_lease(self, view: dict[str, Any], now: int) -> None:
        lease_id = int(view["lease_id"])
        free = self.free_devices()
        gpus = int(view["gpus"])
        status, note, devices = LeaseStatus.NEW, None, tuple(free[:gpus])
        if len(free) < gpus:
            status, note, devices = LeaseStatus.REJECTED, f"needs {gpus} GPUs, {len(free)} free", ()
        row = LeaseRow(
            lease_id=lease_id,
            batch_id=int(view["batch_id"]),
            buyer=view["buyer"],
            bid_hash=view["bid_hash"],
            gpus=gpus,
            duration=int(view["duration"]),
            price=int(view["price_per_gpu_hour"]),
            job_spec_hash=view["job_spec_hash"],
            devices=devices,
            status=status,
            start=None if view.get("start") is None else int(view["start"]),
            workdir=str(self.work_root / f"lease-{lease_id}"),
            job_state=None,
            note=note,
        )
        if self.state.add_lease(row, now):
            self.counters.add("leases_seen")
            log.info(
                "lease %d: %d GPU(s) for %d s at %d/GPU-h for %s on %s%s",
                lease_id,
                gpus,
                row.duration,
                row.price,
                row.buyer,
                list(devices),
                f" REJECTED: {note}" if note else "",
            )
            if status is LeaseStatus.REJECTED:
                self._reject(row, note or "")

    def free_devices(self) -> list[str]:
        held = self.state.held_devices()
        return [uuid for uuid in self.devices if uuid not in held]

    # --- 4. prepare and lock

    def _prepare_and_lock(self) -> None:
        if not self.accepting:
            return
        now = self.now()
        lock_window = self.deployment.parameters.lock_window
        ready: list[LeaseRow] = []
        for lease in self.state.leases(LeaseStatus.NEW):
            if lease.start is None:
                continue  # the root is not posted yet
            if now > lease.start + lock_window - LOCK_MARGIN:
                self._lapse(lease, "its lock window passed before it could be locked")
                continue
            if self._prepare(lease, now):
                ready.append(lease)
        if ready:
            self._lock_leases(ready)

    def _prepare(self, lease: LeaseRow, now: int) -> bool:
        """Fetches and checks the job spec and inputs; False if not (yet) ready. A spec whose hash is not the
        bid's, or a bad input, rejects the lease before it is locked: the buyer pays nothing."""
        assert lease.workdir is not None and lease.start is not None
        try:
            spec = jobs.fetch_spec(_bytes(lease.job_spec_hash), self.client.get_blob)
            jobs.prepare_workdir(spec, Path(lease.workdir), self.client.get_blob)
        except jobspec.JobSpecMismatchError as exc:
            self._reject(lease, f"job spec does not match the bid: {exc}")
            return False
        except (jobspec.JobSpecError, jobs.InputError) as exc:
            self._reject(lease, f"job cannot be prepared: {exc}")
            return False
        except MatcherApiError as exc:
            if (
                exc.status == 404
                and now < lease.start + self.deployment.parameters.lock_window // SPEC_WAIT_FRACTION
            ):
                log.info(
                    "lease %d: job spec %s not at the matcher yet; waiting",
                    lease.lease_id,
                    lease.job_spec_hash,
                )
                return False
            self._reject(lease, f"job spec {lease.job_spec_hash} unavailable: {exc}")
            return False
        return True

    def _lock_leases(self, leases: Sequence[LeaseRow]) -> None:
        ids = [lease.lease_id for lease in leases]
        now = self.now()
        for lease in leases:
            self.state.update_lease(lease.lease_id, now, status=LeaseStatus.LOCKING)
        try:
            proofs = self.client.lock_proofs(ids)
            calls = [("lockLeases", call_args("lockLeases", call)) for call in proofs["calls"]]
            if calls:
                self.chain.multicall("lock", calls, ids)
        except CallReverted as exc:
            log.warning("locking leases %s failed (%s); trying each alone", ids, exc)
            if len(leases) > 1:
                for lease in leases:
                    self._lock_leases([lease])
                return
        except (MatcherApiError, MatcherUnavailableError) as exc:
            log.warning("lock proofs for %s: %s", ids, exc)
        self._after_lock_attempt(leases)

    def _after_lock_attempt(self, leases: Sequence[LeaseRow]) -> None:
        """The chain decides: a lease whose bid is locked is LOCKED; else back to NEW (retried until its
        window closes), or LAPSED if the lock was refused."""
        now = self.now()
        for lease in leases:
            if self.chain.is_locked(_bytes(lease.bid_hash)):
                self.state.update_lease(lease.lease_id, now, status=LeaseStatus.LOCKED)
                self.counters.add("leases_locked")
                log.info("lease %d: locked", lease.lease_id)
            else:
                self.state.update_lease(lease.lease_id, now, status=LeaseStatus.NEW)

    def _lapse(self, lease: LeaseRow, why: str) -> None:
        self.state.update_lease(lease.lease_id, self.now(), status=LeaseStatus.LAPSED, note=why)
        self.counters.add("leases_lapsed")
        log.warning("lease %d: lapsed, %s; its GPUs are offered again", lease.lease_id, why)

    def _reject(self, lease: LeaseRow, why: str) -> None:
        """Refuses a lease before it is locked, with a `rejected` receipt (sequence 0) saying why."""
        self.state.update_lease(lease.lease_id, self.now(), status=LeaseStatus.REJECTED, note=why)
        self.counters.add("leases_rejected")
        log.warning("lease %d: rejected, %s", lease.lease_id, why)
        if self.state.last_receipt(lease.lease_id) is None:
            self._write_receipt(lease, evidence.JobState.REJECTED, {"outputs": {}, "error": why})

    # --- 5. jobs

    def _start_jobs(self) -> None:
        for lease in self.state.leases(LeaseStatus.LOCKED):
            assert lease.workdir is not None and lease.start is not None
            workdir = Path(lease.workdir)
            if (workdir / jobs.JOB_FILE).exists():  # started before a crash: adopt it
                self._handles[lease.lease_id] = jobs.JobHandle.attach(workdir)
            else:
                spec = jobspec.JobSpec.parse((workdir / jobs.SPEC_FILE).read_bytes())
                env = self.host.job_env([self.devices[uuid] for uuid in lease.devices])
                deadline = float(lease.start + lease.duration)
                self._handles[lease.lease_id] = jobs.start_job(lease.lease_id, spec, workdir, env, deadline)
            self.state.update_lease(lease.lease_id, self.now(), status=LeaseStatus.RUNNING)
            self.counters.add("jobs_started")
            log.info(
                "lease %d: job started on %s until %d",
                lease.lease_id,
                list(lease.devices),
                lease.start + lease.duration,
            )
            if self.state.last_receipt(lease.lease_id) is None:
                self._write_receipt(lease, evidence.JobState.RUNNING, None)

    def _handle(self, lease: LeaseRow) -> jobs.JobHandle:
        handle = self._handles.get(lease.lease_id)
        if handle is None:
            assert lease.workdir is not None
            handle = self._handles[lease.lease_id] = jobs.JobHandle.attach(Path(lease.workdir))
        return handle

    def _end_lease_job(self, lease_id: int) -> None:
        lease = self.state.lease(lease_id)
        if lease is not None and lease.status is LeaseStatus.RUNNING:
            self._handle(lease).stop()
            self.state.update_lease(lease_id, self.now(), status=LeaseStatus.ENDED, note="evidence ended")

    # --- 6. receipts

    def _receipts(self) -> None:
        now = self.now()
        for lease in self.state.leases(LeaseStatus.RUNNING):
            handle = self._handle(lease)
            view = self._views.get(lease.lease_id, {})
            if view.get("stop_requested"):
                handle.stop()
            status = handle.status()
            if not status.running:
                self._finish(lease, handle, status)
                continue
            last = self.state.last_receipt(lease.lease_id)
            if last is None or now - last.time >= self.options.receipt_interval:
                self._write_receipt(lease, evidence.JobState.RUNNING, handle.output_document(), final=False)

    def _finish(self, lease: LeaseRow, handle: jobs.JobHandle, status: jobs.JobStatus) -> None:
        """The job ended: upload its outputs, send the final receipt, free the devices."""
        state = evidence.JobState(status.receipt_state)
        document = handle.output_document()
        for name, path in handle.output_files().items():
            data = path.read_bytes()
            if len(data) > self.options.max_blob_bytes:
                log.warning(
                    "lease %d: output %s is %d bytes, over the blob limit; digest only",
                    lease.lease_id,
                    name,
                    len(data),
                )
                continue
            self.client.put_blob(keccak256(data), data)
        self._write_receipt(lease, state, document, final=True)
        self.state.update_lease(lease.lease_id, self.now(), status=LeaseStatus.ENDED, job_state=int(state))
        self.counters.add(f"jobs_{state.name.lower()}")
        log.info("lease %d: job %s (%s); its GPUs are free", lease.lease_id, state.name.lower(), status)

    def _write_receipt(
        self,
        lease: LeaseRow,
        state: evidence.JobState,
        document: dict[str, Any] | None,
        *,
        final: bool = True,
    ) -> None:
        """Signs the next receipt of the lease's chain, stores it, then sends it."""
        last = self.state.last_receipt(lease.lease_id)
        devices = [self.devices[uuid] for uuid in lease.devices]
        receipt = evidence.Receipt(
            lease_id=lease.lease_id,
            sequence=0 if last is None else last.sequence + 1,
            time=self.now(),
            job_state=state,
            telemetry=self.host.telemetry(devices),
            output_digest=evidence.output_digest(document),
            previous=ZERO if last is None else _bytes(last.receipt_hash),
            outputs=document if final else None,
        )
        signature = evidence.sign_receipt(receipt, self.account.key, self.domain)
        body = receipt.to_json(signature)
        self.state.add_receipt(
            lease.lease_id,
            receipt.sequence,
            "0x" + receipt.hash(self.domain).hex(),
            receipt.time,
            int(state),
            body,
        )
        self._post_receipt(lease.lease_id, receipt.sequence, body)

    # --- 7. challenges

    def _challenges(self) -> None:
        for item in self.client.challenges(self.address):
            lease = self.state.lease(int(item["lease_id"]))
            if lease is None or not lease.devices:
                continue
            self._answer(lease, item)

    def _answer(self, lease: LeaseRow, item: dict[str, Any]) -> None:
        key = (lease.lease_id, int(item["sequence"]))
        challenge = pow.Challenge(
            lease.lease_id,
            key[1],
            _bytes(item["block_hash"]),
            int(item["n"]),
            int(item["issued_at_ms"]),
            int(item["deadline_ms"]),
        )
        answer = self._answers.get(key)
        started = time.perf_counter()
        if answer is None:
            answer = self._answers[key] = pow.answer(
                challenge, self.host.matmul(self.devices[lease.devices[0]])
            )
        answer_ms = int((time.perf_counter() - started) * 1000)
        try:
            if item.get("state") == "committed" and item.get("rows") is not None:
                rows = [int(r) for r in item["rows"]]
            else:
                signature = evidence.sign_commitment(
                    self.domain, lease.lease_id, key[1], answer.root, self.account.key
                )
                rows = [
                    int(r)
                    for r in self.client.commit_challenge(
                        lease.lease_id, key[1], answer.root, signature.hex()
                    )["rows"]
                ]
            verdict = self.client.open_challenge(
                lease.lease_id, key[1], base64.b64encode(answer.open(rows).to_bytes()).decode()
            )
            outcome, reason = str(verdict["outcome"]), verdict.get("reason")
        except MatcherApiError as exc:
            outcome, reason = (exc.code if exc.code in ("late",) else "refused"), exc.message
        self._answers.pop(key, None)
        if self.state.record_challenge(lease.lease_id, key[1], outcome, reason, answer_ms, self.now()):
            self.counters.add("challenges_passed" if outcome == "passed" else "challenges_failed")
            level = logging.INFO if outcome == "passed" else logging.ERROR
            log.log(
                level,
                "lease %d: challenge %d (n=%d) %s in %d ms%s",
                lease.lease_id,
                key[1],
                challenge.n,
                outcome,
                answer_ms,
                f": {reason}" if reason and outcome != "passed" else "",
            )

    # --- 8. offer

    def _offer(self) -> None:
        now = self.now()
        if not self.accepting or now < self._offer_after:
            return
        free = self.free_devices()
        live = self.state.live_asks()
        if live:
            current = live[0]
            stale = current.gpus != len(free) or current.expiry - now < self.options.repost_margin
            why = (
                f"offer {len(free)} GPU(s) instead of {current.gpus}"
                if current.gpus != len(free)
                else "near expiry"
            )
            if stale and self._cancel_live_asks(why):
                live = self.state.live_asks()
            if live:
                return  # one ask at a time: the next is posted once this one is known closed
        if not free:
            return
        leased = len(self.devices) - len(free)
        recent = [lease.price for lease in self.state.leases()[-10:]][::-1]
        price = max(
            self.options.floor_price,
            self.policy(PricingInputs(self.options.floor_price, recent, leased, len(self.devices))),
        )
        ask = Ask(
            provider=self.address,
            product=product_id(self.product.name),
            host_id=self.host_id,
            gpus=len(free),
            max_duration=self.options.max_duration,
            min_price_per_gpu_hour=price,
            nonce=self.state.next_nonce(),
            expiry=now + self.options.ask_lifetime,
        )
        signature = sign(ask, self.account.key, self.domain)
        submission = {"type": "ask", "order": json.loads(to_json(ask)), "signature": signature.hex()}
        ask_hash = "0x" + order_hash(ask, self.domain).hex()
        self.state.add_ask(ask_hash, ask.nonce, ask.gpus, price, ask.expiry, submission, now)
        self._submit_ask(ask_hash, submission)
        log.info(
            "ask %s: %d GPU(s) of %s at %d/GPU-h until %d",
            ask_hash,
            ask.gpus,
            self.product.name,
            price,
            ask.expiry,
        )

    # --- 9. settle

    def _settle(self) -> None:
        now = self.now()
        due: list[tuple[LeaseRow, dict[str, Any]]] = []
        owed = 0
        oldest = now
        final = False
        for lease in self.state.leases(LeaseStatus.LOCKED, LeaseStatus.RUNNING, LeaseStatus.ENDED):
            view = self._views.get(lease.lease_id)
            if view is None:
                continue
            if view.get("status") in ("closed", "reclaimed"):  # settled to its end (by anyone)
                self.state.update_lease(lease.lease_id, now, status=LeaseStatus.SETTLED)
                continue
            leaf = _newest_posted_usage(view)
            if leaf is None or self._settle_retry_at.get(lease.lease_id, 0) > now:
                continue
            usage_batch, used, is_final = (
                int(leaf["usage_batch_id"]),
                int(leaf["used_gpu_seconds"]),
                bool(leaf["final"]),
            )
            if self.state.presented(lease.lease_id, usage_batch):
                continue  # never the same leaf twice
            settled = self.state.settled_gpu_seconds(lease.lease_id)
            if used <= settled and not is_final:
                continue
            due.append((lease, leaf))
            owed += cost(used, lease.price) - cost(settled, lease.price)
            since = self._owed_since.setdefault((lease.lease_id, usage_batch), now)
            oldest = min(oldest, since)
            final = final or is_final
        if not due:
            return
        if not (
            final or owed >= self.options.settle_min_amount or now - oldest >= self.options.settle_max_delay
        ):
            return
        self._settle_leases(due, owed)

    def _settle_leases(self, due: Sequence[tuple[LeaseRow, dict[str, Any]]], owed: int) -> None:
        ids = [lease.lease_id for lease, _ in due]
        expected = {lease.lease_id: int(leaf["usage_batch_id"]) for lease, leaf in due}
        proofs = self.client.settle_proofs(ids, with_signatures=False)
        calls: list[tuple[str, list[Any]]] = []
        presented: list[tuple[int, int, int, bool]] = []
        for call in proofs["calls"]:
            usage_batch = int(call["usage_batch_id"])
            items = [
                (int(item["leaseId"]), int(usage["usedGpuSeconds"]), bool(usage["isFinal"]))
                for item, usage in zip(call["leases"], call["usages"], strict=True)
            ]
            if any(expected.get(lease_id) != usage_batch for lease_id, _, _ in items):
                continue  # the matcher committed newer usage meanwhile: settle that next round
            calls.append(("settleLeases", call_args("settleLeases", call)))
            presented.extend((lease_id, usage_batch, used, final) for lease_id, used, final in items)
        if not calls:
            return
        lease_ids = [p[0] for p in presented]
        try:
            sent = self.chain.multicall("settle", calls, lease_ids, settlements=presented)
        except CallReverted as exc:
            log.warning("settling leases %s failed: %s; backing off", lease_ids, exc)
            for lease_id in lease_ids:
                self._settle_retry_at[lease_id] = self.now() + 30
            return
        if not sent.ok:
            for lease_id in lease_ids:
                self._settle_retry_at[lease_id] = self.now() + 30
            return
        self.counters.add("settlements", len(presented))
        now = self.now()
        for lease_id, usage_batch, used, is_final in presented:
            self._owed_since.pop((lease_id, usage_batch), None)
            self._settle_retry_at.pop(lease_id, None)
            log.info(
                "lease %d: settled %d GPU-s, paid %d%s",
                lease_id,
                used,
                sent.paid.get(lease_id, 0),
                " (final)" if is_final else "",
            )
            if is_final:
                self.state.update_lease(lease_id, now, status=LeaseStatus.SETTLED)
        log.info(
            "settled %d lease(s) in one transaction: %d owed, gas %d", len(presented), owed, sent.gas_used
        )


def _newest_posted_usage(view: dict[str, Any]) -> dict[str, Any] | None:
    posted = [u for u in view.get("usage") or () if u.get("posted")]
    return max(posted, key=lambda u: int(u["usage_batch_id"])) if posted else None
