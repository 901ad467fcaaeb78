"""The gpuspot protocol: what the contracts, the matcher, the provider agent and buyers must agree on,
byte for byte, as pure functions over plain data (no I/O).

- `products`: product ids (`keccak256` of a catalog name).
- `orders`: bids and asks as EIP-712 typed data: validation, digests, signatures, canonical JSON.
- `merkle`: OpenZeppelin's `StandardMerkleTree`, ported exactly (proofs, multiproofs, dumps).
- `leaves`: settlement leaves and the canonical settlement tree the escrow verifies against.
- `calls`: the arguments of the escrow's lock, settle and reclaim calls, in multiproof order.
- `challenge`: proof-of-GPU-work challenges (seeded matrices, answers, row openings, Freivalds verdicts);
  import the module (`from gpuspot.protocol import challenge`): its names are short and it needs numpy.
"""

from gpuspot.protocol.calls import SignedLease, lock_call, multiproof_args, reclaim_call, settle_call
from gpuspot.protocol.errors import (
    AbiEncodingError,
    InvalidLeafError,
    InvalidOrderError,
    InvalidSignatureError,
    MerkleTreeError,
    OrderJsonError,
    ProtocolError,
)
from gpuspot.protocol.hashing import keccak256
from gpuspot.protocol.leaves import (
    FINAL_USAGE,
    LEAF_ENCODING,
    LEASE,
    USAGE,
    LeafKind,
    SettlementLeaf,
    cost,
    lease_leaf,
    settle_multiproofs,
    settlement_multiproof,
    settlement_tree,
)
from gpuspot.protocol.merkle import MultiProof, StandardMerkleTree
from gpuspot.protocol.orders import (
    ASK_TYPE,
    ASK_TYPEHASH,
    BID_TYPE,
    BID_TYPEHASH,
    DOMAIN_NAME,
    DOMAIN_VERSION,
    Ask,
    Bid,
    Eip712Domain,
    Order,
    Signature,
    cancellation_message,
    digest,
    from_dict,
    from_json,
    order_hash,
    recover_signer,
    sign,
    struct_hash,
    to_json,
    typed_data,
)
from gpuspot.protocol.products import product_id

__all__ = [
    "SignedLease",
    "lock_call",
    "multiproof_args",
    "reclaim_call",
    "settle_call",
    "ASK_TYPE",
    "ASK_TYPEHASH",
    "BID_TYPE",
    "BID_TYPEHASH",
    "cancellation_message",
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "FINAL_USAGE",
    "LEAF_ENCODING",
    "LEASE",
    "USAGE",
    "AbiEncodingError",
    "Ask",
    "Bid",
    "Eip712Domain",
    "InvalidLeafError",
    "InvalidOrderError",
    "InvalidSignatureError",
    "LeafKind",
    "MerkleTreeError",
    "MultiProof",
    "Order",
    "OrderJsonError",
    "ProtocolError",
    "SettlementLeaf",
    "Signature",
    "StandardMerkleTree",
    "digest",
    "from_dict",
    "from_json",
    "keccak256",
    "lease_leaf",
    "order_hash",
    "product_id",
    "recover_signer",
    "sign",
    "cost",
    "settle_multiproofs",
    "settlement_multiproof",
    "settlement_tree",
    "struct_hash",
    "to_json",
    "typed_data",
]
