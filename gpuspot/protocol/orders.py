"""Bids and asks as EIP-712 typed data: validation, hashing, signing, recovery and canonical JSON.

The type strings are copied verbatim from `contracts/src/libraries/Orders.sol` (a unit test re-reads them from
there), so the digest computed here is the digest the escrow's `bidDigest` computes and the one any wallet's
`eth_signTypedData_v4` signs for `typed_data(order, domain)`. Digests are computed directly (each validated
member written into its word, and two keccaks) rather than through eth-account's generic typed-data encoder,
which is far slower; tests check the two agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import coincurve

from gpuspot.protocol import abi
from gpuspot.protocol.errors import (
    AbiEncodingError,
    InvalidOrderError,
    InvalidSignatureError,
    OrderJsonError,
)
from gpuspot.protocol.hashing import keccak256

__all__ = [
    "ASK_TYPE",
    "ASK_TYPEHASH",
    "BID_TYPE",
    "BID_TYPEHASH",
    "cancellation_message",
    "DOMAIN_NAME",
    "DOMAIN_TYPE",
    "DOMAIN_TYPEHASH",
    "DOMAIN_VERSION",
    "Ask",
    "Bid",
    "Eip712Domain",
    "Order",
    "Signature",
    "digest",
    "from_dict",
    "from_json",
    "order_hash",
    "recover_digest_address",
    "recover_digest_signer",
    "recover_signer",
    "sign",
    "sign_digest",
    "struct_hash",
    "to_json",
    "typed_data",
]

BID_TYPE = (
    "Bid(address buyer,bytes32 product,uint16 gpus,uint32 duration,uint128 maxPricePerGpuHour,"
    "bytes32 jobSpecHash,uint256 nonce,uint64 expiry)"
)
ASK_TYPE = (
    "Ask(address provider,bytes32 product,bytes32 hostId,uint16 gpus,uint32 maxDuration,"
    "uint128 minPricePerGpuHour,uint256 nonce,uint64 expiry)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
BID_TYPEHASH = keccak256(BID_TYPE.encode())
ASK_TYPEHASH = keccak256(ASK_TYPE.encode())
DOMAIN_TYPEHASH = keccak256(DOMAIN_TYPE.encode())
DOMAIN_NAME = "gpuspot"
DOMAIN_VERSION = "1"

# secp256k1's group order: the escrow (OpenZeppelin ECDSA) refuses s above half of it (EIP-2 malleability).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


def _check_field(owner: str, name: str, type_: str, value: Any) -> Any:
    """Checks `value` against Solidity `type_`; returns it normalized (checksummed address, bytes32 bytes)."""
    if type_ == "address":
        try:
            return abi.normalize_address(value, f"{owner}.{name}")
        except AbiEncodingError as exc:
            raise InvalidOrderError(str(exc)) from None
    if type_ == "bytes32":
        raw = value
        if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
            try:
                raw = bytes.fromhex(value[2:])
            except ValueError:
                raw = value
        if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
            raise InvalidOrderError(
                f"{owner}.{name} must be 32 bytes (or 0x-prefixed hex of 32 bytes), got {value!r}"
            )
        return bytes(raw)
    bits = int(type_[4:])
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOrderError(
            f"{owner}.{name} must be an integer ({type_}) in base units, got {value!r}: never pass floats"
        )
    if not 0 <= value < 1 << bits:
        raise InvalidOrderError(f"{owner}.{name} = {value} does not fit {type_}: use 0 to {(1 << bits) - 1}")
    return value


class _Order:
    """What `Bid` and `Ask` share: a field table mapping Python names to EIP-712 names and Solidity types."""

    __slots__ = ()

    TYPE_NAME: ClassVar[str]
    TYPE_STRING: ClassVar[str]
    TYPEHASH: ClassVar[bytes]
    # (python attribute, EIP-712 member name, Solidity type), in the struct's order.
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]]

    def __post_init__(self) -> None:
        for attr, _, type_ in self.FIELDS:
            object.__setattr__(self, attr, _check_field(self.TYPE_NAME, attr, type_, getattr(self, attr)))

    def abi_values(self) -> tuple[Any, ...]:
        """The struct's members in declaration order: the tuple a contract call takes for this struct."""
        return tuple(getattr(self, attr) for attr, _, _ in self.FIELDS)

    def message(self) -> dict[str, Any]:
        """The EIP-712 `message`: member names as in Solidity, bytes32 as 0x hex, integers as ints."""
        return {
            member: ("0x" + value.hex() if isinstance(value, bytes) else value)
            for (_, member, _), value in zip(self.FIELDS, self.abi_values(), strict=True)
        }

    @classmethod
    def eip712_members(cls) -> list[dict[str, str]]:
        """The `types` entry for this struct, as `eth_signTypedData_v4` takes it."""
        return [{"name": member, "type": type_} for _, member, type_ in cls.FIELDS]


@dataclass(frozen=True, slots=True)
class Bid(_Order):
    """A buyer's all-or-none order: `gpus` GPUs of `product` on one host for `duration` seconds, paying at
    most `max_price_per_gpu_hour` token base units per GPU-hour, valid until `expiry` (unix seconds).

    Every amount is an int in base units, range-checked against the Solidity type at construction, so a `Bid`
    that exists can always be hashed and sent on-chain. `buyer` is normalized to its EIP-55 checksum.
    """

    buyer: str
    product: bytes
    gpus: int
    duration: int
    max_price_per_gpu_hour: int
    job_spec_hash: bytes
    nonce: int
    expiry: int

    TYPE_NAME: ClassVar[str] = "Bid"
    TYPE_STRING: ClassVar[str] = BID_TYPE
    TYPEHASH: ClassVar[bytes] = BID_TYPEHASH
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("buyer", "buyer", "address"),
        ("product", "product", "bytes32"),
        ("gpus", "gpus", "uint16"),
        ("duration", "duration", "uint32"),
        ("max_price_per_gpu_hour", "maxPricePerGpuHour", "uint128"),
        ("job_spec_hash", "jobSpecHash", "bytes32"),
        ("nonce", "nonce", "uint256"),
        ("expiry", "expiry", "uint64"),
    )

    @property
    def gpu_seconds(self) -> int:
        """GPU-seconds the bid buys if it runs its whole duration."""
        return self.gpus * self.duration

    @property
    def reservation(self) -> int:
        """What locking a lease of this bid reserves on-chain: the whole duration at the cap, rounded down
        exactly as `LeaseMath.reservation`."""
        return self.gpu_seconds * self.max_price_per_gpu_hour // 3600


@dataclass(frozen=True, slots=True)
class Ask(_Order):
    """A provider's divisible order: up to `gpus` GPUs of `product` on host `host_id`, for leases of at most
    `max_duration` seconds, at no less than `min_price_per_gpu_hour`, valid until `expiry` (unix seconds)."""

    provider: str
    product: bytes
    host_id: bytes
    gpus: int
    max_duration: int
    min_price_per_gpu_hour: int
    nonce: int
    expiry: int

    TYPE_NAME: ClassVar[str] = "Ask"
    TYPE_STRING: ClassVar[str] = ASK_TYPE
    TYPEHASH: ClassVar[bytes] = ASK_TYPEHASH
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("provider", "provider", "address"),
        ("product", "product", "bytes32"),
        ("host_id", "hostId", "bytes32"),
        ("gpus", "gpus", "uint16"),
        ("max_duration", "maxDuration", "uint32"),
        ("min_price_per_gpu_hour", "minPricePerGpuHour", "uint128"),
        ("nonce", "nonce", "uint256"),
        ("expiry", "expiry", "uint64"),
    )


Order: TypeAlias = Bid | Ask
_ORDER_CLASSES: dict[str, type[Bid] | type[Ask]] = {"Bid": Bid, "Ask": Ask}


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """The signing domain: the escrow at `verifying_contract` on chain `chain_id`.

    Binding both means a bid signed for one deployment cannot be replayed on another chain or contract.
    `name` and `version` are the escrow's (`EIP712("gpuspot", "1")`); they are fields only so tests can build
    a wrong domain.
    """

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION
    _separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.chain_id, bool)
            or not isinstance(self.chain_id, int)
            or not 0 < self.chain_id < 1 << 256
        ):
            raise InvalidOrderError(f"chain_id must be a positive integer, got {self.chain_id!r}")
        try:
            contract = abi.normalize_address(self.verifying_contract, "verifying_contract")
        except AbiEncodingError as exc:
            raise InvalidOrderError(f"{exc}: pass the escrow's address") from None
        object.__setattr__(self, "verifying_contract", contract)
        object.__setattr__(
            self,
            "_separator",
            keccak256(
                DOMAIN_TYPEHASH
                + keccak256(self.name.encode())
                + keccak256(self.version.encode())
                + self.chain_id.to_bytes(32, "big")
                + abi.encode_address(contract).rjust(32, b"\0")
            ),
        )

    @property
    def separator(self) -> bytes:
        """The EIP-712 domain separator, as OpenZeppelin's `_domainSeparatorV4()` returns it."""
        return self._separator

    def as_dict(self) -> dict[str, Any]:
        """The `domain` member of a typed-data payload."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


EIP712_DOMAIN_MEMBERS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def typed_data(order: Order, domain: Eip712Domain) -> dict[str, Any]:
    """The full `eth_signTypedData_v4` payload for `order`: `types` (with `EIP712Domain`), `primaryType`,
    `domain` and `message`. Integers are Python ints; a JSON transport to a browser wallet should send uint256
    values above 2**53 as decimal strings, which wallets accept."""
    return {
        "types": {"EIP712Domain": list(EIP712_DOMAIN_MEMBERS), order.TYPE_NAME: order.eip712_members()},
        "primaryType": order.TYPE_NAME,
        "domain": domain.as_dict(),
        "message": order.message(),
    }


def _word(type_: str, value: Any) -> bytes:
    """One static member as its 32-byte ABI word. The order checked it against `type_` when it was built
    (addresses checksummed, bytes32 exactly 32 bytes, integers in range), so it is written as is."""
    if type_ == "address":
        return bytes(12) + bytes.fromhex(value[2:])
    if type_ == "bytes32":
        return bytes(value)
    return int(value).to_bytes(32, "big")


def struct_hash(order: Order) -> bytes:
    """EIP-712 `hashStruct(order)`: keccak256(typehash || abi.encode(members)); every member is static, so
    the encoding is each member's word in declaration order (written directly: a general ABI encoder would
    re-validate what the order's construction already checked, at about a third of the digest's cost)."""
    return keccak256(
        order.TYPEHASH + b"".join(_word(type_, getattr(order, attr)) for attr, _, type_ in order.FIELDS)
    )


def digest(order: Order, domain: Eip712Domain) -> bytes:
    """The 32-byte EIP-712 digest the signer signs: keccak256(0x1901 || domainSeparator || hashStruct)."""
    return keccak256(b"\x19\x01" + domain.separator + struct_hash(order))


def order_hash(order: Order, domain: Eip712Domain) -> bytes:
    """An order's identity across the market: its EIP-712 digest (the escrow keys payments by it)."""
    return digest(order, domain)


@dataclass(frozen=True, slots=True)
class Signature:
    """A secp256k1 signature as 65 bytes r || s || v, with v in {27, 28} and s in the lower half of the curve
    order, the only form the escrow accepts. `compact()` gives the EIP-2098 (r, vs) pair the escrow takes."""

    value: bytes

    def __post_init__(self) -> None:
        raw = self.value
        if isinstance(raw, str):
            try:
                raw = bytes.fromhex(raw.removeprefix("0x"))
            except ValueError:
                raise InvalidSignatureError(
                    f"signature {self.value!r} is not hex: pass 65 bytes r||s||v"
                ) from None
        if not isinstance(raw, bytes | bytearray) or len(raw) != 65:
            got = f"{len(raw)} bytes" if isinstance(raw, bytes | bytearray) else repr(raw)
            raise InvalidSignatureError(
                f"signature must be 65 bytes r||s||v, got {got}: pass the wallet's signTypedData result"
            )
        raw = bytes(raw)
        v = raw[64]
        if v in (0, 1):  # some signers return the bare recovery id
            raw = raw[:64] + bytes([v + 27])
        elif v not in (27, 28):
            raise InvalidSignatureError(f"signature v must be 27 or 28 (or 0/1), got {v}")
        s = int.from_bytes(raw[32:64], "big")
        if not 0 < s <= _HALF_N:
            raise InvalidSignatureError(
                "signature s is zero or in the upper half of the curve order (a malleable signature the "
                "escrow refuses): sign again with an EIP-2 compliant signer"
            )
        if int.from_bytes(raw[:32], "big") == 0:
            raise InvalidSignatureError("signature r is zero: the signature is not valid")
        object.__setattr__(self, "value", raw)

    @property
    def r(self) -> bytes:
        return self.value[:32]

    @property
    def s(self) -> bytes:
        return self.value[32:64]

    @property
    def v(self) -> int:
        return self.value[64]

    def compact(self) -> tuple[bytes, bytes]:
        """EIP-2098: (r, vs) with vs = s | ((v - 27) << 255); s is low, so its top bit is free."""
        vs = int.from_bytes(self.s, "big") | ((self.v - 27) << 255)
        return self.r, vs.to_bytes(32, "big")

    @classmethod
    def from_compact(cls, r: bytes, vs: bytes) -> Signature:
        """The inverse of `compact()`."""
        if len(r) != 32 or len(vs) != 32:
            raise InvalidSignatureError("compact signature parts r and vs must be 32 bytes each")
        packed = int.from_bytes(vs, "big")
        s = packed & ((1 << 255) - 1)
        return cls(bytes(r) + s.to_bytes(32, "big") + bytes([27 + (packed >> 255)]))

    def hex(self) -> str:
        """0x-prefixed hex of the 65 bytes, as wallets return it."""
        return "0x" + self.value.hex()


def _private_key_bytes(private_key: bytes | str) -> bytes:
    raw = private_key
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw.removeprefix("0x"))
        except ValueError:
            raise InvalidSignatureError("private key must be 32 bytes or their hex") from None
    if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
        raise InvalidSignatureError("private key must be 32 bytes or their hex")
    return bytes(raw)


def sign_digest(message_digest: bytes, private_key: bytes | str) -> Signature:
    """Signs a 32-byte digest with libsecp256k1 (deterministic RFC 6979, always low s)."""
    try:
        raw = coincurve.PrivateKey(_private_key_bytes(private_key)).sign_recoverable(
            message_digest, hasher=None
        )
    except ValueError as exc:
        raise InvalidSignatureError(f"cannot sign with this private key: {exc}") from None
    return Signature(raw[:64] + bytes([raw[64] + 27]))


def sign(order: Order, private_key: bytes | str, domain: Eip712Domain) -> Signature:
    """Signs `order` under `domain`: the signature `eth_signTypedData_v4(typed_data(order, domain))` gives."""
    return sign_digest(digest(order, domain), private_key)


def recover_digest_address(message_digest: bytes, signature: Signature) -> bytes | None:
    """The raw 20-byte address whose key produced `signature` over `message_digest`; None if it recovers no
    key. Comparing raw bytes spares a hot path (intake) the checksum encoding."""
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature.value[:64] + bytes([signature.v - 27]), message_digest, hasher=None
        )
    except ValueError:
        return None
    return keccak256(public.format(compressed=False)[1:])[-20:]


def recover_digest_signer(message_digest: bytes, signature: Signature) -> str:
    """The checksummed address whose key produced `signature` over `message_digest`."""
    from eth_utils.address import to_checksum_address

    address = recover_digest_address(message_digest, signature)
    if address is None:
        raise InvalidSignatureError(
            "the signature recovers no public key: it is not a signature of this order"
        )
    return str(to_checksum_address(address))


def recover_signer(order: Order, domain: Eip712Domain, signature: Signature) -> str:
    """The address that signed `order` under `domain`; compare it with the order's buyer or provider."""
    return recover_digest_signer(digest(order, domain), signature)


def cancellation_message(order_hash: bytes) -> str:
    """The text a signer signs (EIP-191 `personal_sign`) to cancel an order. The order hash is already bound
    to the market's EIP-712 domain, so the text needs no chain id of its own."""
    return f"gpuspot: cancel order 0x{bytes(order_hash).hex()}"


def to_json(order: Order) -> str:
    """Canonical JSON of an order.

    Keys are the EIP-712 member names plus `"type"` ("Bid" or "Ask"), sorted, no whitespace. Every integer is
    a decimal string, whatever its size: nonces are uint256 and prices uint128, beyond the 2**53 that JSON
    numbers hold exactly in JavaScript, and one rule for all integers is simpler than a size threshold.
    bytes32 values are lowercase 0x hex, addresses EIP-55 checksummed. Equal orders give equal text.
    """
    document: dict[str, Any] = {"type": order.TYPE_NAME}
    for (_, member, type_), value in zip(order.FIELDS, order.abi_values(), strict=True):
        if type_ == "bytes32":
            document[member] = "0x" + value.hex()
        elif type_ == "address":
            document[member] = value
        else:
            document[member] = str(value)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _parse_uint(member: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # tolerated on input; `to_json` always writes strings
    if isinstance(value, str) and value.isdigit() and value.isascii() and (value == "0" or value[0] != "0"):
        return int(value)
    raise OrderJsonError(f"{member} must be a decimal string without sign or leading zeros, got {value!r}")


def from_json(text: str | bytes) -> Order:
    """Parses canonical order JSON (see `to_json`) back into a validated `Bid` or `Ask`.

    Unknown or missing members are errors, not ignored: a field a client added would not be signed.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrderJsonError(f"order is not valid JSON: {exc}") from None
    return from_dict(document)


def from_dict(document: object) -> Order:
    """`from_json` for an order document already parsed from JSON (an API body, say), with the same checks."""
    if not isinstance(document, dict):
        raise OrderJsonError('order JSON must be an object with a "type" of "Bid" or "Ask"')
    cls = _ORDER_CLASSES.get(document.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise OrderJsonError(f'order JSON "type" must be "Bid" or "Ask", got {document.get("type")!r}')
    expected = {member for _, member, _ in cls.FIELDS} | {"type"}
    if set(document) != expected:
        missing, extra = sorted(expected - set(document)), sorted(set(document) - expected)
        raise OrderJsonError(
            f"{cls.TYPE_NAME} JSON members do not match: missing {missing}, unexpected {extra}"
        )
    kwargs: dict[str, Any] = {}
    for attr, member, type_ in cls.FIELDS:
        value = document[member]
        kwargs[attr] = _parse_uint(member, value) if type_.startswith("uint") else value
    try:
        return cls(**kwargs)
    except InvalidOrderError as exc:
        raise OrderJsonError(str(exc)) from None
