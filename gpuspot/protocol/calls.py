"""Arguments of the escrow's lease calls, built from signed leases and settlement trees (pure, no I/O).

Whoever sends `lockLeases`, `settleLeases` or `reclaimLeases` (a provider agent, a buyer, a benchmark) must
put the leases in the order their multiproof takes them and encode them as the contract's tuples; this module
does it once. Pass the returned tuples to the contract call in order, after the batch ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpuspot.protocol.errors import InvalidLeafError
from gpuspot.protocol.leaves import LeafKind, SettlementLeaf, settle_multiproofs, settlement_multiproof
from gpuspot.protocol.merkle import MultiProof, StandardMerkleTree
from gpuspot.protocol.orders import Bid

ZERO_WORD = b"\x00" * 32

__all__ = ["SignedLease", "lock_call", "multiproof_args", "reclaim_call", "settle_call"]


@dataclass(frozen=True)
class SignedLease:
    """A lease as the market agreed it: the buyer's signed bid and the lease leaf the matcher committed."""

    bid: Bid
    signature: tuple[bytes, bytes]  # EIP-2098 compact (r, vs)
    leaf: SettlementLeaf

    @property
    def lease_id(self) -> int:
        return self.leaf.lease_id

    def args(self, *, with_signature: bool = True) -> tuple[Any, ...]:
        """The contract's `IEscrow.SignedLease` tuple. A lease that is already locked is bound by its recorded
        leaf, so its signature may be sent as zeros (cheaper calldata)."""
        r, vs = self.signature if with_signature else (ZERO_WORD, ZERO_WORD)
        return (
            self.bid.abi_values(),
            r,
            vs,
            self.leaf.lease_id,
            self.leaf.provider,
            self.leaf.price_per_gpu_hour,
        )


def multiproof_args(proof: MultiProof) -> tuple[list[bytes], list[bool]]:
    """The contract's `IEscrow.MultiProof` tuple."""
    return (proof.proof, proof.proof_flags)


def _in_proof_order(leases: Sequence[SignedLease], proof: MultiProof) -> list[SignedLease]:
    by_id = {lease.lease_id: lease for lease in leases}
    if len(by_id) != len(leases):
        raise InvalidLeafError("a lease appears twice in one call: send each lease once")
    return [by_id[leaf.lease_id] for leaf in proof.leaves]


def lock_call(tree: StandardMerkleTree, leases: Sequence[SignedLease]) -> tuple[list[Any], Any]:
    """`(leases, proof)` for `lockLeases(batchId, leases, proof)`, for leases of the batch of `tree`."""
    proof = settlement_multiproof(tree, [lease.leaf for lease in leases])
    return [lease.args() for lease in _in_proof_order(leases, proof)], multiproof_args(proof)


def settle_call(
    lease_tree: StandardMerkleTree,
    usage_tree: StandardMerkleTree,
    usages: Sequence[tuple[SignedLease, SettlementLeaf]],
    *,
    with_signatures: bool = True,
) -> tuple[list[Any], list[tuple[int, bool]], Any, Any]:
    """`(leases, usages, leaseProof, usageProof)` for `settleLeases(batchId, usageBatchId, ...)`.

    `usages` pairs each lease (all of the batch whose tree is `lease_tree`) with its usage leaf in
    `usage_tree`. Leave `with_signatures` on when any lease may still be open (the call then locks it);
    leases already locked settle without them.
    """
    lease_proof, usage_proof = settle_multiproofs(lease_tree, usage_tree, [usage for _, usage in usages])
    ordered = _in_proof_order([lease for lease, _ in usages], usage_proof)
    return (
        [lease.args(with_signature=with_signatures) for lease in ordered],
        [(leaf.used_gpu_seconds, leaf.kind == LeafKind.FINAL_USAGE) for leaf in usage_proof.leaves],
        multiproof_args(lease_proof),
        multiproof_args(usage_proof),
    )


def reclaim_call(tree: StandardMerkleTree, leases: Sequence[SignedLease]) -> tuple[list[Any], Any]:
    """`(leases, proof)` for `reclaimLeases(batchId, leases, proof)`; locked leases need no signature."""
    proof = settlement_multiproof(tree, [lease.leaf for lease in leases])
    ordered = _in_proof_order(leases, proof)
    return [lease.args(with_signature=False) for lease in ordered], multiproof_args(proof)
