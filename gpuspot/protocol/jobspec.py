"""Job specs: the document a bid's `jobSpecHash` commits to, validated and written canonically.

A bid signs `keccak256(bytes of the job spec)`: the hash of the bytes exactly as stored, so nothing depends
on re-serialising JSON. `JobSpec.load(data, expected_hash)` checks those bytes against the bid before it
reads them; `JobSpec.parse(data)` checks every rule of docs/evidence.md ("Job specs"); `to_bytes()` writes
the canonical form (UTF-8 JSON, keys sorted, no whitespace) whose keccak256 is `hash()`.

Pure: no I/O. Import the module (`from gpuspot.protocol import jobspec`); it is not re-exported from
`gpuspot.protocol`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gpuspot.protocol.errors import ProtocolError
from gpuspot.protocol.hashing import keccak256

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_INPUTS",
    "MAX_OUTPUTS",
    "RESERVED_ENV_NAMES",
    "RUNTIMES",
    "VERSION",
    "JobInput",
    "JobSpec",
    "JobSpecError",
    "JobSpecMismatchError",
    "check_relative_path",
]

VERSION = 1
RUNTIMES = ("process",)
"""`process` runs the command as a host process; containers are a later runtime behind the same spec."""
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_INPUTS = 256
MAX_OUTPUTS = 256
RESERVED_ENV_NAMES = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"})
"""Set by the agent for the leased devices; names starting `GPUSPOT_` are the agent's too."""
_RESERVED_ENV_PREFIX = "GPUSPOT_"

_KEYS = frozenset({"version", "command", "env", "inputs", "outputs", "runtime"})
_REQUIRED_KEYS = frozenset({"version", "command"})
_INPUT_KEYS = frozenset({"path", "keccak256", "url"})
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


class JobSpecError(ProtocolError, ValueError):
    """A job spec document breaks a rule of docs/evidence.md; the message names the field and the fix."""


class JobSpecMismatchError(JobSpecError):
    """The bytes fetched for a job spec do not hash to the bid's `jobSpecHash`."""


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise JobSpecError(f"{where} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise JobSpecError(f"{where} contains a NUL character, which no process argument can hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JobSpecError(f"{where} is not valid Unicode (a lone surrogate): write it as UTF-8") from None
    return value


def check_relative_path(value: object, where: str) -> str:
    """An input or output path: relative, '/'-separated, without '.', '..' or empty parts, so that it stays
    inside the job's work directory whatever the platform."""
    path = _text(value, where)
    if not path:
        raise JobSpecError(f"{where} is empty: give a path relative to the job's work directory")
    if path.startswith("/") or "\\" in path:
        raise JobSpecError(
            f"{where} {path!r} must be a relative path with '/' separators (no leading '/', no '\\')"
        )
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise JobSpecError(
            f"{where} {path!r} has an empty, '.' or '..' part: name the file from the work directory down, "
            f"e.g. 'data/x.bin'"
        )
    return path


def _url(value: object, where: str) -> str:
    url = _text(value, where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JobSpecError(f"{where} {url!r} must be an http or https URL (or leave url out to use a blob)")
    return url


def _hash(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise JobSpecError(f"{where} must be '0x' and 64 hex digits (keccak256 of the file), got {value!r}")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True, slots=True)
class JobInput:
    """A file the job needs: placed at `path` in the work directory, its content checked against
    `keccak256`. Without a `url` it is the matcher's blob of that hash."""

    path: str
    keccak256: bytes
    url: str | None = None

    def __post_init__(self) -> None:
        check_relative_path(self.path, "input path")
        if not isinstance(self.keccak256, bytes) or len(self.keccak256) != 32:
            raise JobSpecError(f"input {self.path!r}: keccak256 must be 32 bytes")
        if self.url is not None:
            _url(self.url, f"input {self.path!r} url")

    def to_dict(self) -> dict[str, str]:
        document = {"path": self.path, "keccak256": "0x" + self.keccak256.hex()}
        if self.url is not None:
            document["url"] = self.url
        return document


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A validated job spec. `env` is kept as (name, value) pairs sorted by name, so equal specs compare and
    hash equal; `environment` gives it as a read-only mapping."""

    version: int = VERSION
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    inputs: tuple[JobInput, ...] = ()
    outputs: tuple[str, ...] = ()
    runtime: str = "process"

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or self.version != VERSION:
            raise JobSpecError(f"version must be {VERSION}, got {self.version!r}")
        if not isinstance(self.command, tuple) or not self.command:
            raise JobSpecError('command must be a non-empty list of strings, e.g. ["python", "train.py"]')
        for i, arg in enumerate(self.command):
            _text(arg, f"command[{i}]")
        if not self.command[0]:
            raise JobSpecError("command[0] is empty: it must name the program to run")
        if not isinstance(self.env, tuple) or not all(
            isinstance(pair, tuple) and len(pair) == 2 for pair in self.env
        ):
            raise JobSpecError("env must be (name, value) pairs; JobSpec.build takes a mapping")
        for name, value in self.env:
            _text(name, "an env name")
            _text(value, f"env {name}")
        env = tuple(sorted(self.env))
        names = [name for name, _ in env]
        for name, _ in env:
            if not _ENV_NAME.fullmatch(name):
                raise JobSpecError(f"env name {name!r} must match [A-Z_][A-Z0-9_]*")
            if name in RESERVED_ENV_NAMES or name.startswith(_RESERVED_ENV_PREFIX):
                raise JobSpecError(
                    f"env name {name!r} is reserved: the agent sets CUDA_VISIBLE_DEVICES, "
                    f"NVIDIA_VISIBLE_DEVICES and GPUSPOT_* for the leased devices; remove it from env"
                )
        if len(set(names)) != len(names):
            raise JobSpecError("env names must be unique")
        object.__setattr__(self, "env", env)
        if not isinstance(self.inputs, tuple) or not all(isinstance(i, JobInput) for i in self.inputs):
            raise JobSpecError("inputs must be a tuple of JobInput")
        if not isinstance(self.outputs, tuple):
            raise JobSpecError("outputs must be a tuple of paths")
        if len(self.inputs) > MAX_INPUTS:
            raise JobSpecError(
                f"at most {MAX_INPUTS} inputs, got {len(self.inputs)}: pack small files together"
            )
        if len({i.path for i in self.inputs}) != len(self.inputs):
            raise JobSpecError("input paths must be unique: each input is one file in the work directory")
        if len(self.outputs) > MAX_OUTPUTS:
            raise JobSpecError(f"at most {MAX_OUTPUTS} outputs, got {len(self.outputs)}")
        for i, output in enumerate(self.outputs):
            check_relative_path(output, f"outputs[{i}]")
        if len(set(self.outputs)) != len(self.outputs):
            raise JobSpecError("output paths must be unique")
        if self.runtime not in RUNTIMES:
            raise JobSpecError(f"runtime must be one of {list(RUNTIMES)}, got {self.runtime!r}")
        size = len(self.to_bytes())
        if size > MAX_DOCUMENT_BYTES:
            raise JobSpecError(
                f"the job spec is {size} bytes, over {MAX_DOCUMENT_BYTES}: move data into inputs"
            )

    @classmethod
    def build(
        cls,
        command: Iterable[str],
        env: Mapping[str, str] | None = None,
        inputs: Iterable[JobInput] = (),
        outputs: Iterable[str] = (),
    ) -> JobSpec:
        """A version-1 `process` spec from plain values; validated like a parsed one."""
        return cls(
            command=tuple(command),
            env=tuple((env or {}).items()),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
        )

    @classmethod
    def parse(cls, data: bytes) -> JobSpec:
        """Validates a job spec document (any JSON layout; its bytes are what the bid hashed)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise JobSpecError(f"a job spec is bytes, got {type(data).__name__}")
        if len(data) > MAX_DOCUMENT_BYTES:
            raise JobSpecError(f"the job spec is {len(data)} bytes, over {MAX_DOCUMENT_BYTES}")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobSpecError(f"a job spec is UTF-8 JSON: {exc}") from None
        try:
            document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise JobSpecError(f"the job spec is not JSON: {exc}") from None
        return cls._from_document(document)

    @classmethod
    def load(cls, data: bytes, expected_hash: bytes) -> JobSpec:
        """`parse(data)`, after checking keccak256(data) is `expected_hash` (the bid's `jobSpecHash`)."""
        if not isinstance(expected_hash, bytes) or len(expected_hash) != 32:
            raise JobSpecError("the expected job spec hash must be 32 bytes")
        actual = keccak256(bytes(data))
        if actual != expected_hash:
            raise JobSpecMismatchError(
                f"the job spec bytes hash to 0x{actual.hex()}, not the bid's jobSpecHash "
                f"0x{expected_hash.hex()}: they are not the document the buyer signed; fetch the blob of "
                f"that hash again"
            )
        return cls.parse(data)

    @classmethod
    def _from_document(cls, document: object) -> JobSpec:
        if not isinstance(document, dict):
            raise JobSpecError("a job spec is a JSON object")
        unknown = sorted(set(document) - _KEYS)
        if unknown:
            raise JobSpecError(f"unknown keys {unknown}: a version-1 job spec has only {sorted(_KEYS)}")
        missing = sorted(_REQUIRED_KEYS - set(document))
        if missing:
            raise JobSpecError(f"missing keys {missing}: every job spec has version and command")
        version = document["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise JobSpecError(f"version must be the integer {VERSION}, got {version!r}")
        command = document["command"]
        if not isinstance(command, list):
            raise JobSpecError('command must be a list of strings, e.g. ["python", "train.py"]')
        env = document.get("env", {})
        if not isinstance(env, dict):
            raise JobSpecError('env must be an object of strings, e.g. {"BATCH": "64"}')
        inputs = document.get("inputs", [])
        if not isinstance(inputs, list):
            raise JobSpecError("inputs must be a list of {path, keccak256, url} objects")
        if len(inputs) > MAX_INPUTS:
            raise JobSpecError(f"at most {MAX_INPUTS} inputs, got {len(inputs)}: pack small files together")
        outputs = document.get("outputs", [])
        if not isinstance(outputs, list):
            raise JobSpecError("outputs must be a list of paths")
        runtime = document.get("runtime", "process")
        return cls(
            version=version,
            command=tuple(command),
            env=tuple(env.items()),
            inputs=tuple(_input(item, i) for i, item in enumerate(inputs)),
            outputs=tuple(outputs),
            runtime=runtime,
        )

    @property
    def environment(self) -> Mapping[str, str]:
        """`env` as a read-only mapping."""
        return MappingProxyType(dict(self.env))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "command": list(self.command),
            "env": dict(self.env),
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": list(self.outputs),
            "runtime": self.runtime,
        }

    def to_bytes(self) -> bytes:
        """The canonical document: UTF-8 JSON, keys sorted, no whitespace, non-ASCII kept as UTF-8."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def hash(self) -> bytes:
        """keccak256 of `to_bytes()`: the `jobSpecHash` a bid signs for this spec written canonically."""
        return keccak256(self.to_bytes())


def _input(item: object, index: int) -> JobInput:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise JobSpecError(f"{where} must be an object with path, keccak256 and optionally url")
    unknown = sorted(set(item) - _INPUT_KEYS)
    if unknown:
        raise JobSpecError(f"{where} has unknown keys {unknown}: use path, keccak256 and url")
    if "path" not in item or "keccak256" not in item:
        raise JobSpecError(f"{where} needs path and keccak256")
    path = check_relative_path(item["path"], f"{where}.path")
    url = item.get("url")
    return JobInput(
        path=path,
        keccak256=_hash(item["keccak256"], f"{where}.keccak256"),
        url=None if url is None else _url(url, f"{where}.url"),
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise JobSpecError(f"key {key!r} appears twice in one object: a job spec must be unambiguous")
        document[key] = value
    return document


def _no_constant(name: str) -> None:
    raise JobSpecError(f"{name} is not JSON: a job spec holds only strings, integers, lists and objects")
