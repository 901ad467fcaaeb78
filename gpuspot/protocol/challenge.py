"""Proof of GPU work: seeded integer matrix challenges, their answers, and Freivalds verification.

A challenge names a lease, a sequence number, a recent block hash and a size n. Its seed is
`keccak256(abi.encode(CHALLENGE_SEED_TAG, blockHash, uint64 leaseId, uint64 sequence))`; the matrices A and B
(n x n, int8) are expanded from the seed with Philox4x32-10; the answer is C = A @ B in int32, committed to
by a Merkle root over its rows. The verifier checks C, or k rows of it opened against the root, with
Freivalds' method in exact int64 arithmetic, using randomness drawn only after the root is fixed.

Everything that decides pass or fail is integer arithmetic and keccak256; times are integer milliseconds.
The construction, its bounds and what it proves are in docs/proof-of-work.md; this module is the reference
that the matcher, the provider agent and anyone re-checking a verdict share.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gpuspot.protocol import abi
from gpuspot.protocol.errors import ProtocolError
from gpuspot.protocol.hashing import keccak256
from gpuspot.protocol.merkle import get_proof, make_merkle_tree, process_proof

__all__ = [
    "AUDIT_SEED_TAG",
    "CHALLENGE_SEED_TAG",
    "DEFAULT_DEADLINE_MS",
    "DEFAULT_N",
    "DEFAULT_OPENED_ROWS",
    "DEFAULT_ROUNDS",
    "ENTRY_MAX",
    "ENTRY_MIN",
    "MAX_N",
    "MAX_OPENED_ROWS",
    "MAX_PRODUCT_RESPONSE_N",
    "MIN_N",
    "N_MULTIPLE",
    "PRODUCT_BOUND",
    "ROW_LEAF_TAG",
    "Answer",
    "Audit",
    "Challenge",
    "InvalidChallengeError",
    "MalformedAnswerError",
    "MatmulBackend",
    "MatmulBackendError",
    "OpenedRow",
    "Outcome",
    "ProductResponse",
    "RowOpening",
    "Verdict",
    "answer",
    "challenge_matrices",
    "challenge_rows",
    "challenge_seed",
    "draw_audit",
    "numpy_matmul",
    "philox4x32_10",
    "product_bytes",
    "product_root",
    "row_leaf",
    "verify",
    "verify_opening",
]

Int8Matrix = npt.NDArray[np.int8]
Int32Matrix = npt.NDArray[np.int32]
Int64Matrix = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

# Domain tags: 32-byte hashes of their source strings, so Solidity's abi.encode can reproduce each preimage.
CHALLENGE_SEED_TAG = keccak256(b"gpuspot.challenge.seed.v1")
AUDIT_SEED_TAG = keccak256(b"gpuspot.challenge.audit.v1")
ROW_LEAF_TAG = keccak256(b"gpuspot.challenge.row.v1")

# Entries of A and B are every int8 value; |a * b| <= 2^14, reached only by (-128) * (-128).
ENTRY_MIN, ENTRY_MAX = -128, 127
_ENTRY_PRODUCT_MAX = ENTRY_MIN * ENTRY_MIN
MIN_N, MAX_N, N_MULTIPLE = 16, 16_384, 16
PRODUCT_BOUND = MAX_N * _ENTRY_PRODUCT_MAX
"""The largest |C_ij| any challenge can have: 2^28, so every product entry is an exact int32."""
# Freivalds vectors have entries in [0, 2^16): one round misses a wrong row with probability <= 2^-16.
_VECTOR_BITS = 16
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# int64 bounds of the check, for the largest n and a hostile C (any int32 entries):
#   |B x| <= n * 2^7 * 2^16,  |A (B x)| <= n * 2^7 * |B x|,  |C x| <= n * 2^31 * 2^16.
_BX_BOUND = MAX_N * -ENTRY_MIN * (2**_VECTOR_BITS - 1)
assert PRODUCT_BOUND <= _INT32_MAX
assert MAX_N * -ENTRY_MIN * _BX_BOUND <= _INT64_MAX
assert MAX_N * 2**31 * (2**_VECTOR_BITS - 1) <= _INT64_MAX
# The numpy reference multiplies in float64: exact while every partial sum stays below 2^53.
assert PRODUCT_BOUND < 2**53

DEFAULT_N = 8_192
DEFAULT_DEADLINE_MS = 5_000
DEFAULT_OPENED_ROWS = 32
DEFAULT_ROUNDS = 2
MAX_OPENED_ROWS = 256
MAX_ROUNDS = 64
MAX_PRODUCT_RESPONSE_N = 4_096
"""Whole products travel only up to this n (64 MiB); larger challenges are answered by row openings."""
_MAX_PROOF_NODES = 32

_STREAM_A, _STREAM_B, _STREAM_VECTORS = 0, 1, 2
_CHUNK_ENTRIES = 1 << 20  # generate and convert in ~1 MiB pieces: cache-sized, memory-bounded


class InvalidChallengeError(ProtocolError, ValueError):
    """A challenge parameter (or a verifier's own input) is out of range: fix the caller."""


class MalformedAnswerError(ProtocolError, ValueError):
    """A response or opening does not parse or does not have the shape the wire form requires."""


class MatmulBackendError(ProtocolError, ValueError):
    """A matmul backend returned something other than the exact n x n integer product."""


def _check_uint(name: str, value: object, bits: int, error: type[ProtocolError]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise error(f"{name} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def _check_bytes32(name: str, value: object, error: type[ProtocolError]) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise error(f"{name} must be 32 bytes, got {value!r}")
    return value


def _check_n(n: object, error: type[ProtocolError]) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_N <= n <= MAX_N or n % N_MULTIPLE:
        raise error(
            f"matrix size n must be a multiple of {N_MULTIPLE} in [{MIN_N}, {MAX_N}], got {n!r} "
            f"(the bound keeps every product entry within +-{PRODUCT_BOUND}, an exact int32)"
        )
    return n


# --- the challenge ----------------------------------------------------------------------------------------


def challenge_seed(block_hash: bytes, lease_id: int, sequence: int) -> bytes:
    """`keccak256(abi.encode(CHALLENGE_SEED_TAG, blockHash, uint64 leaseId, uint64 sequence))`: unknown until
    the block exists, and different for every lease and every challenge of a lease."""
    _check_bytes32("block_hash", block_hash, InvalidChallengeError)
    _check_uint("lease_id", lease_id, 64, InvalidChallengeError)
    _check_uint("sequence", sequence, 64, InvalidChallengeError)
    return keccak256(
        abi.encode(
            ["bytes32", "bytes32", "uint64", "uint64"], [CHALLENGE_SEED_TAG, block_hash, lease_id, sequence]
        )
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """One proof-of-work challenge for a lease. `seed` is derived, never given, so anyone holding the
    challenge's public fields re-derives the same matrices. Times are Unix milliseconds on the verifier's
    clock; the answer (or the root, for openings) is due `deadline_ms` after `issued_at_ms`."""

    lease_id: int
    sequence: int
    block_hash: bytes
    n: int
    issued_at_ms: int
    deadline_ms: int
    seed: bytes = field(init=False)

    def __post_init__(self) -> None:
        _check_n(self.n, InvalidChallengeError)
        _check_uint("issued_at_ms", self.issued_at_ms, 63, InvalidChallengeError)
        if _check_uint("deadline_ms", self.deadline_ms, 32, InvalidChallengeError) == 0:
            raise InvalidChallengeError(
                "deadline_ms must be positive: a challenge nobody can answer is useless"
            )
        object.__setattr__(self, "seed", challenge_seed(self.block_hash, self.lease_id, self.sequence))

    @classmethod
    def derive(
        cls,
        block_hash: bytes,
        lease_id: int,
        sequence: int,
        n: int = DEFAULT_N,
        *,
        issued_at_ms: int,
        deadline_ms: int = DEFAULT_DEADLINE_MS,
    ) -> Challenge:
        """The challenge number `sequence` of `lease_id`, seeded by `block_hash` (a recent block's)."""
        return cls(lease_id, sequence, block_hash, n, issued_at_ms, deadline_ms)

    @property
    def due_at_ms(self) -> int:
        """The last millisecond at which an answer still counts."""
        return self.issued_at_ms + self.deadline_ms


# --- the generator ----------------------------------------------------------------------------------------

_PHILOX_M0, _PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
_MASK32, _SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)


def philox4x32_10(
    counter: tuple[UInt64Array | int, UInt64Array | int, UInt64Array | int, UInt64Array | int],
    key: tuple[int, int],
) -> tuple[UInt64Array, UInt64Array, UInt64Array, UInt64Array]:
    """Philox4x32-10 (Salmon et al., SC'11; the Random123 reference), vectorised: each counter word is an
    array (or a scalar, broadcast) of 32-bit values held in uint64, so that the 32 x 32 -> 64-bit products
    need no wider type. Returns the four output words. Counter-based, so any block is computed on its own:
    the provider's GPU, the verifier's CPU and a partial re-check all get the same bytes.

    One round, with M0 = 0xD2511F53 and M1 = 0xCD9E8D57, is `p0 = M0 * c0, p1 = M1 * c2;
    (c0, c1, c2, c3) = (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0))`; before rounds 2 to 10 the key
    is bumped by (0x9E3779B9, 0xBB67AE85) mod 2^32. Written in place: about a third faster than fresh arrays.
    """
    shape = np.broadcast_shapes(*(np.shape(word) for word in counter))
    c0, c1, c2, c3 = (np.array(np.broadcast_to(word, shape), dtype=np.uint64) for word in counter)
    p0, p1 = np.empty(shape, dtype=np.uint64), np.empty(shape, dtype=np.uint64)
    k0, k1 = key
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + _PHILOX_W0) & 0xFFFFFFFF, (k1 + _PHILOX_W1) & 0xFFFFFFFF
        np.multiply(c0, _PHILOX_M0, out=p0)
        np.multiply(c2, _PHILOX_M1, out=p1)
        np.right_shift(p1, _SHIFT32, out=c0)
        c0 ^= c1
        c0 ^= np.uint64(k0)
        np.right_shift(p0, _SHIFT32, out=c2)
        c2 ^= c3
        c2 ^= np.uint64(k1)
        np.bitwise_and(p1, _MASK32, out=c1)
        np.bitwise_and(p0, _MASK32, out=c3)
    return c0, c1, c2, c3


def _stream_bytes(seed: bytes, stream: int, blocks: UInt64Array) -> npt.NDArray[np.uint8]:
    """16 bytes per block index: the Philox words, little-endian, for key (w0, w1) and counter
    (block, stream, w2, w3), where w0..w3 are the seed's first 16 bytes read as little-endian uint32."""
    w0, w1, w2, w3 = struct.unpack_from("<4I", seed)
    words = philox4x32_10((blocks, stream, w2, w3), (w0, w1))
    out = np.empty((blocks.shape[0], 4), dtype="<u4")
    for i, word in enumerate(words):
        out[:, i] = word
    return out.view(np.uint8).reshape(-1)


def _matrix(seed: bytes, stream: int, n: int, rows: npt.NDArray[np.int64]) -> Int8Matrix:
    """Given rows of the n x n matrix of `stream`: entry (i, j) is byte i * n + j of the stream, as int8."""
    blocks_per_row = n // 16
    out = np.empty((rows.shape[0], n), dtype=np.int8)
    step = max(1, _CHUNK_ENTRIES // n)
    per_row = np.arange(blocks_per_row, dtype=np.uint64)
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step].astype(np.uint64)
        blocks = (chunk[:, None] * np.uint64(blocks_per_row) + per_row).reshape(-1)
        out[start : start + step] = _stream_bytes(seed, stream, blocks).view(np.int8).reshape(-1, n)
    return out


def challenge_matrices(challenge: Challenge) -> tuple[Int8Matrix, Int8Matrix]:
    """A and B of the challenge: n x n int8, row-major, from Philox streams 0 (A) and 1 (B) of its seed."""
    every_row = np.arange(challenge.n, dtype=np.int64)
    return (
        _matrix(challenge.seed, _STREAM_A, challenge.n, every_row),
        _matrix(challenge.seed, _STREAM_B, challenge.n, every_row),
    )


def challenge_rows(challenge: Challenge, rows: Sequence[int]) -> Int8Matrix:
    """Only the given rows of A: what a row-opening verifier needs, at O(n) per row instead of O(n^2)."""
    for row in rows:
        if not isinstance(row, int) or not 0 <= row < challenge.n:
            raise InvalidChallengeError(f"row {row!r} is not a row of an n = {challenge.n} matrix")
    return _matrix(challenge.seed, _STREAM_A, challenge.n, np.asarray(rows, dtype=np.int64).reshape(-1))


# --- the answer -------------------------------------------------------------------------------------------


class MatmulBackend(Protocol):
    """Multiplies two n x n int8 matrices exactly and returns the n x n integer product on the host. The
    provider agent plugs its GPU here (e.g. `torch._int_mm` on CUDA); `numpy_matmul` is the CPU reference."""

    def __call__(self, a: Int8Matrix, b: Int8Matrix, /) -> npt.NDArray[np.integer[Any]]: ...


def numpy_matmul(a: Int8Matrix, b: Int8Matrix) -> Int32Matrix:
    """The CPU reference: float64 BLAS, exact here because every partial sum is an integer of magnitude at
    most n * 2^14 <= 2^28, far inside float64's 2^53 (whatever order or fused operations BLAS uses)."""
    product = a.astype(np.float64) @ b.astype(np.float64)
    return product.astype(np.int32)


def product_bytes(product: npt.NDArray[np.integer[Any]]) -> bytes:
    """The canonical encoding of C: int32 little-endian, row-major, no header (n comes with the message)."""
    return np.ascontiguousarray(product, dtype="<i4").tobytes()


def row_leaf(n: int, index: int, row: bytes) -> bytes:
    """`keccak256(abi.encodePacked(ROW_LEAF_TAG, uint32 n, uint32 index, row))`, row = 4n bytes of int32 LE.
    The index inside the leaf binds each row to its position, so proofs need no left/right bits."""
    return keccak256(ROW_LEAF_TAG + struct.pack(">II", n, index) + row)


def _row_tree(n: int, data: bytes) -> list[bytes]:
    width = 4 * n
    view = memoryview(data)
    return make_merkle_tree([row_leaf(n, i, bytes(view[i * width : (i + 1) * width])) for i in range(n)])


def product_root(product: npt.NDArray[np.integer[Any]]) -> bytes:
    """The commitment to C: the root of the tree over `row_leaf`s in row order, built like the settlement
    trees (OpenZeppelin layout and commutative node hash, `gpuspot.protocol.merkle`)."""
    return _row_tree(product.shape[0], product_bytes(product))[0]


@dataclass(frozen=True, slots=True)
class ProductResponse:
    """A whole product with its root: the simple answer, for n <= MAX_PRODUCT_RESPONSE_N.

    Wire form (`to_bytes`): `"GSPR" | uint8 version=1 | uint64 leaseId | uint64 sequence | uint32 n | bytes32
    root` (big-endian, 57 bytes), then the n^2 entries of C as int32 little-endian, row-major. In JSON it
    travels as standard base64 of those bytes."""

    lease_id: int
    sequence: int
    n: int
    root: bytes
    product: bytes

    MAGIC = b"GSPR"
    _HEADER = struct.Struct(">4sBQQI32s")

    def __post_init__(self) -> None:
        _check_uint("lease_id", self.lease_id, 64, MalformedAnswerError)
        _check_uint("sequence", self.sequence, 64, MalformedAnswerError)
        _check_n(self.n, MalformedAnswerError)
        if self.n > MAX_PRODUCT_RESPONSE_N:
            raise MalformedAnswerError(
                f"a whole product travels only for n <= {MAX_PRODUCT_RESPONSE_N}, got n = {self.n}: "
                "answer larger challenges with a root and a row opening"
            )
        _check_bytes32("root", self.root, MalformedAnswerError)
        if not isinstance(self.product, bytes) or len(self.product) != 4 * self.n * self.n:
            got = len(self.product) if isinstance(self.product, bytes) else type(self.product).__name__
            raise MalformedAnswerError(f"product must be 4 * n^2 = {4 * self.n * self.n} bytes, got {got}")

    @classmethod
    def max_size(cls) -> int:
        """The largest wire form accepted: header plus a MAX_PRODUCT_RESPONSE_N product (64 MiB + 57)."""
        return cls._HEADER.size + 4 * MAX_PRODUCT_RESPONSE_N**2

    def to_bytes(self) -> bytes:
        return (
            self._HEADER.pack(self.MAGIC, 1, self.lease_id, self.sequence, self.n, self.root) + self.product
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ProductResponse:
        """Parses the wire form; raises `MalformedAnswerError` for anything else (checked before copying)."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) < cls._HEADER.size:
            raise MalformedAnswerError(f"a product response has a {cls._HEADER.size}-byte header at least")
        if len(data) > cls.max_size():
            raise MalformedAnswerError(
                f"a product response is at most {cls.max_size()} bytes, got {len(data)}"
            )
        magic, version, lease_id, sequence, n, root = cls._HEADER.unpack_from(data)
        if magic != cls.MAGIC or version != 1:
            raise MalformedAnswerError(
                f"not a version-1 product response (magic {magic!r}, version {version})"
            )
        return cls(lease_id, sequence, n, root, bytes(data[cls._HEADER.size :]))

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @classmethod
    def from_base64(cls, text: str) -> ProductResponse:
        if not isinstance(text, str) or len(text) > 4 * (cls.max_size() + 2) // 3:
            raise MalformedAnswerError("a product response in base64 must be a string within the size bound")
        try:
            return cls.from_bytes(base64.b64decode(text, validate=True))
        except binascii.Error as exc:
            raise MalformedAnswerError(f"a product response is not valid base64: {exc}") from None


@dataclass(frozen=True, slots=True)
class OpenedRow:
    """Row `index` of C (4n bytes, int32 LE) and its Merkle proof against the committed root."""

    index: int
    values: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RowOpening:
    """The audited rows of a committed product, in the order the audit drew them.

    Wire form (`to_bytes`): `"GSRO" | uint8 version=1 | uint64 leaseId | uint64 sequence | uint32 n |
    uint16 count` (big-endian), then per row `uint32 index | uint8 proofLength | proof nodes (32 bytes each)
    | 4n bytes of int32 LE`. At most MAX_OPENED_ROWS rows and 32 proof nodes per row."""

    lease_id: int
    sequence: int
    n: int
    rows: tuple[OpenedRow, ...]

    MAGIC = b"GSRO"
    _HEADER = struct.Struct(">4sBQQIH")
    _ROW = struct.Struct(">IB")

    def __post_init__(self) -> None:
        _check_uint("lease_id", self.lease_id, 64, MalformedAnswerError)
        _check_uint("sequence", self.sequence, 64, MalformedAnswerError)
        _check_n(self.n, MalformedAnswerError)
        if not isinstance(self.rows, tuple) or not 0 < len(self.rows) <= MAX_OPENED_ROWS:
            raise MalformedAnswerError(f"an opening has 1 to {MAX_OPENED_ROWS} rows (as a tuple)")
        for row in self.rows:
            if not isinstance(row, OpenedRow):
                raise MalformedAnswerError(f"opened rows must be OpenedRow, got {type(row).__name__}")
            if not isinstance(row.index, int) or not 0 <= row.index < self.n:
                raise MalformedAnswerError(f"opened row index {row.index!r} is not a row of n = {self.n}")
            if not isinstance(row.values, bytes) or len(row.values) != 4 * self.n:
                raise MalformedAnswerError(f"opened row {row.index} must be 4n = {4 * self.n} bytes")
            if not isinstance(row.proof, tuple) or len(row.proof) > _MAX_PROOF_NODES:
                raise MalformedAnswerError(
                    f"the proof of row {row.index} has too many nodes (or is no tuple)"
                )
            for node in row.proof:
                _check_bytes32(f"a proof node of row {row.index}", node, MalformedAnswerError)

    def to_bytes(self) -> bytes:
        parts = [self._HEADER.pack(self.MAGIC, 1, self.lease_id, self.sequence, self.n, len(self.rows))]
        for row in self.rows:
            parts += [self._ROW.pack(row.index, len(row.proof)), *row.proof, row.values]
        return b"".join(parts)

    @classmethod
    def max_size(cls, n: int) -> int:
        """The largest wire form for size n: header plus MAX_OPENED_ROWS rows with full-length proofs."""
        return cls._HEADER.size + MAX_OPENED_ROWS * (cls._ROW.size + 32 * _MAX_PROOF_NODES + 4 * n)

    @classmethod
    def from_bytes(cls, data: bytes) -> RowOpening:
        """Parses the wire form; raises `MalformedAnswerError` for anything else."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) < cls._HEADER.size:
            raise MalformedAnswerError(f"a row opening has a {cls._HEADER.size}-byte header at least")
        if len(data) > cls.max_size(MAX_N):
            raise MalformedAnswerError(
                f"a row opening is at most {cls.max_size(MAX_N)} bytes, got {len(data)}"
            )
        magic, version, lease_id, sequence, n, count = cls._HEADER.unpack_from(data)
        if magic != cls.MAGIC or version != 1:
            raise MalformedAnswerError(f"not a version-1 row opening (magic {magic!r}, version {version})")
        _check_n(n, MalformedAnswerError)
        view, offset, rows = memoryview(data), cls._HEADER.size, []
        for _ in range(count):
            if offset + cls._ROW.size > len(view):
                raise MalformedAnswerError("a row opening ends inside a row header")
            index, proof_length = cls._ROW.unpack_from(view, offset)
            offset += cls._ROW.size
            end = offset + 32 * proof_length + 4 * n
            if end > len(view):
                raise MalformedAnswerError(f"a row opening ends inside row {index}")
            proof = tuple(bytes(view[offset + 32 * i : offset + 32 * (i + 1)]) for i in range(proof_length))
            rows.append(OpenedRow(index, bytes(view[end - 4 * n : end]), proof))
            offset = end
        if offset != len(view):
            raise MalformedAnswerError(f"a row opening has {len(view) - offset} trailing bytes")
        return cls(lease_id, sequence, n, tuple(rows))


@dataclass(frozen=True, slots=True, eq=False)
class Answer:
    """The prover's side of a challenge: C and its row tree, kept until the verifier's audit arrives."""

    challenge: Challenge
    product: Int32Matrix
    tree: tuple[bytes, ...]

    @property
    def root(self) -> bytes:
        """The commitment to send before the deadline."""
        return self.tree[0]

    def response(self) -> ProductResponse:
        """The whole product with its root (only for n <= MAX_PRODUCT_RESPONSE_N)."""
        c = self.challenge
        return ProductResponse(c.lease_id, c.sequence, c.n, self.root, product_bytes(self.product))

    def open(self, rows: Sequence[int]) -> RowOpening:
        """The given rows (usually `draw_audit(...).rows`) with their Merkle proofs."""
        c = self.challenge
        opened = []
        for index in rows:
            if not isinstance(index, int) or not 0 <= index < c.n:
                raise InvalidChallengeError(f"row {index!r} is not a row of an n = {c.n} product")
            proof = get_proof(self.tree, len(self.tree) - 1 - index)
            opened.append(OpenedRow(index, product_bytes(self.product[index]), tuple(proof)))
        return RowOpening(c.lease_id, c.sequence, c.n, tuple(opened))


def answer(challenge: Challenge, backend: MatmulBackend = numpy_matmul) -> Answer:
    """Generates A and B, multiplies them with `backend`, and commits to the product. Refuses a backend
    result that is not an n x n integer array within the product bound, so a broken GPU path is caught
    here rather than as a failed challenge."""
    a, b = challenge_matrices(challenge)
    n = challenge.n
    raw = backend(a, b)
    if not isinstance(raw, np.ndarray) or raw.shape != (n, n) or raw.dtype.kind not in "iu":
        described = f"{raw.dtype} {raw.shape}" if isinstance(raw, np.ndarray) else type(raw).__name__
        raise MatmulBackendError(f"the backend must return an {n} x {n} integer array, got {described}")
    bound = n * _ENTRY_PRODUCT_MAX
    if raw.size and (int(raw.max()) > bound or int(raw.min()) < -bound):
        raise MatmulBackendError(f"the backend's product has entries beyond +-{bound}: it is not A @ B")
    product = np.ascontiguousarray(raw, dtype=np.int32)
    return Answer(challenge, product, tuple(_row_tree(n, product_bytes(product))))


# --- verification -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Audit:
    """The verifier's randomness for one answer: rows to open and the Freivalds vectors (n x rounds, entries
    in [0, 2^16)). Derived from `keccak256(AUDIT_SEED_TAG || challenge seed || root || verifier seed)`, so it
    is fixed only once the root is, and anyone given the verifier seed re-derives it."""

    seed: bytes
    rows: tuple[int, ...]
    vectors: Int64Matrix


def draw_audit(
    challenge: Challenge,
    root: bytes,
    verifier_seed: bytes,
    *,
    rows: int = DEFAULT_OPENED_ROWS,
    rounds: int = DEFAULT_ROUNDS,
) -> Audit:
    """The audit of `root`. Row t is `uint256(keccak256(audit seed || uint32 t)) mod n` for t = 0, 1, ...,
    skipping repeats until `rows` distinct rows are drawn; vector entries are the little-endian uint16s of
    Philox stream 2 under the audit seed, vector j taking entries j * n to (j + 1) * n - 1."""
    _check_bytes32("root", root, MalformedAnswerError)
    _check_bytes32("verifier_seed", verifier_seed, InvalidChallengeError)
    n = challenge.n
    if not isinstance(rows, int) or not 0 <= rows <= min(n, MAX_OPENED_ROWS):
        raise InvalidChallengeError(f"rows must be in [0, {min(n, MAX_OPENED_ROWS)}], got {rows!r}")
    if not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise InvalidChallengeError(f"rounds must be in [1, {MAX_ROUNDS}], got {rounds!r}")
    seed = keccak256(AUDIT_SEED_TAG + challenge.seed + root + verifier_seed)
    drawn: list[int] = []
    counter = 0
    while len(drawn) < rows:
        row = int.from_bytes(keccak256(seed + counter.to_bytes(4, "big")), "big") % n
        counter += 1
        if row not in drawn:
            drawn.append(row)
    blocks = np.arange(n * rounds // 8, dtype=np.uint64)  # 8 uint16 per 16-byte block; n % 16 == 0
    entries = _stream_bytes(seed, _STREAM_VECTORS, blocks).view("<u2").astype(np.int64)
    return Audit(seed, tuple(drawn), entries.reshape(rounds, n).T.copy())


class Outcome(StrEnum):
    PASSED = "passed"
    LATE = "late"
    MALFORMED = "malformed"
    WRONG_COMMITMENT = "wrong_commitment"
    WRONG_PRODUCT = "wrong_product"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the verifier concluded and why, in words fit for a log line or an explorer page."""

    outcome: Outcome
    reason: str

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


def _exact_product(m: npt.NDArray[np.integer[Any]], x: Int64Matrix) -> Int64Matrix:
    """m @ x in int64, converting m a slice of rows at a time so memory stays bounded; the module's
    assertions show that no entry can overflow."""
    out = np.empty((m.shape[0], x.shape[1]), dtype=np.int64)
    step = max(1, _CHUNK_ENTRIES // max(1, m.shape[1]))
    for start in range(0, m.shape[0], step):
        out[start : start + step] = m[start : start + step].astype(np.int64) @ x
    return out


def _freivalds(a_rows: Int8Matrix, b: Int8Matrix, c_rows: Int32Matrix, x: Int64Matrix) -> int | None:
    """Position of the first row where A_S (B x) != C_S x, or None.
    O(n^2 r) for B x, O(|S| n r) for the rest."""
    left = _exact_product(a_rows, _exact_product(b, x))
    right = _exact_product(c_rows, x)
    wrong = np.flatnonzero((left != right).any(axis=1))
    return int(wrong[0]) if wrong.size else None


def _late(challenge: Challenge, at_ms: int, what: str) -> Verdict | None:
    _check_uint(f"{what}_at_ms", at_ms, 63, InvalidChallengeError)
    if at_ms < challenge.issued_at_ms:
        raise InvalidChallengeError(
            f"{what}_at_ms {at_ms} precedes issued_at_ms {challenge.issued_at_ms}: pass the verifier's "
            "receive time on the clock that issued the challenge"
        )
    elapsed = at_ms - challenge.issued_at_ms
    if elapsed > challenge.deadline_ms:
        return Verdict(Outcome.LATE, f"{what} {elapsed} ms after issue, deadline {challenge.deadline_ms} ms")
    return None


def _mismatch(challenge: Challenge, lease_id: int, sequence: int, n: int) -> Verdict | None:
    if (lease_id, sequence, n) != (challenge.lease_id, challenge.sequence, challenge.n):
        return Verdict(
            Outcome.MALFORMED,
            f"answers lease {lease_id} challenge {sequence} with n = {n}, but the challenge is lease "
            f"{challenge.lease_id} challenge {challenge.sequence} with n = {challenge.n}",
        )
    return None


def verify(
    challenge: Challenge,
    response: ProductResponse,
    *,
    answered_at_ms: int,
    verifier_seed: bytes,
    rounds: int = DEFAULT_ROUNDS,
) -> Verdict:
    """Checks a whole-product answer: it is for this challenge, on time, its root is the root of its rows,
    and Freivalds with `rounds` vectors accepts every row (a wrong product passes with probability at most
    2^(-16 * rounds)). `verifier_seed` must be unknown to the prover until its answer is in. O(rounds n^2)
    plus the matrices' generation and the hashing of C."""
    found = _mismatch(challenge, response.lease_id, response.sequence, response.n)
    found = found or _late(challenge, answered_at_ms, "answered")
    if found:
        return found
    audit = draw_audit(challenge, response.root, verifier_seed, rows=0, rounds=rounds)
    n = challenge.n
    if _row_tree(n, response.product)[0] != response.root:
        return Verdict(Outcome.WRONG_COMMITMENT, "the root is not the root of the product's rows")
    a, b = challenge_matrices(challenge)
    c = np.frombuffer(response.product, dtype="<i4").reshape(n, n)
    wrong = _freivalds(a, b, c, audit.vectors)
    if wrong is not None:
        return Verdict(Outcome.WRONG_PRODUCT, f"row {wrong} of the product is not row {wrong} of A @ B")
    return Verdict(Outcome.PASSED, f"product correct ({rounds} Freivalds rounds), answered on time")


def verify_opening(
    challenge: Challenge,
    root: bytes,
    opening: RowOpening,
    *,
    committed_at_ms: int,
    verifier_seed: bytes,
    rows: int = DEFAULT_OPENED_ROWS,
    rounds: int = DEFAULT_ROUNDS,
) -> Verdict:
    """Checks a root sent by the deadline and its opening of the audited rows: each row proven against the
    root, then A_S (B x) = C_S x. A prover whose tree holds the right row for a fraction f of indices passes
    with probability at most f^rows + 2^(-16 * rounds). O(rounds n^2) for B and B x, O(rows n) for the
    rest."""
    _check_bytes32("root", root, MalformedAnswerError)
    found = _mismatch(challenge, opening.lease_id, opening.sequence, opening.n)
    found = found or _late(challenge, committed_at_ms, "committed")
    if found:
        return found
    audit = draw_audit(challenge, root, verifier_seed, rows=rows, rounds=rounds)
    opened = tuple(row.index for row in opening.rows)
    if opened != audit.rows:
        return Verdict(
            Outcome.MALFORMED, f"opened rows {list(opened)}, the audit asked for {list(audit.rows)}"
        )
    n = challenge.n
    for row in opening.rows:
        if process_proof(row_leaf(n, row.index, row.values), row.proof) != root:
            return Verdict(Outcome.WRONG_COMMITMENT, f"row {row.index} is not proven against the root")
    c_rows = np.frombuffer(b"".join(row.values for row in opening.rows), dtype="<i4").reshape(-1, n)
    b = _matrix(challenge.seed, _STREAM_B, n, np.arange(n, dtype=np.int64))
    wrong = _freivalds(challenge_rows(challenge, audit.rows), b, c_rows, audit.vectors)
    if wrong is not None:
        index = audit.rows[wrong]
        return Verdict(Outcome.WRONG_PRODUCT, f"opened row {index} is not row {index} of A @ B")
    return Verdict(
        Outcome.PASSED, f"{len(audit.rows)} opened rows correct ({rounds} Freivalds rounds), root on time"
    )
