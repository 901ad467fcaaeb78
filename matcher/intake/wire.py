"""The wire form of a submitted order, parsed: the request body the API receives, checked for shape only.

```
{"type": "bid" | "ask",
 "order": {...},           # the order's canonical JSON object (gpuspot.protocol.to_json), or its text
 "signature": "0x...",     # 65 bytes r || s || v as hex, as eth_signTypedData_v4 returns it
 "domain": {"name", "version", "chainId", "verifyingContract"}}   # optional: what the client signed for
```

Shape errors are `malformed`; a signature of the right shape whose values the escrow would refuse (v not
27/28/0/1, s zero or high, r zero) is `bad_signature`. The order's own fields go through
`gpuspot.protocol.from_json`, the protocol's validation, unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gpuspot.protocol.errors import InvalidSignatureError, OrderJsonError
from gpuspot.protocol.orders import Ask, Bid, Order, Signature, from_dict, from_json
from matcher.intake.errors import OrderRejected, RejectCode

__all__ = ["OrderKind", "Submission", "SignedDomain", "parse_submission"]

_REQUIRED = frozenset({"type", "order", "signature"})
_ALLOWED = _REQUIRED | {"domain"}
_DOMAIN_KEYS = frozenset({"name", "version", "chainId", "verifyingContract"})
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class OrderKind(StrEnum):
    BID = "bid"
    ASK = "ask"


_CLASSES: dict[str, type[Bid] | type[Ask]] = {"bid": Bid, "ask": Ask}


@dataclass(frozen=True, slots=True)
class SignedDomain:
    """The `domain` a client says it signed for, as given (only compared with the market's, never trusted)."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str


@dataclass(frozen=True, slots=True)
class Submission:
    kind: OrderKind
    order: Order
    signature: Signature
    domain: SignedDomain | None


def _malformed(message: str) -> OrderRejected:
    return OrderRejected(RejectCode.MALFORMED, message)


def _load(text: str | bytes | bytearray) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _malformed(f"the request body is not valid JSON ({exc}): send a JSON object") from None


def _order(kind: str, value: object) -> Order:
    if not isinstance(value, Mapping | str):
        raise _malformed('"order" must be the order\'s canonical JSON object (gpuspot.protocol.to_json)')
    try:
        order = from_dict(dict(value)) if isinstance(value, Mapping) else from_json(value)
    except OrderJsonError as exc:
        raise _malformed(f"{exc} (send the order as gpuspot.protocol.to_json writes it)") from None
    if not isinstance(order, _CLASSES[kind]):
        raise _malformed(
            f'"type" is {kind!r} but the order is a {order.TYPE_NAME}: set "type" to '
            f'"{order.TYPE_NAME.lower()}"'
        )
    return order


def _signature(value: object) -> Signature:
    if not isinstance(value, str) or not _SIGNATURE.match(value):
        raise _malformed(
            '"signature" must be "0x" and 130 hex digits (65 bytes r || s || v): send what '
            "eth_signTypedData_v4 returns"
        )
    try:
        return Signature(bytes.fromhex(value[2:]))
    except InvalidSignatureError as exc:
        raise OrderRejected(RejectCode.BAD_SIGNATURE, str(exc)) from None


def _chain_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and value[0] != "0":
        return int(value)
    raise _malformed(f'"domain.chainId" must be a positive integer (or its decimal string), got {value!r}')


def _domain(value: object) -> SignedDomain:
    if not isinstance(value, Mapping) or set(value) != _DOMAIN_KEYS:
        raise _malformed(
            '"domain" must be an object with exactly name, version, chainId and verifyingContract, '
            "or be left out"
        )
    name, version, contract = value["name"], value["version"], value["verifyingContract"]
    if not isinstance(name, str) or not isinstance(version, str):
        raise _malformed('"domain.name" and "domain.version" must be strings')
    if not isinstance(contract, str) or not _ADDRESS.match(contract):
        raise _malformed(
            f'"domain.verifyingContract" must be a 0x-prefixed 20-byte address, got {contract!r}'
        )
    return SignedDomain(name, version, _chain_id(value["chainId"]), contract)


def parse_submission(payload: object) -> Submission:
    """The submission in `payload` (a parsed JSON object, or the body's text), or `OrderRejected`."""
    if isinstance(payload, str | bytes | bytearray):
        payload = _load(payload)
    if not isinstance(payload, Mapping):
        raise _malformed('the request body must be a JSON object with "type", "order" and "signature"')
    keys = set(payload)
    if not _REQUIRED <= keys <= _ALLOWED:
        missing, extra = sorted(_REQUIRED - keys), sorted(keys - _ALLOWED)
        raise _malformed(
            f"the submission's members do not match: missing {missing}, unexpected {extra}; send exactly "
            '"type", "order", "signature" and optionally "domain"'
        )
    kind = payload["type"]
    if not isinstance(kind, str) or kind not in _CLASSES:
        raise _malformed(f'"type" must be "bid" or "ask", got {kind!r}')
    domain = payload.get("domain")
    return Submission(
        kind=OrderKind(kind),
        order=_order(kind, payload["order"]),
        signature=_signature(payload["signature"]),
        domain=None if domain is None else _domain(domain),
    )
