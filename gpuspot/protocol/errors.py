"""The protocol package's exceptions: one root, `ProtocolError`, and a subclass per kind of bad input.

Every message names the offending value and says what to do about it, so an API route or a CLI can show it
to the user unchanged. The subclasses also derive from `ValueError`, since each one means "this argument has
a bad value", which lets pydantic validators and callers that only know the standard library catch them.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised by `gpuspot.protocol`."""


class InvalidOrderError(ProtocolError, ValueError):
    """A bid or ask field is missing, of the wrong type, or outside its Solidity type's range."""


class InvalidSignatureError(ProtocolError, ValueError):
    """A signature is malformed or would be refused on-chain (bad length, bad v, high s)."""


class AbiEncodingError(ProtocolError, ValueError):
    """A value does not fit the Solidity ABI type it is to be encoded as."""


class OrderJsonError(ProtocolError, ValueError):
    """A JSON document is not a canonical gpuspot order."""


class MerkleTreeError(ProtocolError, ValueError):
    """A Merkle tree, proof or dump cannot be built, read or used as asked."""


class InvalidLeafError(ProtocolError, ValueError):
    """A settlement leaf has a field outside its type's range, or a tree's leaves do not fit together."""
