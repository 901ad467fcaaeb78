"""keccak256 through the fastest backend at hand.

`safe-pysha3` (a declared dependency, imported as `sha3`) hashes about 8x faster than the pycryptodome backend
that eth-hash picks by default, which matters for Merkle trees of 10k+ leaves; eth-hash remains the fallback.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["keccak256"]


def _pick_backend() -> Callable[[bytes], bytes]:
    try:
        from sha3 import keccak_256  # safe-pysha3
    except ImportError:  # pragma: no cover - depends on the environment
        from eth_hash.auto import keccak

        return keccak

    def pysha3_keccak(data: bytes) -> bytes:
        return keccak_256(data).digest()  # type: ignore[no-any-return]

    return pysha3_keccak


keccak256: Callable[[bytes], bytes] = _pick_backend()
"""keccak256 of `data` (Ethereum's hash, not NIST SHA3-256), as 32 bytes."""
