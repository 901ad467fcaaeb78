"""Job specs (gpuspot.protocol.jobspec): the rules of docs/evidence.md, the bid's hash, canonical bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuspot.protocol import ProtocolError, keccak256
from gpuspot.protocol.jobspec import (
    MAX_DOCUMENT_BYTES,
    JobInput,
    JobSpec,
    JobSpecError,
    JobSpecMismatchError,
)

HASH = "0x" + "ab" * 32


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "command": ["python", "train.py", "--epochs", "1"],
        "env": {"BATCH": "64"},
        "inputs": [
            {"path": "train.py", "keccak256": HASH, "url": "https://example.org/train.py"},
            {"path": "data/x.bin", "keccak256": "0x" + "cd" * 32},
        ],
        "outputs": ["out/model.bin", "out/metrics.json"],
        "runtime": "process",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_parse_the_documented_example() -> None:
    spec = JobSpec.parse(encode(document()))
    assert spec.command == ("python", "train.py", "--epochs", "1")
    assert spec.environment == {"BATCH": "64"}
    assert spec.inputs[0] == JobInput("train.py", bytes.fromhex("ab" * 32), "https://example.org/train.py")
    assert spec.inputs[1].url is None
    assert spec.outputs == ("out/model.bin", "out/metrics.json")
    assert spec.runtime == "process"


@pytest.mark.parametrize(
    "doc",
    [
        document(env=..., inputs=..., outputs=..., runtime=...),
        document(command=["./run"], env={}, inputs=[], outputs=[]),
        document(command=["python", ""]),  # empty arguments are arguments
        document(env={"_X": "", "A1": "é ü"}),
        document(inputs=[{"path": ".hidden/x", "keccak256": HASH.upper().replace("0X", "0x"), "url": None}]),
        document(inputs=[{"path": "a", "keccak256": HASH, "url": "http://10.0.0.1:8080/a?x=1"}]),
    ],
)
def test_parse_accepts_valid_documents(doc: dict[str, Any]) -> None:
    JobSpec.parse(encode(doc))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\xff", "UTF-8"),
        (b"{", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"version": 1, "command": ["a"], "command": ["b"]}', "appears twice"),
        (b'{"version": 1, "command": ["a"], "env": {"X": NaN}}', "NaN"),
        (encode(document(extra=1)), "unknown keys ['extra']"),
        (encode(document(command=...)), "missing keys ['command']"),
        (encode(document(version=2)), "version must be 1"),
        (encode(document(version=1.0)), "integer 1"),
        (encode(document(version=True)), "integer 1"),
        (encode(document(command=[])), "non-empty list"),
        (encode(document(command="python train.py")), "list of strings"),
        (encode(document(command=["python", 3])), "command[1] must be a string"),
        (encode(document(command=["", "x"])), "command[0] is empty"),
        (encode(document(command=["a\x00b"])), "NUL"),
        (b'{"version": 1, "command": ["\\ud800"]}', "lone surrogate"),
        (encode(document(env=["A=1"])), "env must be an object"),
        (encode(document(env={"batch": "1"})), "[A-Z_][A-Z0-9_]*"),
        (encode(document(env={"1X": "1"})), "[A-Z_][A-Z0-9_]*"),
        (encode(document(env={"X": 1})), "env X must be a string"),
        (encode(document(env={"CUDA_VISIBLE_DEVICES": "0"})), "reserved"),
        (encode(document(env={"NVIDIA_VISIBLE_DEVICES": "all"})), "reserved"),
        (encode(document(env={"GPUSPOT_PROVIDER_KEY": "x"})), "reserved"),
        (encode(document(inputs={"a": HASH})), "inputs must be a list"),
        (encode(document(inputs=["a"])), "inputs[0] must be an object"),
        (encode(document(inputs=[{"path": "a"}])), "needs path and keccak256"),
        (encode(document(inputs=[{"path": "a", "keccak256": HASH, "size": 1}])), "unknown keys ['size']"),
        (encode(document(inputs=[{"path": "a", "keccak256": "ab" * 32}])), "64 hex digits"),
        (encode(document(inputs=[{"path": "a", "keccak256": HASH[:-2]}])), "64 hex digits"),
        (encode(document(inputs=[{"path": "/etc/passwd", "keccak256": HASH}])), "relative path"),
        (encode(document(inputs=[{"path": "../up", "keccak256": HASH}])), "'..'"),
        (encode(document(inputs=[{"path": "a/../../up", "keccak256": HASH}])), "'..'"),
        (encode(document(inputs=[{"path": "a//b", "keccak256": HASH}])), "empty"),
        (encode(document(inputs=[{"path": "./a", "keccak256": HASH}])), "'.'"),
        (encode(document(inputs=[{"path": "a\\b", "keccak256": HASH}])), "separators"),
        (encode(document(inputs=[{"path": "", "keccak256": HASH}])), "is empty"),
        (encode(document(inputs=[{"path": "a", "keccak256": HASH, "url": "ftp://x/a"}])), "http or https"),
        (encode(document(inputs=[{"path": "a", "keccak256": HASH, "url": "https:///a"}])), "http or https"),
        (encode(document(inputs=[{"path": "a", "keccak256": HASH}] * 2)), "input paths must be unique"),
        (encode(document(inputs=[{"path": f"f{i}", "keccak256": HASH} for i in range(257)])), "at most 256"),
        (encode(document(outputs="out")), "outputs must be a list"),
        (encode(document(outputs=["/out"])), "relative path"),
        (encode(document(outputs=["out/../../x"])), "'..'"),
        (encode(document(outputs=["a", "a"])), "output paths must be unique"),
        (encode(document(outputs=[f"o{i}" for i in range(257)])), "at most 256"),
        (encode(document(runtime="docker")), "runtime must be one of ['process']"),
        (b" " * (MAX_DOCUMENT_BYTES + 1), "over 65536"),
    ],
)
def test_parse_refuses_invalid_documents(data: bytes, complaint: str) -> None:
    with pytest.raises(JobSpecError) as info:
        JobSpec.parse(data)
    assert complaint in str(info.value)
    assert isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)


def test_a_spec_over_the_size_limit_is_refused_however_it_is_made() -> None:
    with pytest.raises(JobSpecError, match="move data into inputs"):
        JobSpec.build(["python", "-c", "x" * MAX_DOCUMENT_BYTES])


def test_load_checks_the_bids_hash_before_parsing() -> None:
    data = encode(document())
    assert JobSpec.load(data, keccak256(data)) == JobSpec.parse(data)
    with pytest.raises(JobSpecMismatchError, match="not the bid's jobSpecHash"):
        JobSpec.load(data + b" ", keccak256(data))
    # the hash is checked first: garbage with the wrong hash is a mismatch, not a parse error
    with pytest.raises(JobSpecMismatchError):
        JobSpec.load(b"garbage", keccak256(data))
    with pytest.raises(JobSpecError, match="32 bytes"):
        JobSpec.load(data, b"\x00" * 31)


def test_load_hashes_the_bytes_as_stored_not_the_canonical_form() -> None:
    data = json.dumps(document(), indent=2).encode()
    spec = JobSpec.load(data, keccak256(data))
    assert spec.hash() != keccak256(data)
    assert spec.hash() == keccak256(spec.to_bytes())


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    spec = JobSpec.build(["echo", "héllo"], env={"B": "2", "A": "1"}, outputs=["out"])
    assert (
        spec.to_bytes()
        == (
            '{"command":["echo","héllo"],"env":{"A":"1","B":"2"},"inputs":[],"outputs":["out"],'
            '"runtime":"process","version":1}'
        ).encode()
    )
    assert spec.hash() == keccak256(spec.to_bytes())


def test_canonical_round_trip_of_the_example() -> None:
    spec = JobSpec.parse(encode(document()))
    assert JobSpec.parse(spec.to_bytes()) == spec
    assert JobSpec.parse(spec.to_bytes()).to_bytes() == spec.to_bytes()
    assert JobSpec.load(spec.to_bytes(), spec.hash()) == spec


def test_env_order_does_not_change_the_spec() -> None:
    one = JobSpec.build(["x"], env={"A": "1", "B": "2"})
    two = JobSpec.build(["x"], env={"B": "2", "A": "1"})
    assert one == two and hash(one) == hash(two) and one.hash() == two.hash()


def test_build_validates_like_parse() -> None:
    with pytest.raises(JobSpecError, match="reserved"):
        JobSpec.build(["x"], env={"GPUSPOT_BACKEND": "nvml"})
    with pytest.raises(JobSpecError, match="'..'"):
        JobSpec.build(["x"], outputs=["../x"])
    with pytest.raises(JobSpecError, match="32 bytes"):
        JobInput("a", b"\x00")


_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True).filter(lambda n: not n.startswith("GPUSPOT_"))
_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_paths = st.lists(st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,6}", fullmatch=True), min_size=1, max_size=3).map(
    "/".join
)


@given(
    command=st.lists(_texts, min_size=1, max_size=4).filter(lambda c: c[0] != ""),
    env=st.dictionaries(
        _names.filter(lambda n: n not in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")), _texts
    ),
    inputs=st.dictionaries(_paths, st.tuples(st.binary(min_size=32, max_size=32), st.booleans()), max_size=4),
    outputs=st.lists(_paths, unique=True, max_size=4),
)
def test_any_built_spec_round_trips(
    command: list[str], env: dict[str, str], inputs: dict[str, tuple[bytes, bool]], outputs: list[str]
) -> None:
    files = [
        JobInput(p, h, f"https://example.org/{i}" if url else None)
        for i, (p, (h, url)) in enumerate(inputs.items())
    ]
    spec = JobSpec.build(command, env=env, inputs=files, outputs=outputs)
    again = JobSpec.load(spec.to_bytes(), spec.hash())
    assert again == spec
    assert again.to_bytes() == spec.to_bytes()
