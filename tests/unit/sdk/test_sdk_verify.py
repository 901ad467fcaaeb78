"""Local re-verification: receipts (signatures, hash chain), challenges re-judged from the published opening,
the lease leaf proven against a root, the usage batch's tree rebuilt from its published leaves."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account

from gpuspot.protocol import (
    Bid,
    Eip712Domain,
    digest,
    lease_leaf,
    product_id,
    settlement_multiproof,
    settlement_tree,
    sign,
)
from gpuspot.protocol.challenge import Challenge, answer, draw_audit
from gpuspot.protocol.evidence import JobState, Receipt, sign_commitment, sign_receipt
from gpuspot.sdk import LeaseInfo, VerificationError
from gpuspot.sdk.verify import check_challenge, check_lease_leaf, check_usage_leaf, verify_receipts

DOMAIN = Eip712Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
PROVIDER = Account.create()
BUYER = Account.create()
ZERO = b"\x00" * 32


def receipts(count: int, key: Any = PROVIDER.key) -> list[dict[str, Any]]:
    documents, previous = [], ZERO
    for sequence in range(count):
        receipt = Receipt(
            lease_id=7,
            sequence=sequence,
            time=1_000 + sequence,
            job_state=JobState.RUNNING if sequence < count - 1 else JobState.SUCCEEDED,
            telemetry={"backend": "cpu-simulated"},
            output_digest=ZERO,
            previous=previous,
        )
        document = receipt.to_json(sign_receipt(receipt, key, DOMAIN))
        previous = receipt.hash(DOMAIN)
        documents.append(document | {"hash": "0x" + previous.hex(), "received_at": 1_000 + sequence})
    return documents


def test_receipts_signed_by_the_provider_in_one_chain_verify() -> None:
    verified = verify_receipts(receipts(3), lease_id=7, provider=PROVIDER.address, domain=DOMAIN)
    assert [r.sequence for r in verified] == [0, 1, 2]
    assert verified[-1].job_state is JobState.SUCCEEDED and verified[0].signer == PROVIDER.address


def test_a_receipt_signed_by_someone_else_is_refused() -> None:
    with pytest.raises(VerificationError, match="not by the lease's provider"):
        verify_receipts(
            receipts(2, Account.create().key), lease_id=7, provider=PROVIDER.address, domain=DOMAIN
        )


def test_a_missing_receipt_breaks_the_chain() -> None:
    documents = receipts(3)
    with pytest.raises(VerificationError, match="gap"):
        verify_receipts([documents[0], documents[2]], lease_id=7, provider=PROVIDER.address, domain=DOMAIN)


def test_a_changed_receipt_is_caught_by_its_signature_or_the_next_link() -> None:
    documents = receipts(3)
    documents[1] = documents[1] | {"time": documents[1]["time"] + 60}  # the matcher rewrites a time
    with pytest.raises(VerificationError):
        verify_receipts(documents, lease_id=7, provider=PROVIDER.address, domain=DOMAIN)


def test_a_wrong_published_hash_is_refused() -> None:
    documents = receipts(1)
    documents[0] = documents[0] | {"hash": "0x" + "11" * 32}
    with pytest.raises(VerificationError, match="publishes hash"):
        verify_receipts(documents, lease_id=7, provider=PROVIDER.address, domain=DOMAIN)


def challenge_json(*, n: int = 16, outcome: str = "passed") -> tuple[dict[str, Any], bytes]:
    block_hash = b"\x05" * 32
    challenge = Challenge(7, 0, block_hash, n, 1_000_000, 5_000)
    solved = answer(challenge)
    seed = b"\x09" * 32
    rows = draw_audit(challenge, solved.root, seed, rows=4).rows
    opening = solved.open(rows).to_bytes()
    document = {
        "lease_id": 7,
        "sequence": 0,
        "block_hash": "0x" + block_hash.hex(),
        "block_number": 12,
        "n": n,
        "issued_at_ms": 1_000_000,
        "deadline_ms": 5_000,
        "root": "0x" + solved.root.hex(),
        "commit_signature": sign_commitment(DOMAIN, 7, 0, solved.root, PROVIDER.key).hex(),
        "committed_at_ms": 1_001_000,
        "verifier_seed": "0x" + seed.hex(),
        "rows": list(rows),
        "rounds": 2,
        "outcome": outcome,
        "has_opening": True,
    }
    return document, opening


def judge(document: dict[str, Any], opening: bytes | None, block: bytes | None = b"\x05" * 32) -> Any:
    return check_challenge(
        document, opening, provider=PROVIDER.address, domain=DOMAIN, opened_rows=4, chain_block_hash=block
    )


def test_a_passed_challenge_is_re_judged_passed() -> None:
    document, opening = challenge_json()
    check = judge(document, opening)
    assert check.ok, check.detail
    assert "re-run: passed" in check.detail


def test_a_verdict_that_disagrees_with_the_re_run_fails() -> None:
    document, opening = challenge_json(outcome="wrong_product")
    assert not judge(document, opening).ok


def test_a_challenge_seeded_by_a_block_the_chain_does_not_have_fails() -> None:
    document, opening = challenge_json()
    check = judge(document, opening, block=b"\x06" * 32)
    assert not check.ok and "block 12 of the chain" in check.detail


def test_a_commitment_not_signed_by_the_provider_fails() -> None:
    document, opening = challenge_json()
    root = bytes.fromhex(document["root"][2:])
    document["commit_signature"] = sign_commitment(DOMAIN, 7, 0, root, Account.create().key).hex()
    assert "not the provider" in judge(document, opening).detail


def test_a_pass_without_an_opening_cannot_be_trusted() -> None:
    document, _ = challenge_json()
    assert not judge(document | {"has_opening": False}, None).ok
    assert judge(document | {"outcome": "late"}, None).ok


def signed_bid() -> tuple[Bid, Any]:
    bid = Bid(
        buyer=BUYER.address,
        product=product_id("H100-80GB"),
        gpus=1,
        duration=120,
        max_price_per_gpu_hour=3_000_000,
        job_spec_hash=b"\x07" * 32,
        nonce=42,
        expiry=2_000_000_000,
    )
    return bid, sign(bid, BUYER.key, DOMAIN)


def lease_of(bid: Bid, *, lease_id: int, batch_id: int, usage: tuple[dict[str, Any], ...] = ()) -> LeaseInfo:
    return LeaseInfo.from_json(
        {
            "lease_id": lease_id,
            "batch_id": batch_id,
            "bid_hash": "0x" + digest(bid, DOMAIN).hex(),
            "buyer": bid.buyer,
            "provider": PROVIDER.address,
            "product_name": "H100-80GB",
            "gpus": bid.gpus,
            "duration": bid.duration,
            "price_per_gpu_hour": "2500000",
            "status": "locked",
            "chain": {"locked": True},
            "start": 1_000,
            "job_spec_hash": "0x" + bid.job_spec_hash.hex(),
            "evidence": {},
            "usage": list(usage),
        }
    )


def test_the_lease_leaf_is_proven_against_the_root_read_from_the_chain() -> None:
    bid, signature = signed_bid()
    lease = lease_of(bid, lease_id=3, batch_id=5)
    mine = lease_leaf(
        bid, DOMAIN, batch_id=5, lease_id=3, provider=PROVIDER.address, price_per_gpu_hour=2_500_000
    )
    other = dataclasses.replace(mine, lease_id=4, bid_digest=b"\x01" * 32)
    tree = settlement_tree([mine, other])
    proof = settlement_multiproof(tree, [mine])
    r, vs = signature.compact()
    lock = {
        "lease": {
            "bid": ["0x" + v.hex() if isinstance(v, bytes) else str(v) for v in bid.abi_values()],
            "r": "0x" + r.hex(),
            "vs": "0x" + vs.hex(),
        },
        "proof": {"proof": ["0x" + p.hex() for p in proof.proof], "proofFlags": proof.proof_flags},
    }
    checks = {c.name: c for c in check_lease_leaf(lease, lock, DOMAIN, tree.root, 1_000)}
    assert all(c.ok for c in checks.values()), checks
    other_root = settlement_tree([other]).root
    assert not check_lease_leaf(lease, lock, DOMAIN, other_root, 1_000)[2].ok, "another root: not proven"
    cheaper = dataclasses.replace(lease, price_per_gpu_hour=4_000_000)  # above the bid's cap
    assert not {c.name: c for c in check_lease_leaf(cheaper, lock, DOMAIN, tree.root, 1_000)}[
        "lease terms"
    ].ok


def test_the_usage_batch_is_rebuilt_from_its_published_leaves() -> None:
    bid, _ = signed_bid()
    mine = lease_leaf(
        bid, DOMAIN, batch_id=5, lease_id=3, provider=PROVIDER.address, price_per_gpu_hour=2_500_000
    )
    usage = mine.usage(40, final=True)
    new = dataclasses.replace(mine, batch_id=8, lease_id=9, bid_digest=b"\x02" * 32)
    root = settlement_tree([new, usage]).root
    inputs = {
        "leases": [
            {
                "lease_id": 9,
                "bid_hash": "0x" + ("02" * 32),
                "buyer": new.buyer,
                "provider": new.provider,
                "product": "0x" + new.product.hex(),
                "gpus": 1,
                "duration": 120,
                "price_per_gpu_hour": "2500000",
            }
        ],
        "usage_leaves": [
            {
                "values": [
                    str(v) if isinstance(v, int) else ("0x" + v.hex() if isinstance(v, bytes) else v)
                    for v in usage.values()
                ]
            }
        ],
    }
    entry = {"usage_batch_id": 8, "used_gpu_seconds": 40, "final": True, "posted": True}
    lease = lease_of(bid, lease_id=3, batch_id=5, usage=(entry,))
    check = check_usage_leaf(lease, entry, inputs, root, digest(bid, DOMAIN))
    assert check.ok, check.detail
    assert not check_usage_leaf(lease, entry | {"used_gpu_seconds": 41}, inputs, root, digest(bid, DOMAIN)).ok
    assert not check_usage_leaf(lease, entry, inputs, b"\x03" * 32, digest(bid, DOMAIN)).ok
