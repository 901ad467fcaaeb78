"""Preparing a job (provider_agent.jobs): the spec checked against the bid, inputs against the spec."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gpuspot.protocol import keccak256
from gpuspot.protocol.jobspec import JobInput, JobSpec, JobSpecError, JobSpecMismatchError
from provider_agent import jobs

SCRIPT = b"print('train')\n"
DATA = bytes(range(256)) * 4


class Blobs:
    """The matcher's blob store, counting fetches."""

    def __init__(self, *items: bytes) -> None:
        self.items = {keccak256(item): item for item in items}
        self.fetched: list[bytes] = []

    def __call__(self, digest: bytes) -> bytes:
        self.fetched.append(digest)
        return self.items[digest]


def spec_with(*inputs: JobInput) -> JobSpec:
    return JobSpec.build(["python", "train.py"], inputs=inputs)


def test_fetch_spec_refuses_bytes_that_are_not_the_bids() -> None:
    spec = spec_with()
    blobs = Blobs(spec.to_bytes())
    assert jobs.fetch_spec(spec.hash(), blobs) == spec
    tampered = spec.to_bytes().replace(b"train", b"mine!")
    with pytest.raises(JobSpecMismatchError):
        jobs.fetch_spec(spec.hash(), lambda digest: tampered)
    with pytest.raises(JobSpecError, match="not JSON"):
        jobs.fetch_spec(keccak256(b"{"), lambda digest: b"{")


def test_prepare_places_blob_and_url_inputs(tmp_path: Path) -> None:
    spec = spec_with(
        JobInput("train.py", keccak256(SCRIPT)),
        JobInput("data/x.bin", keccak256(DATA), "https://data.example/x.bin"),
    )
    blobs = Blobs(SCRIPT)
    urls: list[str] = []

    def http_get(url: str) -> bytes:
        urls.append(url)
        return DATA

    workdir = tmp_path / "lease-1"
    jobs.prepare_workdir(spec, workdir, blobs, http_get)
    assert (workdir / "files" / "train.py").read_bytes() == SCRIPT
    assert (workdir / "files" / "data" / "x.bin").read_bytes() == DATA
    assert (workdir / "spec.json").read_bytes() == spec.to_bytes()
    assert urls == ["https://data.example/x.bin"] and blobs.fetched == [keccak256(SCRIPT)]
    # preparing again (an agent restart) fetches nothing that is already there and right
    jobs.prepare_workdir(spec, workdir, blobs, http_get)
    assert len(urls) == 1 and len(blobs.fetched) == 1


def test_an_input_whose_hash_does_not_match_is_refused_unwritten(tmp_path: Path) -> None:
    spec = spec_with(JobInput("data/x.bin", keccak256(DATA), "https://data.example/x.bin"))
    with pytest.raises(jobs.InputError, match="'data/x.bin'.*not the spec's"):
        jobs.prepare_workdir(spec, tmp_path / "w", Blobs(), lambda url: DATA + b"!")
    assert not (tmp_path / "w" / "files" / "data" / "x.bin").exists()


def test_a_changed_input_on_disk_is_fetched_again(tmp_path: Path) -> None:
    spec = spec_with(JobInput("train.py", keccak256(SCRIPT)))
    blobs = Blobs(SCRIPT)
    jobs.prepare_workdir(spec, tmp_path, blobs)
    (tmp_path / "files" / "train.py").write_bytes(b"tampered")
    jobs.prepare_workdir(spec, tmp_path, blobs)
    assert (tmp_path / "files" / "train.py").read_bytes() == SCRIPT and len(blobs.fetched) == 2


def test_an_input_path_through_a_symlink_out_of_the_workdir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workdir = tmp_path / "lease"
    (workdir / "files").mkdir(parents=True)
    (workdir / "files" / "data").symlink_to(outside)
    spec = spec_with(JobInput("data/x.bin", keccak256(DATA)))
    with pytest.raises(jobs.InputError, match="leads outside"):
        jobs.prepare_workdir(spec, workdir, Blobs(DATA))
    assert list(outside.iterdir()) == []


def test_url_failures_are_input_errors(tmp_path: Path) -> None:
    spec = spec_with(JobInput("x.bin", keccak256(DATA), "https://data.example/x.bin"))

    def unreachable(url: str) -> bytes:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(jobs.InputError, match="'x.bin': cannot fetch https://data.example/x.bin"):
        jobs.prepare_workdir(spec, tmp_path, Blobs(), unreachable)


def test_blob_errors_reach_the_caller_unchanged(tmp_path: Path) -> None:
    # the caller's client knows whether a missing blob is worth waiting for; prepare does not guess
    spec = spec_with(JobInput("train.py", keccak256(SCRIPT)))
    with pytest.raises(KeyError):
        jobs.prepare_workdir(spec, tmp_path, Blobs())


def test_download_caps_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, content=b"x" * 2048)
        if request.url.path == "/missing":
            return httpx.Response(404)
        return httpx.Response(200, content=b"small")

    transport = httpx.MockTransport(handler)

    def stream(method: str, url: str, **kwargs: object) -> object:
        client = httpx.Client(transport=transport)
        return client.stream(method, url, **{k: v for k, v in kwargs.items() if k == "timeout"})

    monkeypatch.setattr(httpx, "stream", stream)
    monkeypatch.setattr(jobs, "MAX_INPUT_BYTES", 1024)
    assert jobs.download("https://data.example/small") == b"small"
    with pytest.raises(jobs.InputError, match="larger than 1024"):
        jobs.download("https://data.example/big")
    with pytest.raises(httpx.HTTPStatusError):
        jobs.download("https://data.example/missing")
