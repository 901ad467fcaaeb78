"""Leaves of a batch's settlement tree and the canonical order the matcher builds the tree in.

One encoding for every leaf (see `contracts/src/libraries/LeaseLeaf.sol`), told apart by `kind`: a lease leaf
(kind 0) commits a new lease in the batch that starts it; a usage leaf (kind 1, or 2 for the final one) in a
later batch commits the lease's cumulative proven GPU-seconds. `batch_id` is always the batch that committed
the lease, so the escrow knows when the lease started.

The escrow checks several leaves with one OpenZeppelin multiproof and takes the leaves in ascending leaf-index
order. Settlement trees are therefore built with `sort_leaves=False` in a canonical order (lease leaves
by lease id, then usage leaves by lease id): a provider's leases, sorted by lease id, then sit in the same
relative order in the tree that committed them and in the tree of their usage, so one array of leases
serves both multiproofs of `settleLeases`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from gpuspot.protocol import abi
from gpuspot.protocol.errors import AbiEncodingError, InvalidLeafError
from gpuspot.protocol.merkle import MultiProof, StandardMerkleTree, standard_leaf_hash
from gpuspot.protocol.orders import Bid, Eip712Domain, digest

__all__ = [
    "cost",
    "FINAL_USAGE",
    "LEAF_ENCODING",
    "LEASE",
    "USAGE",
    "LeafKind",
    "SettlementLeaf",
    "lease_leaf",
    "settlement_multiproof",
    "settlement_tree",
    "settle_multiproofs",
]

LEAF_ENCODING: list[str] = [
    "uint8",  # kind
    "uint64",  # batchId: the batch whose root committed the lease
    "uint64",  # leaseId
    "bytes32",  # bidDigest
    "address",  # buyer
    "address",  # provider
    "bytes32",  # product
    "uint16",  # gpus
    "uint32",  # duration
    "uint128",  # pricePerGpuHour
    "uint64",  # usedGpuSeconds
]


class LeafKind(IntEnum):
    """`LeaseLeaf.KIND_*` in the contract."""

    LEASE = 0
    USAGE = 1
    FINAL_USAGE = 2


LEASE = LeafKind.LEASE
USAGE = LeafKind.USAGE
FINAL_USAGE = LeafKind.FINAL_USAGE


@dataclass(frozen=True, slots=True)
class SettlementLeaf:
    """One leaf of a settlement tree, field for field the contract's `LeaseLeaf` encoding."""

    kind: int
    batch_id: int
    lease_id: int
    bid_digest: bytes
    buyer: str
    provider: str
    product: bytes
    gpus: int
    duration: int
    price_per_gpu_hour: int
    used_gpu_seconds: int

    def __post_init__(self) -> None:
        try:
            LeafKind(self.kind)
        except ValueError:
            raise InvalidLeafError(
                f"leaf kind must be 0 (lease), 1 (usage) or 2 (final usage), got {self.kind!r}"
            ) from None
        object.__setattr__(self, "kind", LeafKind(self.kind))
        try:
            abi.encode(LEAF_ENCODING, self.values())
            object.__setattr__(self, "buyer", abi.normalize_address(self.buyer, "buyer"))
            object.__setattr__(self, "provider", abi.normalize_address(self.provider, "provider"))
        except AbiEncodingError as exc:
            raise InvalidLeafError(f"settlement leaf of lease {self.lease_id!r}: {exc}") from None
        if self.kind == LeafKind.LEASE and self.used_gpu_seconds != 0:
            raise InvalidLeafError(
                f"lease leaf of lease {self.lease_id} has used_gpu_seconds {self.used_gpu_seconds}: "
                "a lease leaf commits no usage; use a usage leaf (kind 1 or 2) in a later batch"
            )

    def values(self) -> tuple[Any, ...]:
        """The leaf's values in `LEAF_ENCODING` order (what the tree hashes)."""
        return (
            int(self.kind),
            self.batch_id,
            self.lease_id,
            self.bid_digest,
            self.buyer,
            self.provider,
            self.product,
            self.gpus,
            self.duration,
            self.price_per_gpu_hour,
            self.used_gpu_seconds,
        )

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> SettlementLeaf:
        """The inverse of `values()`, e.g. for the values of a loaded tree dump."""
        if len(values) != len(LEAF_ENCODING):
            raise InvalidLeafError(f"a settlement leaf has {len(LEAF_ENCODING)} values, got {len(values)}")
        return cls(*values)

    def hash(self) -> bytes:
        """The leaf hash the escrow computes (`Escrow.leaseLeaf`)."""
        return standard_leaf_hash(LEAF_ENCODING, self.values())

    @property
    def is_usage(self) -> bool:
        return self.kind != LeafKind.LEASE

    def usage(self, used_gpu_seconds: int, *, final: bool = False) -> SettlementLeaf:
        """The usage leaf (kind 1, or 2 if `final`) of this lease, with cumulative `used_gpu_seconds`."""
        kind = LeafKind.FINAL_USAGE if final else LeafKind.USAGE
        return replace(self, kind=kind, used_gpu_seconds=used_gpu_seconds)

    def lease_leaf(self) -> SettlementLeaf:
        """The lease leaf (kind 0) of this leaf's lease, as the batch `batch_id` committed it."""
        return replace(self, kind=LeafKind.LEASE, used_gpu_seconds=0)


def cost(gpu_seconds: int, price_per_gpu_hour: int) -> int:
    """`gpuSeconds * price / 3600` rounded down, as the escrow's `LeaseMath.cost`: what proven usage pays
    (docs/protocol.md, "Money and units"). Monotone, so paying a cumulative figure in steps never pays more
    than its final cost."""
    return gpu_seconds * price_per_gpu_hour // 3600


def lease_leaf(
    bid: Bid,
    domain: Eip712Domain,
    *,
    batch_id: int,
    lease_id: int,
    provider: str,
    price_per_gpu_hour: int,
) -> SettlementLeaf:
    """The lease leaf committing a lease of `bid` in batch `batch_id` from `provider` at that price."""
    return SettlementLeaf(
        kind=LeafKind.LEASE,
        batch_id=batch_id,
        lease_id=lease_id,
        bid_digest=digest(bid, domain),
        buyer=bid.buyer,
        provider=provider,
        product=bid.product,
        gpus=bid.gpus,
        duration=bid.duration,
        price_per_gpu_hour=price_per_gpu_hour,
        used_gpu_seconds=0,
    )


def _canonical_key(leaf: SettlementLeaf) -> tuple[int, int]:
    return (0 if leaf.kind == LeafKind.LEASE else 1, leaf.lease_id)


def settlement_tree(leaves: Iterable[SettlementLeaf]) -> StandardMerkleTree:
    """The batch's settlement tree: lease leaves by lease id, then usage leaves by lease id, unsorted by hash.

    A lease may appear once as a lease leaf and once as a usage leaf per tree; a second one of either is an
    error, since the escrow could then be shown two different figures for the same lease in one batch.
    """
    ordered = sorted(leaves, key=_canonical_key)
    if not ordered:
        raise InvalidLeafError("a settlement tree needs at least one leaf: post no root for an empty batch")
    for previous, current in zip(ordered, ordered[1:], strict=False):
        if _canonical_key(previous) == _canonical_key(current):
            what = "usage" if current.is_usage else "lease"
            raise InvalidLeafError(
                f"lease {current.lease_id} has two {what} leaves in one batch: keep only the latest figure"
            )
    return StandardMerkleTree.of([leaf.values() for leaf in ordered], LEAF_ENCODING, sort_leaves=False)


def settlement_multiproof(tree: StandardMerkleTree, leaves: Iterable[SettlementLeaf]) -> MultiProof:
    """A multiproof of `leaves` in `tree`, whose `leaves` are the `SettlementLeaf`s in the order the escrow
    must receive them (ascending leaf index). Raises `MerkleTreeError` if a leaf is not in the tree."""
    proof = tree.get_multiproof([leaf.values() for leaf in leaves])
    return MultiProof(
        leaves=[SettlementLeaf.from_values(values) for values in proof.leaves],
        proof=proof.proof,
        proof_flags=proof.proof_flags,
    )


def settle_multiproofs(
    lease_tree: StandardMerkleTree, usage_tree: StandardMerkleTree, usage_leaves: Iterable[SettlementLeaf]
) -> tuple[MultiProof, MultiProof]:
    """The two multiproofs of one `settleLeases` call: the leases' lease leaves in `lease_tree`, and their
    usage leaves in `usage_tree`, both with leaves in one lease order that suits both proofs.

    Raises `InvalidLeafError` if the two trees order the leases differently (never the case for trees built by
    `settlement_tree`): split the call then.
    """
    usage = list(usage_leaves)
    if any(not leaf.is_usage for leaf in usage):
        raise InvalidLeafError(
            "settle_multiproofs takes usage leaves (kind 1 or 2); lease leaves are derived"
        )
    usage_proof = settlement_multiproof(usage_tree, usage)
    lease_proof = settlement_multiproof(lease_tree, [leaf.lease_leaf() for leaf in usage])
    lease_order = [leaf.lease_id for leaf in lease_proof.leaves]
    usage_order = [leaf.lease_id for leaf in usage_proof.leaves]
    if lease_order != usage_order:
        raise InvalidLeafError(
            f"the lease tree orders these leases {lease_order} but the usage tree {usage_order}: "
            "settle them in separate calls"
        )
    return lease_proof, usage_proof
