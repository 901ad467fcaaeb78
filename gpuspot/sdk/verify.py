"""Local re-verification of what the matcher published about a lease: pure functions over the published JSON
and values read from the chain (the caller reads them), each giving a `Check` or raising `VerificationError`.

What is checked and what cannot be is in docs/sdk.md ("What verify checks").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpuspot.protocol import (
    LEAF_ENCODING,
    Bid,
    Eip712Domain,
    MultiProof,
    SettlementLeaf,
    Signature,
    cost,
    digest,
    lease_leaf,
    recover_signer,
    settlement_tree,
)
from gpuspot.protocol.challenge import Challenge, MalformedAnswerError, RowOpening, verify_opening
from gpuspot.protocol.errors import ProtocolError
from gpuspot.protocol.evidence import (
    EvidenceError,
    Receipt,
    recover_commitment_signer,
    recover_receipt_signer,
)
from gpuspot.protocol.merkle import verify_multiproof
from gpuspot.sdk.errors import VerificationError
from gpuspot.sdk.models import Check, LeaseInfo, VerifiedReceipt

__all__ = [
    "bid_from_lock",
    "check_challenge",
    "check_lease_leaf",
    "check_settlement",
    "check_usage_bound",
    "check_usage_leaf",
    "lease_leaf_hash",
    "verify_receipts",
]

ZERO_WORD = b"\x00" * 32


def _bytes(text: str) -> bytes:
    return bytes.fromhex(str(text).removeprefix("0x"))


def verify_receipts(
    documents: Sequence[dict[str, Any]], *, lease_id: int, provider: str, domain: Eip712Domain
) -> list[VerifiedReceipt]:
    """Each receipt parsed, signed by `provider` under the market's domain, numbered 0, 1, 2... and linked to
    the previous one's hash; the published `hash` equal to the one computed. `VerificationError` names the
    first receipt that fails."""
    verified: list[VerifiedReceipt] = []
    previous = ZERO_WORD
    for index, document in enumerate(documents):
        signed = {k: v for k, v in document.items() if k not in ("hash", "received_at")}
        try:
            receipt, signature = Receipt.from_json(signed)
            receipt_hash = receipt.hash(domain)
            signer = recover_receipt_signer(receipt, signature, domain)
        except (EvidenceError, ProtocolError) as exc:
            raise VerificationError(f"receipt {index} of lease {lease_id} does not parse: {exc}") from None
        where = f"receipt {receipt.sequence} of lease {lease_id}"
        if receipt.lease_id != lease_id:
            raise VerificationError(f"{where} is for lease {receipt.lease_id}")
        if receipt.sequence != index:
            raise VerificationError(f"{where} is at position {index}: the chain of receipts has a gap")
        if receipt.previous != previous:
            raise VerificationError(
                f"{where} links to 0x{receipt.previous.hex()}, not to the previous receipt's hash "
                f"0x{previous.hex()}: the hash chain is broken"
            )
        if signer != provider:
            raise VerificationError(f"{where} is signed by {signer}, not by the lease's provider {provider}")
        published = document.get("hash")
        if published is not None and _bytes(published) != receipt_hash:
            raise VerificationError(
                f"{where}: the matcher publishes hash {published}, it is 0x{receipt_hash.hex()}"
            )
        verified.append(
            VerifiedReceipt(
                receipt=receipt,
                signature=signature,
                hash=receipt_hash,
                signer=signer,
                received_at=None if document.get("received_at") is None else int(document["received_at"]),
            )
        )
        previous = receipt_hash
    return verified


def bid_from_lock(lock: dict[str, Any]) -> tuple[Bid, Signature]:
    """The signed bid and its signature from `GET /v1/leases/{id}`'s `lock` (`lease.bid` in ABI order)."""
    values = lock["lease"]["bid"]
    bid = Bid(
        buyer=str(values[0]),
        product=_bytes(values[1]),
        gpus=int(values[2]),
        duration=int(values[3]),
        max_price_per_gpu_hour=int(values[4]),
        job_spec_hash=_bytes(values[5]),
        nonce=int(values[6]),
        expiry=int(values[7]),
    )
    signature = Signature.from_compact(_bytes(lock["lease"]["r"]), _bytes(lock["lease"]["vs"]))
    return bid, signature


def check_lease_leaf(
    lease: LeaseInfo, lock: dict[str, Any], domain: Eip712Domain, chain_root: bytes, posted_at: int
) -> list[Check]:
    """The bid behind the lease is signed by its buyer and is the lease's bid; the lease's terms respect it;
    its lease leaf, rebuilt here, is in the batch's root as the escrow holds it (via the published proof);
    the lease starts when that root was posted."""
    checks: list[Check] = []
    try:
        bid, signature = bid_from_lock(lock)
        signer = recover_signer(bid, domain, signature)
    except (ProtocolError, KeyError, ValueError, TypeError, IndexError) as exc:
        return [Check("bid signature", False, f"the published bid does not parse: {exc}")]
    bid_digest = digest(bid, domain)
    checks.append(
        Check(
            "bid signature",
            signer == lease.buyer == bid.buyer and "0x" + bid_digest.hex() == lease.bid_hash.lower(),
            f"bid 0x{bid_digest.hex()} signed by {signer}; the lease's buyer {lease.buyer}, its bid "
            f"{lease.bid_hash}",
        )
    )
    terms_ok = (
        bid.gpus == lease.gpus
        and bid.duration == lease.duration
        and lease.price_per_gpu_hour <= bid.max_price_per_gpu_hour
        and "0x" + bid.job_spec_hash.hex() == (lease.job_spec_hash or "").lower()
    )
    checks.append(
        Check(
            "lease terms",
            terms_ok,
            f"{lease.gpus} GPU(s) x {lease.duration}s at {lease.price_per_gpu_hour}/GPU-hour; the bid: "
            f"{bid.gpus} x {bid.duration}s, cap {bid.max_price_per_gpu_hour}, job spec "
            f"0x{bid.job_spec_hash.hex()}",
        )
    )
    leaf = lease_leaf(
        bid,
        domain,
        batch_id=lease.batch_id,
        lease_id=lease.lease_id,
        provider=lease.provider,
        price_per_gpu_hour=lease.price_per_gpu_hour,
    )
    proof = lock.get("proof") or {}
    multiproof = MultiProof(
        leaves=[leaf.values()],
        proof=[_bytes(p) for p in proof.get("proof", [])],
        proof_flags=[bool(f) for f in proof.get("proofFlags", [])],
    )
    if chain_root == ZERO_WORD:
        checks.append(Check("lease leaf in root", False, f"batch {lease.batch_id} has no root on-chain"))
    else:
        in_root = verify_multiproof(chain_root, LEAF_ENCODING, multiproof)
        checks.append(
            Check(
                "lease leaf in root",
                in_root,
                f"leaf 0x{leaf.hash().hex()} {'is' if in_root else 'is NOT'} proven against batch "
                f"{lease.batch_id}'s root 0x{chain_root.hex()} read from the escrow",
            )
        )
        checks.append(
            Check(
                "lease start",
                lease.start == posted_at,
                f"the lease starts at {lease.start}; the root was posted on-chain at {posted_at}",
            )
        )
    return checks


def lease_leaf_hash(bid: Bid, domain: Eip712Domain, lease: LeaseInfo) -> bytes:
    """The lease leaf's hash, as `Escrow.lockedLeaf(bidDigest)` records it while the lease is open."""
    return lease_leaf(
        bid,
        domain,
        batch_id=lease.batch_id,
        lease_id=lease.lease_id,
        provider=lease.provider,
        price_per_gpu_hour=lease.price_per_gpu_hour,
    ).hash()


def _leaf_from_published(values: Sequence[Any]) -> SettlementLeaf:
    converted: list[Any] = []
    for type_, value in zip(LEAF_ENCODING, values, strict=True):
        if type_ == "bytes32":
            converted.append(_bytes(value))
        elif type_ == "address":
            converted.append(str(value))
        else:
            converted.append(int(value))
    return SettlementLeaf.from_values(converted)


def check_usage_leaf(
    lease: LeaseInfo, usage: dict[str, Any], inputs: dict[str, Any], chain_root: bytes, bid_digest: bytes
) -> Check:
    """The usage batch's whole settlement tree, rebuilt from its published inputs (its new leases' leaves and
    its usage leaves), has the root the escrow holds, and holds this lease's usage leaf with the figure the
    matcher reports."""
    batch_id = int(usage["usage_batch_id"])
    name = f"usage leaf in batch {batch_id}"
    try:
        leaves = [
            SettlementLeaf(
                kind=0,
                batch_id=batch_id,
                lease_id=int(item["lease_id"]),
                bid_digest=_bytes(item["bid_hash"]),
                buyer=str(item["buyer"]),
                provider=str(item["provider"]),
                product=_bytes(item["product"]),
                gpus=int(item["gpus"]),
                duration=int(item["duration"]),
                price_per_gpu_hour=int(item["price_per_gpu_hour"]),
                used_gpu_seconds=0,
            )
            for item in inputs.get("leases", [])
        ]
        leaves += [_leaf_from_published(item["values"]) for item in inputs.get("usage_leaves", [])]
        root = settlement_tree(leaves).root
    except (ProtocolError, KeyError, ValueError, TypeError) as exc:
        return Check(name, False, f"the batch's published leaves do not rebuild a tree: {exc}")
    if root != chain_root:
        return Check(
            name,
            False,
            f"the published leaves rebuild root 0x{root.hex()}, the escrow holds 0x{chain_root.hex()}",
        )
    mine = [leaf for leaf in leaves if leaf.is_usage and leaf.lease_id == lease.lease_id]
    if len(mine) != 1:
        return Check(name, False, f"the batch has {len(mine)} usage leaves for lease {lease.lease_id}")
    leaf = mine[0]
    expected_kind = 2 if usage.get("final") else 1
    ok = (
        leaf.used_gpu_seconds == int(usage["used_gpu_seconds"])
        and int(leaf.kind) == expected_kind
        and leaf.bid_digest == bid_digest
        and leaf.batch_id == lease.batch_id
        and leaf.provider == lease.provider
        and leaf.price_per_gpu_hour == lease.price_per_gpu_hour
    )
    return Check(
        name,
        ok,
        f"{leaf.used_gpu_seconds} GPU-seconds{' (final)' if leaf.kind == 2 else ''}, in the root the escrow "
        f"holds for batch {batch_id}",
    )


def check_usage_bound(lease: LeaseInfo, receipts: Sequence[VerifiedReceipt]) -> Check | None:
    """The committed usage is no more than the signed receipts show: gpus x (last receipt time, capped at
    the lease's end, - start). None when nothing was committed."""
    if not lease.usage or lease.start is None:
        return None
    used = max(int(u["used_gpu_seconds"]) for u in lease.usage)
    last = receipts[-1].time if receipts else lease.start
    bound = lease.gpus * max(0, min(last, lease.start + lease.duration) - lease.start)
    return Check(
        "usage within receipts",
        used <= bound,
        f"{used} GPU-seconds committed; the receipts cover at most {bound} "
        f"({lease.gpus} GPU(s) from {lease.start} to {min(last, lease.start + lease.duration)})",
    )


def check_settlement(lease: LeaseInfo, reservation: int, events: Sequence[dict[str, Any]]) -> Check | None:
    """The escrow paid exactly cost(final usage, price) and refunded the buyer the rest of the reservation
    (from its `LeaseSettled` events). None while the lease is not closed by a settlement."""
    final = [u for u in lease.usage if u.get("final")]
    if not lease.closed or lease.reclaimed or not final:
        return None
    used = int(final[-1]["used_gpu_seconds"])
    paid = sum(int(e["paid"]) for e in events)
    refunded = sum(int(e["refunded"]) for e in events)
    expected = cost(used, lease.price_per_gpu_hour)
    return Check(
        "settlement on-chain",
        paid == expected and refunded == reservation - expected and any(e["closed"] for e in events),
        f"paid {paid} (cost of {used} GPU-seconds at {lease.price_per_gpu_hour}: {expected}), refunded "
        f"{refunded} of the {reservation} reserved",
    )


def check_challenge(
    challenge: dict[str, Any],
    opening: bytes | None,
    *,
    provider: str,
    domain: Eip712Domain,
    opened_rows: int,
    chain_block_hash: bytes | None,
) -> Check:
    """A resolved challenge re-judged: seeded by a block of this chain, its root signed by the provider, and
    the published opening checked with `verify_opening` under the published verifier seed, agreeing with the
    matcher's verdict. A `late` verdict without an opening cannot be re-run (absence is not provable)."""
    lease_id, sequence = int(challenge["lease_id"]), int(challenge["sequence"])
    name = f"challenge {sequence}"
    outcome = challenge.get("outcome")
    block_hash = _bytes(challenge["block_hash"])
    if chain_block_hash is not None and chain_block_hash != block_hash:
        return Check(
            name,
            False,
            f"seeded by block hash 0x{block_hash.hex()}, but block {challenge['block_number']} "
            f"of the chain is 0x{chain_block_hash.hex()}",
        )
    root_text = challenge.get("root")
    if root_text is not None and challenge.get("commit_signature"):
        root = _bytes(root_text)
        signer = recover_commitment_signer(
            domain, lease_id, sequence, root, Signature(_bytes(challenge["commit_signature"]))
        )
        if signer != provider:
            return Check(name, False, f"the commitment is signed by {signer}, not the provider {provider}")
    if opening is None or root_text is None:
        return Check(
            name,
            outcome != "passed",
            f"matcher's verdict {outcome!r}; no opening published, nothing to re-run"
            + ("" if outcome != "passed" else " (a pass without an opening cannot be checked)"),
        )
    try:
        parsed = RowOpening.from_bytes(opening)
        verdict = verify_opening(
            Challenge(
                lease_id,
                sequence,
                block_hash,
                int(challenge["n"]),
                int(challenge["issued_at_ms"]),
                int(challenge["deadline_ms"]),
            ),
            _bytes(root_text),
            parsed,
            committed_at_ms=int(challenge["committed_at_ms"]),
            verifier_seed=_bytes(challenge["verifier_seed"]),
            rows=opened_rows,
            rounds=int(challenge["rounds"]),
        )
    except (MalformedAnswerError, ProtocolError, KeyError, ValueError, TypeError) as exc:
        return Check(name, False, f"the published opening cannot be re-checked: {exc}")
    agrees = verdict.outcome.value == outcome
    return Check(
        name,
        agrees,
        f"re-run: {verdict.outcome.value} ({verdict.reason}); the matcher's verdict: {outcome}",
    )
