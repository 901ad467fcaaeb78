"""The job supervisor: one small process per job that outlives the agent.

`python -m provider_agent.supervise <workdir>` (started by `provider_agent.jobs.start_job`, in a session of
its own) reads `job.json`, runs the job's command in `<workdir>/files` in a new process group, enforces the
deadline, and writes `exit.json` when the job ends. Everything the agent needs to pick the job up again
after a crash (even kill -9) is in the work directory:

    spec.json        the job spec, canonical bytes        job.json     command, env, deadline, outputs
    supervisor.pid   {"pid", "start", "ready"}           job.pid      {"pid", "start"} of the job's group
    stdout.log       the job's stdout                     stderr.log   the job's stderr
    exit.json        {"exit_code", "signal", "timed_out", "stopped", "started_at", "ended_at", "error"}
    stop             present once a stop was requested    files/       the job's work directory and HOME

The deadline and a stop request (SIGTERM to the supervisor, or the `stop` file) end the job the same way:
SIGTERM to its process group, SIGKILL `grace_s` later. When the job's main process ends, whatever is left of
its group and every descendant that escaped it (the supervisor is their subreaper on Linux) is killed too:
nothing of a job keeps a leased GPU after it. Standard library only, so it starts fast and imports nothing
of the agent's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_GRACE_S",
    "EXIT_FILE",
    "FILES_DIR",
    "JOB_FILE",
    "JOB_PID_FILE",
    "SPEC_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "STOP_FILE",
    "SUPERVISOR_LOG",
    "SUPERVISOR_PID_FILE",
    "main",
    "pid_alive",
    "pid_record",
    "write_json_atomic",
]

SPEC_FILE = "spec.json"
JOB_FILE = "job.json"
SUPERVISOR_PID_FILE = "supervisor.pid"
JOB_PID_FILE = "job.pid"
SUPERVISOR_LOG = "supervisor.log"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
EXIT_FILE = "exit.json"
STOP_FILE = "stop"
FILES_DIR = "files"
DEFAULT_GRACE_S = 10.0

_POLL_S = 0.05
_ORPHAN_SWEEP_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36

log = logging.getLogger("provider_agent.supervise")


# --- shared with provider_agent.jobs ----------------------------------------------------------------------


def write_json_atomic(path: Path, document: object) -> None:
    """Writes `document` so that readers see the old file or the whole new one, never a part (tmp + rename),
    and the rename survives a power cut (fsync of the file and the directory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(document, out, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when there is no
    such process or it is a zombie. With the pid it names one process for good: pids are reused, this pair
    is not."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def pid_record(pid: int, **extra: object) -> dict[str, Any]:
    """What identifies a live process later: its pid and start time (None off Linux)."""
    return {"pid": pid, "start": _start_ticks(pid), **extra}


def pid_alive(record: dict[str, Any]) -> bool:
    """Whether the process of `record` (from `pid_record`) still runs: same pid, same start time."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.path.exists("/proc/self/stat"):
        start = _start_ticks(pid)
        return start is not None and start == record.get("start")
    try:  # no /proc: the pid alone, which a reused pid can fool
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- the supervisor ---------------------------------------------------------------------------------------


class _Stop:
    requested = False


def _become_subreaper() -> None:
    """Linux: orphans of the job (a daemonised child that left the job's process group) become our
    children instead of init's, so the end-of-job sweep finds and kills them."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        log.warning("cannot become a subreaper: %s", exc)


def _children() -> list[int]:
    """Our child processes, from /proc (Linux); empty elsewhere."""
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(me):
            found.append(int(entry))
    return found


def _reap_orphans(leader: int) -> None:
    """Reaps exited descendants that were reparented to us (not the job's leader, reaped by Popen)."""
    for pid in _children():
        if pid != leader:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _sweep(within: float = 5.0) -> None:
    """After the job's leader has been reaped: SIGKILL every remaining child of ours (descendants of the job
    reparented to us) and reap them. Bounded in time: a process stuck in the kernel (a hung GPU driver call)
    ignores even SIGKILL, and must not keep exit.json from being written."""
    deadline = time.monotonic() + within
    while (children := _children()) and time.monotonic() < deadline:
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(_POLL_S)
    if children:
        log.warning("processes %s of the job did not die within %.0f s of SIGKILL", children, within)


def _leader_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the job's main process has exited, without reaping it: while it is a zombie its pid, and so
    its process group id, cannot be reused, so killing the group afterwards cannot hit a stranger."""
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True
    return process.poll() is not None


def _result(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "exit_code": None,
        "signal": None,
        "timed_out": False,
        "stopped": False,
        "started_at": None,
        "ended_at": time.time(),
        "error": None,
    }
    document.update(fields)
    return document


def run(job: dict[str, Any], workdir: Path, stop: _Stop) -> dict[str, Any]:
    """Runs the job of `job.json` to its end; returns the exit document."""
    command = [str(arg) for arg in job["command"]]
    env = {str(k): str(v) for k, v in job["env"].items()}
    deadline = float(job["deadline"])
    grace = float(job.get("grace_s", DEFAULT_GRACE_S))
    stop_file = workdir / STOP_FILE

    def stop_requested() -> bool:
        return stop.requested or stop_file.exists()

    if stop_requested():
        return _result(stopped=True, error="stopped before the job started")
    if time.time() >= deadline:
        return _result(timed_out=True, error="the deadline had passed before the job started")
    started_at = time.time()
    with open(workdir / STDOUT_FILE, "ab") as stdout, open(workdir / STDERR_FILE, "ab") as stderr:
        try:
            process = subprocess.Popen(
                command,
                cwd=workdir / FILES_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: one signal reaches all of it
                close_fds=True,
            )
        except FileNotFoundError as exc:
            return _result(exit_code=127, started_at=started_at, error=f"command not found: {exc}")
        except OSError as exc:
            return _result(exit_code=126, started_at=started_at, error=f"command cannot run: {exc}")
    write_json_atomic(workdir / JOB_PID_FILE, pid_record(process.pid))
    log.info("job started: pid %d, deadline %.3f", process.pid, deadline)

    timed_out = stopped = False
    kill_at: float | None = None
    killed = False
    next_sweep = time.monotonic() + _ORPHAN_SWEEP_S
    while not _leader_exited(process):
        now = time.monotonic()
        if kill_at is None:
            if stop_requested():
                stopped = True
            elif time.time() >= deadline:
                timed_out = True
            if stopped or timed_out:
                log.info("job %s: SIGTERM to its group", "stopped" if stopped else "past its deadline")
                _killpg(process.pid, signal.SIGTERM)
                kill_at = now + grace
        elif not killed and now >= kill_at:
            log.info("job still running %.1f s after SIGTERM: SIGKILL", grace)
            _killpg(process.pid, signal.SIGKILL)
            killed = True
        if now >= next_sweep:
            _reap_orphans(process.pid)
            next_sweep = now + _ORPHAN_SWEEP_S
        time.sleep(_POLL_S)
    _killpg(process.pid, signal.SIGKILL)  # the rest of its group, while the zombie leader holds the id
    returncode = process.wait()
    _sweep()
    return _result(
        exit_code=returncode if returncode >= 0 else None,
        signal=-returncode if returncode < 0 else None,
        timed_out=timed_out,
        stopped=stopped,
        started_at=started_at,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m provider_agent.supervise <workdir>", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s")
    workdir = Path(args[0]).resolve()
    stop = _Stop()

    def request_stop(signum: int, frame: object) -> None:
        stop.requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    write_json_atomic(workdir / SUPERVISOR_PID_FILE, pid_record(os.getpid(), ready=True))
    if (workdir / EXIT_FILE).exists():
        log.info("the job has already ended (exit.json exists); nothing to do")
        return 0
    _become_subreaper()
    try:
        job = json.loads((workdir / JOB_FILE).read_text(encoding="utf-8"))
        result = run(job, workdir, stop)
    except Exception as exc:  # whatever went wrong, the agent must learn that the job ended
        log.exception("the supervisor failed")
        result = _result(exit_code=None, error=f"supervisor error: {exc}")
    write_json_atomic(workdir / EXIT_FILE, result)
    log.info("job ended: %s", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
