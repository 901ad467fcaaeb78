"""`EvidenceVerifier`: the matcher's side of delivery evidence (docs/evidence.md), wired to the store.

It checks and keeps what the provider agent sends (blobs, receipts, challenge commitments and openings) and
the buyer's stop requests; issues proof-of-work challenges to running leases and expires unanswered ones;
and, for each batch, decides the usage leaves from the proven-time rule (`matcher.evidence.proven`). Every
refusal is an `EvidenceRejectedError` with the API's code and changes nothing, except a late answer, whose
`late` verdict is recorded. The pure checks live in `gpuspot.protocol` (`evidence`, `challenge`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gpuspot.protocol import Eip712Domain, SettlementLeaf, keccak256
from gpuspot.protocol.challenge import (
    DEFAULT_N,
    DEFAULT_OPENED_ROWS,
    DEFAULT_ROUNDS,
    MAX_N,
    MIN_N,
    MalformedAnswerError,
    Outcome,
    RowOpening,
    draw_audit,
    verify_opening,
)
from gpuspot.protocol.errors import InvalidSignatureError
from gpuspot.protocol.evidence import (
    EvidenceError,
    Receipt,
    canonical_json,
    recover_commitment_signer,
    recover_receipt_signer,
    stop_message,
)
from gpuspot.protocol.orders import Signature
from matcher.errors import EvidenceRejectedError, NotFoundError
from matcher.evidence.proven import EndReason, ProvenTime, proven_time
from matcher.personal_sign import recover_personal_signer
from matcher.store import (
    ChallengeRecord,
    EvidenceEnd,
    EvidenceRecord,
    LeaseNotFoundError,
    Page,
    ReceiptRecord,
    Store,
)

__all__ = [
    "LAPSE_MARGIN",
    "MAX_DOCUMENT_BYTES",
    "EvidencePolicy",
    "EvidenceVerifier",
    "LeaseEvidence",
    "ReceiptOutcome",
]

log = logging.getLogger(__name__)

ZERO_WORD = b"\x00" * 32
MAX_DOCUMENT_BYTES = 64 * 1024
"""The largest telemetry or outputs document a receipt may carry (canonical JSON bytes)."""
LAPSE_MARGIN = 120
"""Seconds past the lock window before an unlocked lease lapses: the chain mirror trails the head by
`confirmations` blocks, and a lock mined in the window's last block must be seen before the matcher gives up
on the lease for good."""


@dataclass(frozen=True, slots=True)
class EvidencePolicy:
    """The verifier's parameters (docs/matcher.md, settings): seconds unless the name says otherwise."""

    receipt_interval: int = 30
    evidence_timeout: int = 90
    clock_skew: int = 30
    challenge_interval: int = 300
    challenge_n: int = DEFAULT_N
    challenge_deadline_ms: int = 10_000
    opening_timeout: int = 60
    usage_interval: int = 300
    max_blob_bytes: int = 16 * 1024 * 1024
    opened_rows: int = DEFAULT_OPENED_ROWS
    rounds: int = DEFAULT_ROUNDS

    def __post_init__(self) -> None:
        n = self.challenge_n
        if n % 16 or not MIN_N <= n <= MAX_N:
            raise ValueError(f"challenge_n must be a multiple of 16 in [{MIN_N}, {MAX_N}], got {n}")
        if self.challenge_deadline_ms <= 0 or self.opening_timeout <= 0 or self.evidence_timeout <= 0:
            raise ValueError("challenge_deadline_ms, opening_timeout and evidence_timeout must be positive")

    @property
    def audited_rows(self) -> int:
        """Rows an opening must open: `opened_rows`, or every row of a smaller product."""
        return min(self.opened_rows, self.challenge_n)


@dataclass(frozen=True, slots=True)
class LeaseEvidence:
    """One lease's evidence as the verifier sees it now. `state`: `unposted` (root not on-chain yet),
    `waiting` (no receipt yet), `collecting`, `ended` or `lapsed`; `proven` is None while unposted."""

    record: EvidenceRecord
    proven: ProvenTime | None
    state: str

    @property
    def ended(self) -> bool:
        return self.state in ("ended", "lapsed")


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """A receipt accepted now (`already` False) or stored before, and the lease's evidence after it."""

    record: ReceiptRecord
    already: bool
    evidence: LeaseEvidence


def _personal_signer(text: str, signature: str | bytes) -> str:
    try:
        return recover_personal_signer(text, signature)
    except InvalidSignatureError:
        raise EvidenceRejectedError(
            "bad_signature", "the signature is not a valid 65-byte signature"
        ) from None


class EvidenceVerifier:
    """Checks, keeps and judges a market's delivery evidence; one per matcher service."""

    def __init__(
        self,
        *,
        store: Store,
        domain: Eip712Domain,
        lock_window: int,
        policy: EvidencePolicy,
        clock: Callable[[], int],
        clock_ms: Callable[[], int],
        latest_block: Callable[[], tuple[bytes, int]],
        count: Callable[[str, int], None] = lambda name, by: None,
    ) -> None:
        self.store = store
        self.domain = domain
        self.lock_window = lock_window
        self.policy = policy
        self.clock = clock
        self.clock_ms = clock_ms
        self.latest_block = latest_block
        self._count = count
        self.watched_since = clock()
        self._lock = threading.Lock()  # receipt acceptance and recorded ends, one at a time

    # --- blobs

    def put_blob(self, blob_hash: bytes, data: bytes) -> bool:
        """Stores `data` under `blob_hash`, its keccak256; False when it was already there."""
        if len(data) > self.policy.max_blob_bytes:
            raise EvidenceRejectedError(
                "too_large", f"a blob is at most {self.policy.max_blob_bytes} bytes, got {len(data)}"
            )
        actual = keccak256(data)
        if actual != bytes(blob_hash):
            raise EvidenceRejectedError(
                "hash_mismatch",
                f"the body hashes to 0x{actual.hex()}, not 0x{bytes(blob_hash).hex()}: "
                "PUT a blob under its keccak256",
            )
        created = self.store.put_blob(actual, data, self.clock())
        if created:
            self._count("blobs_stored", 1)
        return created

    def get_blob(self, blob_hash: bytes) -> bytes:
        data = self.store.get_blob(blob_hash)
        if data is None:
            raise NotFoundError(f"no blob has hash 0x{bytes(blob_hash).hex()}")
        return data

    # --- the lease's evidence

    def _record(self, lease_id: int) -> EvidenceRecord:
        try:
            return self.store.evidence_of(lease_id)
        except LeaseNotFoundError:
            raise NotFoundError(f"no lease has id {lease_id}") from None

    def _judge(self, record: EvidenceRecord, now: int) -> LeaseEvidence:
        lease = record.lease
        if record.start is None:
            return LeaseEvidence(record, None, "unposted")
        end = record.end
        if end is not None:
            proven = ProvenTime(
                end.proven_until,
                max(end.proven_gpu_seconds, record.committed_gpu_seconds),
                EndReason(end.reason),
                held=False,
            )
        else:
            proven = proven_time(
                record.receipts,
                record.challenges,
                start=record.start,
                duration=lease.duration,
                gpus=lease.gpus,
                now=now,
                evidence_timeout=self.policy.evidence_timeout,
                committed=record.committed_gpu_seconds,
                watched_since=self.watched_since,
            )
        if record.lapsed_at is not None:
            state = "lapsed"
        elif proven.ended:
            state = "ended"
        else:
            state = "collecting" if record.receipts else "waiting"
        return LeaseEvidence(record, proven, state)

    def evidence(self, lease_id: int, now: int | None = None) -> LeaseEvidence:
        """The lease's evidence judged at `now` (default: the clock)."""
        return self._judge(self._record(lease_id), self.clock() if now is None else now)

    def _record_end(self, evidence: LeaseEvidence, now: int) -> None:
        """Records an ended evidence once no challenge holds it: from then on its figure is fixed, and a
        receipt sent late can no longer fill a gap that already ended it."""
        proven = evidence.proven
        if evidence.record.end is not None or proven is None or proven.end is None or proven.held:
            return
        end = EvidenceEnd(
            evidence.record.lease.lease_id,
            proven.end.value,
            proven.proven_until,
            proven.proven_gpu_seconds,
            now,
        )
        if self.store.record_evidence_end(end):
            log.info(
                "lease %d: evidence ended (%s), proven until %s, %d GPU-seconds",
                end.lease_id,
                end.reason,
                end.proven_until,
                end.proven_gpu_seconds,
            )

    # --- receipts

    def submit_receipt(self, lease_id: int, document: object) -> ReceiptOutcome:
        """Checks and stores one signed receipt of lease `lease_id` (docs/evidence.md, "Receipts")."""
        try:
            receipt, signature = Receipt.from_json(document)
        except EvidenceError as exc:
            raise EvidenceRejectedError("malformed", str(exc)) from None
        if receipt.lease_id != lease_id:
            raise EvidenceRejectedError(
                "malformed", f"the receipt is for lease {receipt.lease_id}, sent to lease {lease_id}"
            )
        for name, value in (("telemetry", receipt.telemetry), ("outputs", receipt.outputs)):
            if value is not None and len(canonical_json(value)) > MAX_DOCUMENT_BYTES:
                raise EvidenceRejectedError(
                    "too_large",
                    f"the {name} document is over {MAX_DOCUMENT_BYTES} bytes: put details in a blob",
                )
        receipt_hash = receipt.hash(self.domain)
        with self._lock:
            now = self.clock()
            record = self._record(lease_id)
            provider = record.lease.provider
            try:
                signer = recover_receipt_signer(receipt, signature, self.domain)
            except InvalidSignatureError:
                signer = None
            if signer != provider:
                raise EvidenceRejectedError(
                    "bad_signature",
                    f"the receipt is signed by {signer}, not the lease's provider {provider}: sign its hash "
                    "with personal_sign (EIP-191)",
                )
            if record.start is None:
                raise EvidenceRejectedError(
                    "not_posted", f"lease {lease_id}'s root is not posted yet: send receipts once it is"
                )
            stored = self.store.get_receipt(lease_id, receipt.sequence)
            if stored is not None:
                return self._already(stored, receipt_hash, now)
            evidence = self._judge(record, now)
            if evidence.ended:
                self._record_end(evidence, now)
                reason = "lapsed" if evidence.state == "lapsed" else evidence.proven and evidence.proven.end
                raise EvidenceRejectedError(
                    "evidence_ended",
                    f"lease {lease_id}'s evidence has ended ({reason}): send no more receipts",
                )
            self._check_order(record, receipt, receipt_hash, now)
            if not self.store.add_receipt(receipt, receipt_hash, signature, now):
                stored = self.store.get_receipt(lease_id, receipt.sequence)
                assert stored is not None
                return self._already(stored, receipt_hash, now)
        self._count("receipts", 1)
        log.debug("lease %d: receipt %d (%s) accepted", lease_id, receipt.sequence, receipt.job_state.name)
        accepted = self.store.get_receipt(lease_id, receipt.sequence)
        assert accepted is not None
        return ReceiptOutcome(accepted, False, self.evidence(lease_id, now))

    def _already(self, stored: ReceiptRecord, receipt_hash: bytes, now: int) -> ReceiptOutcome:
        if stored.receipt_hash != receipt_hash:
            raise EvidenceRejectedError(
                "receipt_conflict",
                f"lease {stored.receipt.lease_id} already has a different receipt {stored.receipt.sequence} "
                f"(0x{stored.receipt_hash.hex()}): a sequence number is used once",
            )
        return ReceiptOutcome(stored, True, self.evidence(stored.receipt.lease_id, now))

    def _check_order(self, record: EvidenceRecord, receipt: Receipt, receipt_hash: bytes, now: int) -> None:
        expected = len(record.receipts)
        if receipt.sequence != expected:
            raise EvidenceRejectedError(
                "out_of_order", f"lease {receipt.lease_id} expects receipt {expected}, got {receipt.sequence}"
            )
        last = record.receipts[-1] if record.receipts else None
        previous = ZERO_WORD if last is None else last.receipt_hash
        if receipt.previous != previous:
            raise EvidenceRejectedError(
                "broken_chain",
                f"receipt {receipt.sequence}'s previous is 0x{receipt.previous.hex()}, but receipt "
                f"{expected - 1}'s hash is 0x{previous.hex()}",
            )
        skew = self.policy.clock_skew
        assert record.start is not None
        if last is not None and receipt.time < last.time:
            raise EvidenceRejectedError(
                "bad_time", f"time {receipt.time} is before the previous receipt's ({last.time})"
            )
        if receipt.time < record.start - skew:
            raise EvidenceRejectedError(
                "bad_time",
                f"time {receipt.time} is before the lease's start {record.start} (clock skew {skew} s)",
            )
        if receipt.time > now + skew:
            raise EvidenceRejectedError(
                "bad_time", f"time {receipt.time} is ahead of the matcher's clock {now} by more than {skew} s"
            )

    def receipts(self, lease_id: int, limit: int = 100, cursor: str | None = None) -> Page[ReceiptRecord]:
        try:
            return self.store.receipts_of(lease_id, limit, cursor)
        except LeaseNotFoundError:
            raise NotFoundError(f"no lease has id {lease_id}") from None

    # --- challenges

    def issue_challenges(self) -> list[ChallengeRecord]:
        """Issues a challenge to every running lease with none open whose last one is at least
        `challenge_interval` old (or that never had one), all seeded by the newest block."""
        now, now_ms = self.clock(), self.clock_ms()
        due: list[tuple[int, int]] = []
        for lease_id in self.store.running_leases():
            evidence = self.evidence(lease_id, now)
            if evidence.state != "collecting":
                continue
            challenges = evidence.record.challenges
            if any(c.is_open for c in challenges):
                continue
            if challenges and now_ms - challenges[-1].issued_at_ms < self.policy.challenge_interval * 1000:
                continue
            due.append((lease_id, len(challenges)))
        if not due:
            return []
        block_hash, block_number = self.latest_block()
        issued = []
        for lease_id, sequence in due:
            record = ChallengeRecord.issued(
                lease_id,
                sequence,
                block_hash=block_hash,
                block_number=block_number,
                n=self.policy.challenge_n,
                issued_at_ms=now_ms,
                deadline_ms=self.policy.challenge_deadline_ms,
            )
            if self.store.add_challenge(record):
                issued.append(record)
        if issued:
            self._count("challenges_issued", len(issued))
            log.info("challenges: %d issued, block %d", len(issued), block_number)
        return issued

    def expire_challenges(self) -> int:
        """Gives verdict `late` to open challenges past their deadline without a root, or past
        `opening_timeout` after their root without an opening; how many."""
        now_ms = self.clock_ms()
        expired = 0
        for c in self.store.open_challenges():
            if c.root is None and now_ms - c.issued_at_ms > c.deadline_ms:
                reason = f"no commitment within the deadline of {c.deadline_ms} ms"
            elif (
                c.committed_at_ms is not None
                and now_ms - c.committed_at_ms > self.policy.opening_timeout * 1000
            ):
                reason = f"no valid opening within {self.policy.opening_timeout} s of the commitment"
            else:
                continue
            if self.store.resolve_challenge(
                c.lease_id, c.sequence, outcome=Outcome.LATE.value, reason=reason, resolved_at_ms=now_ms
            ):
                expired += 1
                self._count("challenges_failed", 1)
                log.info("lease %d: challenge %d late: %s", c.lease_id, c.sequence, reason)
        return expired

    def _challenge(self, lease_id: int, sequence: int) -> ChallengeRecord:
        found = self.store.get_challenge(lease_id, sequence)
        if found is None:
            raise NotFoundError(f"lease {lease_id} has no challenge {sequence}")
        return found

    def _resolved(self, c: ChallengeRecord) -> EvidenceRejectedError:
        if c.outcome == Outcome.LATE.value:
            return EvidenceRejectedError(
                "late", f"challenge {c.sequence} of lease {c.lease_id} is late: {c.reason}"
            )
        return EvidenceRejectedError(
            "resolved",
            f"challenge {c.sequence} of lease {c.lease_id} is already judged {c.outcome}: {c.reason}",
        )

    def commit(
        self, lease_id: int, sequence: int, root: bytes, signature: Signature | str
    ) -> ChallengeRecord:
        """Takes the provider's signed root: stamps its arrival first, then (on time) draws a fresh verifier
        seed and the audit. Re-sending the stored root answers the stored audit."""
        arrived_ms = self.clock_ms()
        c = self._challenge(lease_id, sequence)
        provider = self.store.get_lease(lease_id).provider
        try:
            parsed = signature if isinstance(signature, Signature) else Signature(signature)  # type: ignore[arg-type]
            signer = recover_commitment_signer(self.domain, lease_id, sequence, bytes(root), parsed)
        except (InvalidSignatureError, EvidenceError):
            signer = None
        if signer != provider:
            raise EvidenceRejectedError(
                "bad_signature",
                f"the commitment is signed by {signer}, not the lease's provider {provider}: sign "
                "commitment_hash(...) with personal_sign (EIP-191)",
            )
        if c.root is not None:
            if c.root == bytes(root):
                return c
            raise EvidenceRejectedError(
                "commit_conflict",
                f"challenge {sequence} of lease {lease_id} is committed to 0x{c.root.hex()}",
            )
        if c.outcome is not None:
            raise self._resolved(c)
        elapsed = max(arrived_ms, c.issued_at_ms) - c.issued_at_ms
        if elapsed > c.deadline_ms:
            reason = f"committed {elapsed} ms after issue, deadline {c.deadline_ms} ms"
            if self.store.resolve_challenge(
                lease_id, sequence, outcome=Outcome.LATE.value, reason=reason, resolved_at_ms=arrived_ms
            ):
                self._count("challenges_failed", 1)
            raise self._resolved(self._challenge(lease_id, sequence))
        verifier_seed = os.urandom(32)  # drawn only now that the root is fixed
        audit = draw_audit(
            c.challenge(),
            bytes(root),
            verifier_seed,
            rows=self.policy.audited_rows,
            rounds=self.policy.rounds,
        )
        self.store.commit_challenge(
            lease_id,
            sequence,
            root=bytes(root),
            signature=parsed,
            committed_at_ms=max(arrived_ms, c.issued_at_ms),
            verifier_seed=verifier_seed,
            rows=audit.rows,
        )
        stored = self._challenge(lease_id, sequence)
        if stored.root != bytes(root):  # another commitment won a race
            raise EvidenceRejectedError(
                "commit_conflict", f"challenge {sequence} of lease {lease_id} is committed to another root"
            )
        return stored

    def open(self, lease_id: int, sequence: int, data: bytes) -> ChallengeRecord:
        """Judges the opening of a committed challenge and records the verdict. Openings are not signed, so
        only an opening whose rows are the audit's and prove against the committed root decides a verdict;
        anything else is refused (`malformed`, `wrong_commitment`) and recorded nowhere, and a provider that
        sends no valid opening in time gets `late`."""
        arrived_ms = self.clock_ms()
        c = self._challenge(lease_id, sequence)
        if c.outcome is not None:
            if c.has_opening and self.store.challenge_opening(lease_id, sequence) == bytes(data):
                return c
            raise self._resolved(c)
        if c.root is None or c.committed_at_ms is None or c.verifier_seed is None:
            raise EvidenceRejectedError(
                "not_committed",
                f"challenge {sequence} of lease {lease_id} has no commitment: commit a root first",
            )
        waited = arrived_ms - c.committed_at_ms
        if waited > self.policy.opening_timeout * 1000:
            reason = f"opened {waited} ms after the commitment, timeout {self.policy.opening_timeout} s"
            if self.store.resolve_challenge(
                lease_id, sequence, outcome=Outcome.LATE.value, reason=reason, resolved_at_ms=arrived_ms
            ):
                self._count("challenges_failed", 1)
            raise self._resolved(self._challenge(lease_id, sequence))
        try:
            opening = RowOpening.from_bytes(data)
        except MalformedAnswerError as exc:
            raise EvidenceRejectedError("malformed", f"the opening does not parse: {exc}") from None
        verdict = verify_opening(
            c.challenge(),
            c.root,
            opening,
            committed_at_ms=c.committed_at_ms,
            verifier_seed=c.verifier_seed,
            rows=self.policy.audited_rows,
            rounds=self.policy.rounds,
        )
        if verdict.outcome in (Outcome.MALFORMED, Outcome.WRONG_COMMITMENT):
            raise EvidenceRejectedError(verdict.outcome.value, f"the opening is refused: {verdict.reason}")
        if self.store.resolve_challenge(
            lease_id,
            sequence,
            outcome=verdict.outcome.value,
            reason=verdict.reason,
            resolved_at_ms=arrived_ms,
            opening=bytes(data),
        ):
            self._count("challenges_passed" if verdict.passed else "challenges_failed", 1)
            log.info(
                "lease %d: challenge %d %s: %s", lease_id, sequence, verdict.outcome.value, verdict.reason
            )
        return self._challenge(lease_id, sequence)

    def provider_challenges(self, provider: str) -> list[ChallengeRecord]:
        """The provider's challenges awaiting a commitment or an opening."""
        return self.store.open_challenges(provider)

    def lease_challenges(self, lease_id: int) -> list[ChallengeRecord]:
        try:
            return self.store.lease_challenges(lease_id)
        except LeaseNotFoundError:
            raise NotFoundError(f"no lease has id {lease_id}") from None

    def opening(self, lease_id: int, sequence: int) -> bytes:
        self._challenge(lease_id, sequence)
        data = self.store.challenge_opening(lease_id, sequence)
        if data is None:
            raise NotFoundError(f"challenge {sequence} of lease {lease_id} has no opening")
        return data

    # --- stop requests

    def request_stop(self, lease_id: int, signature: str | bytes) -> tuple[int, bool]:
        """Records the buyer's signed request to stop the lease early: (its time, whether it is new)."""
        try:
            buyer = self.store.get_lease(lease_id).buyer
        except LeaseNotFoundError:
            raise NotFoundError(f"no lease has id {lease_id}") from None
        signer = _personal_signer(stop_message(lease_id, self.domain), signature)
        if signer != buyer:
            raise EvidenceRejectedError(
                "bad_signature",
                f"the stop request is signed by {signer}, not the lease's buyer {buyer}: sign "
                f"{stop_message(lease_id, self.domain)!r} with personal_sign",
            )
        raw = signature if isinstance(signature, bytes) else bytes.fromhex(signature.removeprefix("0x"))
        return self.store.request_stop(lease_id, raw, self.clock())

    # --- usage

    def usage_leaves(self, now: int) -> list[SettlementLeaf]:
        """The usage leaves the batch at `now` commits (docs/evidence.md): for each lease locked on-chain, a
        final leaf once its evidence ended (and no challenge holds it), else a usage leaf when the proven
        figure grew and `usage_interval` passed since its last usage leaf (or its start). Along the way,
        ended evidence is recorded and leases whose lock window passed unlocked lapse."""
        leaves: list[SettlementLeaf] = []
        for lease_id in self.store.evidence_candidates():
            with self._lock:
                evidence = self._judge(self._record(lease_id), now)
                self._record_end(evidence, now)
            record, proven = evidence.record, evidence.proven
            if proven is None or record.start is None:
                continue
            if not record.lease.chain.locked:
                if now > record.start + self.lock_window + LAPSE_MARGIN and self.store.record_lapse(
                    lease_id, now
                ):
                    log.info("lease %d: lapsed, never locked within the lock window", lease_id)
                continue
            if record.lease.chain.closed:  # reclaimed by the buyer after the settle window: nothing to pay
                continue
            if proven.ended and not proven.held:
                leaves.append(record.lease_leaf.usage(proven.proven_gpu_seconds, final=True))
            elif proven.proven_gpu_seconds > record.committed_gpu_seconds:
                last = record.usage[-1].recorded_at if record.usage else record.start
                if now - last >= self.policy.usage_interval:
                    leaves.append(record.lease_leaf.usage(proven.proven_gpu_seconds))
        return leaves
