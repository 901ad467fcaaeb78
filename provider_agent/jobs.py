"""Running a lease's job: fetch and check its spec and inputs, start it under a supervisor that survives the
agent, and read back its state and outputs, also after the agent restarted.

    spec = fetch_spec(lease.job_spec_hash, client.get_blob)       # JobSpecMismatchError: reject the lease
    prepare_workdir(spec, workdir, client.get_blob)              # InputError: reject the lease
    handle = start_job(lease_id, spec, workdir, host.job_env(devices), deadline)
    ...                                                          # the agent may crash here
    handle = JobHandle.attach(workdir)
    status = handle.status()                                     # running, exited or lost
    receipt_state = status.receipt_state                         # gpuspot.protocol.evidence.JobState
    handle.output_document()                                     # what the receipts' output digest hashes

The job runs with a minimal environment (PATH, LANG, HOME = its work directory) plus the spec's `env` and
the devices' variables: nothing of the agent's own environment (its key, its settings) reaches it. The work
directory's layout and the supervisor are in `provider_agent.supervise`; see docs/provider-host.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from gpuspot.protocol.evidence import JobState
from gpuspot.protocol.hashing import keccak256
from gpuspot.protocol.jobspec import JobSpec
from provider_agent.supervise import (
    DEFAULT_GRACE_S,
    EXIT_FILE,
    FILES_DIR,
    JOB_FILE,
    JOB_PID_FILE,
    SPEC_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    STOP_FILE,
    SUPERVISOR_LOG,
    SUPERVISOR_PID_FILE,
    pid_alive,
    pid_record,
    write_json_atomic,
)

__all__ = [
    "EXIT_FILE",
    "FILES_DIR",
    "JOB_FILE",
    "MAX_INPUT_BYTES",
    "SPEC_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "InputError",
    "JobError",
    "JobHandle",
    "JobState",
    "JobStatus",
    "fetch_spec",
    "download",
    "prepare_workdir",
    "start_job",
]

MAX_INPUT_BYTES = 1 << 30
"""The largest input fetched from a URL (held in memory while its hash is checked)."""
HTTP_TIMEOUT_S = 60.0
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_HASH_CHUNK = 1 << 20
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where `provider_agent` is importable from


class JobError(Exception):
    """A job cannot be prepared, started or read as asked."""


class InputError(JobError):
    """A job input cannot be fetched, does not hash to the spec's keccak256, or would land outside the work
    directory. The message names the input."""


# --- spec and inputs --------------------------------------------------------------------------------------


def fetch_spec(job_spec_hash: bytes, get_blob: Callable[[bytes], bytes]) -> JobSpec:
    """The job spec the bid signed: the blob of `job_spec_hash`, refused (`JobSpecMismatchError`) unless its
    bytes hash to it, then validated (`JobSpecError`)."""
    return JobSpec.load(get_blob(job_spec_hash), job_spec_hash)


def download(url: str) -> bytes:
    """GETs `url` (redirects followed, `HTTP_TIMEOUT_S` per read, at most `MAX_INPUT_BYTES`)."""
    chunks = []
    size = 0
    with httpx.stream("GET", url, timeout=HTTP_TIMEOUT_S, follow_redirects=True) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_INPUT_BYTES:
                raise InputError(f"{url} is larger than {MAX_INPUT_BYTES} bytes, the limit for one input")
            chunks.append(chunk)
    return b"".join(chunks)


def _inside(root: Path, relative: str, what: str) -> Path:
    """`root / relative`, refused if it resolves outside `root` (through '..' or a symlink)."""
    target = root / relative
    if not target.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{what} {relative!r} leads outside the job's work directory: refused")
    return target


def _keccak_file(path: Path) -> bytes:
    """keccak256 of a file's content, read in chunks."""
    try:
        from sha3 import keccak_256  # safe-pysha3, a dependency; incremental unlike hashing.keccak256
    except ImportError:  # pragma: no cover - depends on the environment
        from Crypto.Hash import keccak

        digest: Any = keccak.new(digest_bits=256)
    else:
        digest = keccak_256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return bytes(digest.digest())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def prepare_workdir(
    spec: JobSpec,
    workdir: Path,
    get_blob: Callable[[bytes], bytes],
    http_get: Callable[[str], bytes] | None = None,
) -> None:
    """Creates `workdir`, writes `spec.json`, and places every input in `workdir/files`, each checked
    against its keccak256 before it is written. An input already there with the right hash is not fetched
    again, so preparing twice (after a restart) is cheap. Inputs with a `url` come from `http_get` (default:
    `download`); the others from `get_blob(hash)`, whose errors (the matcher unreachable, a
    blob not there yet) pass through unchanged for the caller to retry or give up."""
    fetch_url = http_get or download
    files = workdir / FILES_DIR
    files.mkdir(parents=True, exist_ok=True)
    _write_atomic(workdir / SPEC_FILE, spec.to_bytes())
    for item in spec.inputs:
        target = _inside(files, item.path, "input")
        if target.is_file() and _keccak_file(target) == item.keccak256:
            continue
        if item.url is not None:
            try:
                data = fetch_url(item.url)
            except (httpx.HTTPError, OSError) as exc:
                raise InputError(f"input {item.path!r}: cannot fetch {item.url}: {exc}") from None
        else:
            data = get_blob(item.keccak256)
        actual = keccak256(data)
        if actual != item.keccak256:
            raise InputError(
                f"input {item.path!r}: the fetched bytes hash to 0x{actual.hex()}, not the spec's "
                f"0x{item.keccak256.hex()}; the job cannot start with them"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _inside(files, item.path, "input")  # again: a directory made above must not be a link out
        _write_atomic(target, data)


# --- starting a job ---------------------------------------------------------------------------------------


def _job_environment(spec: JobSpec, files: Path, device_env: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", _DEFAULT_PATH),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(files),
    }
    env.update(spec.env)
    env.update(device_env)  # last: the leased devices are the agent's to say
    return env


def start_job(
    lease_id: int,
    spec: JobSpec,
    workdir: Path,
    env: Mapping[str, str],
    deadline: float,
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> JobHandle:
    """Starts the job of a prepared `workdir` under a supervisor (`python -m provider_agent.supervise`) in
    its own session, so the job outlives the agent, and returns at once. `env` is the devices' environment
    (`Host.job_env`); `deadline` is unix time, after which the job gets SIGTERM, then SIGKILL `grace_s`
    later. Raises `JobError` if the job was started before (adopt it with `JobHandle.attach`)."""
    workdir = workdir.resolve()
    if (workdir / JOB_FILE).exists():
        raise JobError(f"the job in {workdir} was started before: adopt it with JobHandle.attach")
    files = workdir / FILES_DIR
    files.mkdir(parents=True, exist_ok=True)
    job = {
        "lease_id": lease_id,
        "command": list(spec.command),
        "env": _job_environment(spec, files, env),
        "deadline": float(deadline),
        "grace_s": float(grace_s),
        "outputs": list(spec.outputs),
    }
    write_json_atomic(workdir / JOB_FILE, job)
    supervisor_env = {
        "PATH": os.environ.get("PATH", _DEFAULT_PATH),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": str(_PACKAGE_ROOT),
    }
    with open(workdir / SUPERVISOR_LOG, "ab") as supervisor_log:
        process = subprocess.Popen(
            [sys.executable, "-m", "provider_agent.supervise", str(workdir)],
            cwd=workdir,
            env=supervisor_env,  # not the agent's: its key and settings stay with it
            stdin=subprocess.DEVNULL,
            stdout=supervisor_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the agent's process group: a signal to the agent spares it
            close_fds=True,
        )
    # The supervisor records itself once its signal handlers are in place; until then this record (written
    # only if the supervisor's is not there yet) tells an agent that restarts right now that it is starting.
    with (
        contextlib.suppress(FileExistsError),
        open(workdir / SUPERVISOR_PID_FILE, "x", encoding="utf-8") as record,
    ):
        json.dump(pid_record(process.pid, ready=False), record)
    return JobHandle(workdir, lease_id, tuple(spec.outputs), _process=process)


# --- following a job --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where a job is: `running`; `exited` (with exit.json's fields); or `lost`, when its supervisor is gone
    without having written exit.json (killed itself), so how the job ended is unknown."""

    state: Literal["running", "exited", "lost"]
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    stopped: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def receipt_state(self) -> JobState:
        """The receipt's `job_state`: RUNNING; else STOPPED, TIMED_OUT, SUCCEEDED (exit 0) or FAILED (any
        other end, and a lost job, whose end nobody saw)."""
        if self.state == "running":
            return JobState.RUNNING
        if self.state == "lost":
            return JobState.FAILED
        if self.stopped:
            return JobState.STOPPED
        if self.timed_out:
            return JobState.TIMED_OUT
        return JobState.SUCCEEDED if self.exit_code == 0 else JobState.FAILED

    def __str__(self) -> str:
        if self.state != "exited":
            return self.state
        how = f"exit {self.exit_code}" if self.exit_code is not None else f"signal {self.signal}"
        notes = [note for note, on in (("stopped", self.stopped), ("timed out", self.timed_out)) if on]
        if self.error:
            notes.append(self.error)
        return f"exited, {how}" + (f" ({'; '.join(notes)})" if notes else "")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


@dataclass(eq=False)
class JobHandle:
    """A job in its work directory. Holds no state the directory does not have: a handle made by
    `start_job` and one made by `attach` after a restart behave the same."""

    workdir: Path
    lease_id: int | None = None
    outputs: tuple[str, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def attach(cls, workdir: Path) -> JobHandle:
        """The job started in `workdir` by `start_job`, in this agent process or an earlier one."""
        workdir = Path(workdir).resolve()
        job = _read_json(workdir / JOB_FILE)
        if job is None:
            raise JobError(f"no job was started in {workdir} (no readable {JOB_FILE})")
        return cls(workdir, job.get("lease_id"), tuple(job.get("outputs", ())))

    def status(self) -> JobStatus:
        """The job's state now. A job found `lost` has its process group killed, in case the job itself still
        runs without a supervisor: it must not keep the devices."""
        if self._process is not None:
            self._process.poll()  # reap our own supervisor, so a finished one is not a zombie
        record = _read_json(self.workdir / SUPERVISOR_PID_FILE)
        alive = record is not None and pid_alive(record)
        # exit.json is written before the supervisor exits, so read after the liveness check: no race
        ended = _read_json(self.workdir / EXIT_FILE)
        if ended is not None:
            return JobStatus(
                state="exited",
                exit_code=ended.get("exit_code"),
                signal=ended.get("signal"),
                timed_out=bool(ended.get("timed_out")),
                stopped=bool(ended.get("stopped")),
                started_at=ended.get("started_at"),
                ended_at=ended.get("ended_at"),
                error=ended.get("error"),
            )
        if alive:
            return JobStatus(state="running")
        self._kill_orphaned_job()
        return JobStatus(state="lost")

    def _kill_orphaned_job(self) -> None:
        record = _read_json(self.workdir / JOB_PID_FILE)
        if record is not None and pid_alive(record):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signal.SIGKILL)

    def stop(self) -> None:
        """Asks the supervisor to stop the job (SIGTERM to the job's group, SIGKILL after the grace); the job
        then ends `stopped`. Idempotent, and harmless once the job has ended."""
        if (self.workdir / EXIT_FILE).exists():
            return
        (self.workdir / STOP_FILE).touch()  # seen even by a supervisor that is still starting
        record = _read_json(self.workdir / SUPERVISOR_PID_FILE)
        if record is not None and record.get("ready") and pid_alive(record):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(record["pid"], signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> JobStatus:
        """The status once the job is no longer running, or after `timeout` seconds (then still running)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if not status.running or (end is not None and time.monotonic() >= end):
                return status
            time.sleep(0.05)

    def output_files(self) -> dict[str, Path]:
        """The declared outputs that exist as regular files inside the job's directory, by spec path. A
        symlink leading out of it is not an output (it could name any file of the host)."""
        files = self.workdir / FILES_DIR
        found = {}
        for name in self.outputs:
            path = files / name
            try:
                inside = path.resolve().is_relative_to(files.resolve())
            except OSError:
                continue
            if inside and path.is_file():
                found[name] = path
        return found

    def log_files(self) -> dict[str, Path]:
        """The job's stdout and stderr logs (which exist once the job has started)."""
        return {"stdout": self.workdir / STDOUT_FILE, "stderr": self.workdir / STDERR_FILE}

    def output_document(self) -> dict[str, Any]:
        """`{"outputs": {path: "0x<keccak>"}, "stdout": "0x<keccak>", "stderr": "0x<keccak>"}` so far: the
        document whose digest the receipts carry (a missing log hashes as empty)."""
        outputs = {name: "0x" + _keccak_file(path).hex() for name, path in self.output_files().items()}
        logs = {
            name: "0x" + (_keccak_file(path) if path.is_file() else keccak256(b"")).hex()
            for name, path in self.log_files().items()
        }
        return {"outputs": outputs, **logs}
