"""Who signed an order, fast: the EIP-712 digest of an already validated order, and the signer's address.

`gpuspot.protocol.digest` ABI-encodes through a general encoder that re-validates every field (an address is
re-checksummed, about a third of its cost); a `Bid` or `Ask` that exists has passed those checks at
construction, so here each member is written straight into its 32-byte word. Recovery returns the signer's raw
20 bytes, so the common case (signer == buyer/provider) compares bytes and never builds a checksum.

Results are byte for byte `gpuspot.protocol.digest` and `recover_signer` (property tests check both, and
check recovery against eth-account).
"""

from __future__ import annotations

import coincurve

from gpuspot.protocol.hashing import keccak256
from gpuspot.protocol.orders import ASK_TYPEHASH, BID_TYPEHASH, Ask, Bid, Order, Signature

__all__ = ["order_digest", "recover_address"]

_PAD12 = bytes(12)
_EIP712_PREFIX = b"\x19\x01"


def _bid_struct_hash(bid: Bid) -> bytes:
    return keccak256(
        b"".join(
            (
                BID_TYPEHASH,
                _PAD12,
                bytes.fromhex(bid.buyer[2:]),
                bid.product,
                bid.gpus.to_bytes(32, "big"),
                bid.duration.to_bytes(32, "big"),
                bid.max_price_per_gpu_hour.to_bytes(32, "big"),
                bid.job_spec_hash,
                bid.nonce.to_bytes(32, "big"),
                bid.expiry.to_bytes(32, "big"),
            )
        )
    )


def _ask_struct_hash(ask: Ask) -> bytes:
    return keccak256(
        b"".join(
            (
                ASK_TYPEHASH,
                _PAD12,
                bytes.fromhex(ask.provider[2:]),
                ask.product,
                ask.host_id,
                ask.gpus.to_bytes(32, "big"),
                ask.max_duration.to_bytes(32, "big"),
                ask.min_price_per_gpu_hour.to_bytes(32, "big"),
                ask.nonce.to_bytes(32, "big"),
                ask.expiry.to_bytes(32, "big"),
            )
        )
    )


def order_digest(order: Order, domain_separator: bytes) -> bytes:
    """`gpuspot.protocol.digest(order, domain)` for `domain_separator = domain.separator`."""
    struct = _bid_struct_hash(order) if isinstance(order, Bid) else _ask_struct_hash(order)
    return keccak256(_EIP712_PREFIX + domain_separator + struct)


def recover_address(message_digest: bytes, signature: Signature) -> bytes | None:
    """The 20-byte address whose key made `signature` over `message_digest`; None if it recovers no key."""
    value = signature.value
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            value[:64] + bytes((value[64] - 27,)), message_digest, hasher=None
        )
    except ValueError:
        return None
    return keccak256(public.format(compressed=False)[1:])[12:]
