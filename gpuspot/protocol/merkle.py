"""A port of OpenZeppelin's `StandardMerkleTree` (@openzeppelin/merkle-tree 1.0.8), byte for byte.

Why a port and not an ad-hoc tree: the escrow verifies proofs with OpenZeppelin's `MerkleProof`, and anyone
re-checking a root (wallets, explorers, a buyer's script) will reach for the JS library. Same leaf hash
(keccak256(keccak256(abi.encode(types, values))), double-hashed against second-preimage attacks), same
commutative node hash (keccak256 of the sorted pair), same array layout (`tree[0]` is the root, leaf i at
`tree[len(tree) - 1 - i]`), same optional leaf sorting, the same multiproof walk and the same "standard-v1"
JSON dump, so trees, proofs and dumps move freely between this module, the JS library and the contract.

Hashes are `bytes` here and 0x hex only in dumps. Indices given to `get_proof` and `get_multiproof` are value
indices (positions in the `values` passed to `of`), as in the JS library.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gpuspot.protocol import abi
from gpuspot.protocol.errors import AbiEncodingError, MerkleTreeError
from gpuspot.protocol.hashing import keccak256

__all__ = [
    "DUMP_FORMAT",
    "MultiProof",
    "StandardMerkleTree",
    "get_multiproof",
    "get_proof",
    "make_merkle_tree",
    "node_hash",
    "process_multiproof",
    "process_proof",
    "standard_leaf_hash",
    "verify_multiproof",
    "verify_proof",
]

DUMP_FORMAT = "standard-v1"


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """keccak256(keccak256(abi.encode(leaf_encoding, value))), the leaf of a `StandardMerkleTree`."""
    try:
        encoded = abi.encode(leaf_encoding, value)
    except AbiEncodingError as exc:
        raise MerkleTreeError(
            f"leaf {value!r} does not fit the encoding {list(leaf_encoding)}: {exc}"
        ) from None
    return keccak256(keccak256(encoded))


def node_hash(a: bytes, b: bytes) -> bytes:
    """keccak256 of the pair in ascending order, so proofs need no left/right bits (OpenZeppelin's
    `Hashes.commutativeKeccak256`). Byte order equals numeric order for equal-length hashes."""
    return keccak256(a + b if a <= b else b + a)


def _check_node(node: bytes) -> None:
    if not isinstance(node, bytes) or len(node) != 32:
        raise MerkleTreeError(f"Merkle tree nodes must be 32 bytes, got {node!r}")


def make_merkle_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The tree array over leaf hashes in the given order: `tree[0]` is the root, leaf i at `tree[-1 - i]`."""
    if not leaves:
        raise MerkleTreeError("a Merkle tree needs at least one leaf: there is nothing to commit")
    for leaf in leaves:
        _check_node(leaf)
    size = 2 * len(leaves) - 1
    tree: list[bytes] = [b""] * size
    for i, leaf in enumerate(leaves):
        tree[size - 1 - i] = leaf
    for i in range(size - 1 - len(leaves), -1, -1):
        tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def _sibling(i: int) -> int:
    return i + 1 if i % 2 else i - 1


def _check_leaf_index(tree: Sequence[bytes], i: int) -> None:
    if not (0 <= i < len(tree) and 2 * i + 1 >= len(tree)):
        raise MerkleTreeError(f"tree index {i} is not a leaf of this tree")


def get_proof(tree: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling path from the leaf at tree index `index` to the root."""
    _check_leaf_index(tree, index)
    proof: list[bytes] = []
    while index > 0:
        proof.append(tree[_sibling(index)])
        index = (index - 1) // 2
    return proof


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `leaf` and its sibling path rebuild."""
    _check_node(leaf)
    node = leaf
    for sibling in proof:
        _check_node(sibling)
        node = node_hash(node, sibling)
    return node


@dataclass(frozen=True, slots=True)
class MultiProof:
    """Several leaves proven together. `leaves` are leaf values (from `StandardMerkleTree.get_multiproof`) or
    leaf hashes (from the module-level `get_multiproof`), in the order the verifier consumes them: descending
    tree index, which for a tree built with `sort_leaves=False` is ascending position in the input values."""

    leaves: list[Any]
    proof: list[bytes]
    proof_flags: list[bool]


def get_multiproof(tree: Sequence[bytes], indices: Sequence[int]) -> MultiProof:
    """A multiproof for the leaves at tree indices `indices` (any order), leaves given as hashes."""
    for i in indices:
        _check_leaf_index(tree, i)
    ordered = sorted(indices, reverse=True)
    if any(a == b for a, b in zip(ordered, ordered[1:], strict=False)):
        raise MerkleTreeError("cannot prove a duplicated index: pass each leaf once")
    stack = deque(ordered)
    proof: list[bytes] = []
    flags: list[bool] = []
    while stack and stack[0] > 0:
        j = stack.popleft()
        s = _sibling(j)
        p = (j - 1) // 2
        if stack and s == stack[0]:
            flags.append(True)
            stack.popleft()
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(p)
    if not ordered:
        proof.append(tree[0])
    return MultiProof(leaves=[tree[i] for i in ordered], proof=proof, proof_flags=flags)


def process_multiproof(multiproof: MultiProof) -> bytes:
    """The root a multiproof over leaf hashes rebuilds (OpenZeppelin's `processMultiProof`)."""
    for node in (*multiproof.leaves, *multiproof.proof):
        _check_node(node)
    if len(multiproof.proof) < sum(1 for flag in multiproof.proof_flags if not flag):
        raise MerkleTreeError("invalid multiproof format: fewer proof nodes than false flags")
    if len(multiproof.leaves) + len(multiproof.proof) != len(multiproof.proof_flags) + 1:
        raise MerkleTreeError("the leaves and the multiproof are not compatible: leaves + proof != flags + 1")
    stack: deque[bytes] = deque(multiproof.leaves)
    proof: deque[bytes] = deque(multiproof.proof)
    for flag in multiproof.proof_flags:
        a = stack.popleft()
        b = stack.popleft() if flag else proof.popleft()
        stack.append(node_hash(a, b))
    if len(stack) + len(proof) != 1:
        raise MerkleTreeError("the multiproof does not reduce to one root")
    return stack.pop() if stack else proof.popleft()


def verify_proof(
    root: bytes, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[bytes]
) -> bool:
    """Whether `value` is in the tree of `root`, without the tree (the JS `StandardMerkleTree.verify`)."""
    try:
        return process_proof(standard_leaf_hash(leaf_encoding, value), proof) == root
    except MerkleTreeError:
        return False


def verify_multiproof(root: bytes, leaf_encoding: Sequence[str], multiproof: MultiProof) -> bool:
    """Whether a value multiproof holds against `root` (the JS `StandardMerkleTree.verifyMultiProof`)."""
    try:
        hashed = MultiProof(
            leaves=[standard_leaf_hash(leaf_encoding, value) for value in multiproof.leaves],
            proof=list(multiproof.proof),
            proof_flags=list(multiproof.proof_flags),
        )
        return process_multiproof(hashed) == root
    except (MerkleTreeError, IndexError):
        return False


def _is_valid_tree(tree: Sequence[bytes]) -> bool:
    for i, node in enumerate(tree):
        if not isinstance(node, bytes) or len(node) != 32:
            return False
        left, right = 2 * i + 1, 2 * i + 2
        if right >= len(tree):
            if left < len(tree):
                return False
        elif node != node_hash(tree[left], tree[right]):
            return False
    return len(tree) > 0


def _to_json_value(value: Any) -> Any:
    """Leaf values as the JS library dumps them: integers as decimal strings (JSON numbers lose precision
    beyond 2**53), bytes as 0x hex, sequences as lists."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_to_json_value(v) for v in value]
    return value


def _from_json_value(type_: str, value: Any) -> Any:
    """A dumped value back in this module's Python form for elementary `type_`; other types pass unchanged."""
    if type_.startswith(("uint", "int")) and abi.is_static_elementary(type_):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value, 16) if value.lower().startswith(("0x", "-0x")) else int(value, 10)
            except ValueError:
                pass
        raise MerkleTreeError(f"dumped {type_} value {value!r} is not an integer")
    if type_.startswith("bytes") and isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise MerkleTreeError(f"dumped {type_} value {value!r} is not hex") from None
    return value


class StandardMerkleTree:
    """A Merkle tree over ABI-encoded values (OpenZeppelin's `StandardMerkleTree`).

    Build one with `StandardMerkleTree.of(values, leaf_encoding, sort_leaves=...)`; `sort_leaves=True` (the JS
    default) orders leaves by hash, which makes multiproofs of any subset easy to verify; `False` keeps the
    input order, which settlement trees need so that leaf order follows lease ids.
    """

    __slots__ = ("_hash_lookup", "leaf_encoding", "tree", "values")

    def __init__(
        self, tree: list[bytes], values: list[tuple[tuple[Any, ...], int]], leaf_encoding: list[str]
    ):
        """Takes the raw parts (`tree`, and `(value, tree_index)` per value); prefer `of()` or `load()`."""
        self.tree = tree
        self.values = values
        self.leaf_encoding = list(leaf_encoding)
        self._hash_lookup = {
            tree[tree_index]: value_index for value_index, (_, tree_index) in enumerate(values)
        }

    @classmethod
    def of(
        cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str], *, sort_leaves: bool = True
    ) -> StandardMerkleTree:
        """Builds the tree over `values` (each a sequence matching `leaf_encoding`)."""
        encoding = list(leaf_encoding)
        hashed = [(standard_leaf_hash(encoding, value), i) for i, value in enumerate(values)]
        if sort_leaves:
            hashed.sort(key=lambda pair: pair[0])  # stable, like Array.prototype.sort
        tree = make_merkle_tree([leaf for leaf, _ in hashed])
        tree_index = [0] * len(values)
        for leaf_index, (_, value_index) in enumerate(hashed):
            tree_index[value_index] = len(tree) - 1 - leaf_index
        return cls(tree, [(tuple(v), t) for v, t in zip(values, tree_index, strict=True)], encoding)

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """Reads a "standard-v1" dump (this module's or the JS library's) and checks every hash in it."""
        if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
            found = data.get("format") if isinstance(data, dict) else data
            raise MerkleTreeError(f"unknown Merkle tree dump format {found!r}: expected {DUMP_FORMAT!r}")
        encoding = data.get("leafEncoding")
        if not isinstance(encoding, list) or not all(isinstance(t, str) for t in encoding):
            raise MerkleTreeError("the dump has no leafEncoding: it must list the leaves' Solidity types")
        try:
            tree = [bytes.fromhex(node.removeprefix("0x")) for node in data["tree"]]
            values = [
                (
                    tuple(_from_json_value(t, v) for t, v in zip(encoding, entry["value"], strict=True)),
                    int(entry["treeIndex"]),
                )
                for entry in data["values"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MerkleTreeError(f"malformed {DUMP_FORMAT} dump: {exc}") from None
        loaded = cls(tree, values, encoding)
        loaded.validate()
        return loaded

    def dump(self) -> dict[str, Any]:
        """The JSON-ready "standard-v1" dump that the JS `StandardMerkleTree.load` reads."""
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [{"value": _to_json_value(list(v)), "treeIndex": t} for v, t in self.values],
        }

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.values)

    def at(self, index: int) -> tuple[Any, ...]:
        """The value at value index `index`."""
        return self.values[index][0]

    def entries(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """(value index, value) pairs in input order."""
        for i, (value, _) in enumerate(self.values):
            yield i, value

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        """The leaf hash of `value` under this tree's encoding (whether or not it is in the tree)."""
        return standard_leaf_hash(self.leaf_encoding, value)

    def tree_index(self, index: int) -> int:
        """Where value `index` sits in the tree array."""
        self._validate_value_at(index)
        return self.values[index][1]

    def leaf_lookup(self, value: Sequence[Any]) -> int:
        """The value index of `value`; raises `MerkleTreeError` if it is not in the tree."""
        found = self._hash_lookup.get(self.leaf_hash(value))
        if found is None:
            raise MerkleTreeError(f"leaf {tuple(value)!r} is not in the tree")
        return found

    def get_proof(self, leaf: int | Sequence[Any]) -> list[bytes]:
        """The proof of a value, given by value index or by value."""
        index = leaf if isinstance(leaf, int) else self.leaf_lookup(leaf)
        self._validate_value_at(index)
        tree_index = self.values[index][1]
        proof = get_proof(self.tree, tree_index)
        if process_proof(self.tree[tree_index], proof) != self.root:  # the JS library's sanity check
            raise MerkleTreeError("unable to prove the value: the tree is corrupt")
        return proof

    def get_multiproof(self, leaves: Sequence[int | Sequence[Any]]) -> MultiProof:
        """A multiproof of several values (by value index or value); `leaves` of the result are the values in
        the order the verifier consumes them."""
        indices = [leaf if isinstance(leaf, int) else self.leaf_lookup(leaf) for leaf in leaves]
        for index in indices:
            self._validate_value_at(index)
        hashed = get_multiproof(self.tree, [self.values[i][1] for i in indices])
        if process_multiproof(hashed) != self.root:
            raise MerkleTreeError("unable to prove the values: the tree is corrupt")
        return MultiProof(
            leaves=[self.values[self._hash_lookup[h]][0] for h in hashed.leaves],
            proof=hashed.proof,
            proof_flags=hashed.proof_flags,
        )

    def verify(self, leaf: int | Sequence[Any], proof: Sequence[bytes]) -> bool:
        """Whether `proof` proves the value (or value index) `leaf` against this tree's root."""
        try:
            leaf_hash = self.leaf_hash(self._value(leaf))
            return process_proof(leaf_hash, proof) == self.root
        except MerkleTreeError:
            return False

    def verify_multiproof(self, multiproof: MultiProof) -> bool:
        """Whether a value multiproof (leaves as values or value indices) holds against this tree's root."""
        try:
            return verify_multiproof(
                self.root,
                self.leaf_encoding,
                MultiProof(
                    [self._value(v) for v in multiproof.leaves], multiproof.proof, multiproof.proof_flags
                ),
            )
        except MerkleTreeError:
            return False

    def validate(self) -> None:
        """Checks every value's leaf and every inner node; raises `MerkleTreeError` on the first mismatch."""
        for index in range(len(self.values)):
            self._validate_value_at(index)
        if not _is_valid_tree(self.tree):
            raise MerkleTreeError("the Merkle tree is invalid: an inner node is not the hash of its children")

    def _value(self, leaf: int | Sequence[Any]) -> Sequence[Any]:
        if isinstance(leaf, int):
            if not 0 <= leaf < len(self.values):
                raise MerkleTreeError(
                    f"value index {leaf} is out of bounds (the tree has {len(self)} values)"
                )
            return self.values[leaf][0]
        return leaf

    def _validate_value_at(self, index: int) -> None:
        if not 0 <= index < len(self.values):
            raise MerkleTreeError(f"value index {index} is out of bounds (the tree has {len(self)} values)")
        value, tree_index = self.values[index]
        if not 0 <= tree_index < len(self.tree) or self.tree[tree_index] != self.leaf_hash(value):
            raise MerkleTreeError(
                f"the tree does not contain value {index} where it says: the tree is corrupt"
            )
