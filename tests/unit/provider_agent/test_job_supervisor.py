"""Jobs under the supervisor (provider_agent.jobs, provider_agent.supervise), with real subprocesses.

Each job is a short Python program (sys.executable, so it needs no PATH). What is checked: exit states and
their receipt numbers, the deadline and stop kill sequences (children included), the environment a job
gets, output digests, and that a job outlives its agent and is picked up again from its work directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gpuspot.protocol import keccak256
from gpuspot.protocol.evidence import JobState
from gpuspot.protocol.jobspec import JobSpec
from provider_agent import jobs
from provider_agent.host import CpuHost
from provider_agent.supervise import JOB_PID_FILE, SUPERVISOR_PID_FILE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")

DEVICE_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "GPUSPOT_BACKEND": "cpu-simulated",
    "GPUSPOT_SIMULATED_GPUS": "CPU-0",
}


def python_job(code: str, outputs: tuple[str, ...] = (), env: dict[str, str] | None = None) -> JobSpec:
    return JobSpec.build([sys.executable, "-c", textwrap.dedent(code)], env=env, outputs=outputs)


def start(
    tmp_path: Path,
    spec: JobSpec,
    *,
    seconds: float = 30.0,
    grace_s: float = 10.0,
    env: dict[str, str] | None = None,
) -> jobs.JobHandle:
    workdir = tmp_path / "lease-1"
    jobs.prepare_workdir(spec, workdir, get_blob=lambda h: pytest.fail("no blobs here"))
    return jobs.start_job(1, spec, workdir, env or DEVICE_ENV, time.time() + seconds, grace_s=grace_s)


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether the process has exited (a zombie counts as gone: it runs nothing)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def wait_for(path: Path, within: float = 5.0) -> None:
    end = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_a_job_that_succeeds_with_outputs(tmp_path: Path) -> None:
    spec = python_job(
        """
        import os, sys
        os.makedirs("out", exist_ok=True)
        open("out/result.bin", "wb").write(b"the result")
        print("hello"); print("warning", file=sys.stderr)
        """,
        outputs=("out/result.bin", "out/never-written"),
    )
    handle = start(tmp_path, spec)
    status = handle.wait(10)
    assert status.state == "exited" and status.exit_code == 0 and status.signal is None
    assert status.receipt_state is JobState.SUCCEEDED
    assert (
        status.started_at is not None and status.ended_at is not None and status.ended_at >= status.started_at
    )
    document = handle.output_document()
    assert document == {
        "outputs": {"out/result.bin": "0x" + keccak256(b"the result").hex()},
        "stdout": "0x" + keccak256(b"hello\n").hex(),
        "stderr": "0x" + keccak256(b"warning\n").hex(),
    }
    files = handle.output_files()
    assert list(files) == ["out/result.bin"] and files["out/result.bin"].read_bytes() == b"the result"
    assert json.loads((handle.workdir / "spec.json").read_bytes()) == json.loads(spec.to_bytes())


def test_a_job_that_crashes_failed(tmp_path: Path) -> None:
    status = start(tmp_path, python_job("import sys; sys.exit(3)")).wait(10)
    assert status.exit_code == 3 and status.receipt_state is JobState.FAILED
    assert "exit 3" in str(status)


def test_a_job_past_its_deadline_is_killed_with_its_children(tmp_path: Path) -> None:
    spec = python_job(
        """
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        open("child.pid", "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    handle = start(tmp_path, spec, seconds=1.0)
    wait_for(handle.workdir / "files" / "child.pid")
    child = int((handle.workdir / "files" / "child.pid").read_text())
    status = handle.wait(10)
    assert status.timed_out and not status.stopped
    assert status.signal == signal.SIGTERM and status.exit_code is None
    assert status.receipt_state is JobState.TIMED_OUT
    assert gone(child)


def test_a_job_that_ignores_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    spec = python_job(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open("ready", "w").close()
        time.sleep(60)
        """
    )
    handle = start(tmp_path, spec, grace_s=0.3)
    wait_for(handle.workdir / "files" / "ready")
    handle.stop()
    status = handle.wait(10)
    assert status.stopped and status.signal == signal.SIGKILL
    assert status.receipt_state is JobState.STOPPED


def test_detached_descendants_do_not_outlive_the_job(tmp_path: Path) -> None:
    # a grandchild in a session of its own escapes the job's process group; the supervisor still kills it
    spec = python_job(
        """
        import subprocess
        daemon = subprocess.Popen(["sleep", "60"], start_new_session=True)
        open("daemon.pid", "w").write(str(daemon.pid))
        """
    )
    handle = start(tmp_path, spec)
    status = handle.wait(15)
    assert status.exit_code == 0
    assert gone(int((handle.workdir / "files" / "daemon.pid").read_text()))


def test_stop_ends_the_job_stopped_and_is_idempotent(tmp_path: Path) -> None:
    spec = python_job("open('ready', 'w').close(); import time; time.sleep(60)")
    handle = start(tmp_path, spec)
    wait_for(handle.workdir / "files" / "ready")
    assert handle.status().running and handle.status().receipt_state is JobState.RUNNING
    handle.stop()
    handle.stop()
    status = handle.wait(10)
    assert status.stopped and status.receipt_state is JobState.STOPPED
    handle.stop()  # after the end: nothing to do
    assert handle.status() == status


def test_stop_right_after_start_is_not_lost(tmp_path: Path) -> None:
    handle = start(tmp_path, python_job("import time; time.sleep(60)"))
    handle.stop()  # the supervisor may not have its signal handlers yet: the stop file still reaches it
    status = handle.wait(10)
    assert status.state == "exited" and status.stopped


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    handle = start(tmp_path, JobSpec.build(["definitely-not-a-gpuspot-command"]))
    status = handle.wait(10)
    assert status.exit_code == 127 and status.error is not None and "not found" in status.error
    assert status.receipt_state is JobState.FAILED
    assert handle.output_document()["stdout"] == "0x" + keccak256(b"").hex()


def test_a_deadline_already_past_never_starts_the_job(tmp_path: Path) -> None:
    handle = start(tmp_path, python_job("open('ran', 'w').close()"), seconds=-1)
    status = handle.wait(10)
    assert status.timed_out and status.receipt_state is JobState.TIMED_OUT
    assert not (handle.workdir / "files" / "ran").exists()


def test_the_job_sees_the_devices_and_not_the_agents_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUSPOT_PROVIDER_KEY", "0x" + "11" * 32)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    host = CpuHost(2, "H100-80GB", "box")
    spec = python_job(
        "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))", env={"BATCH": "64"}
    )
    handle = start(tmp_path, spec, env=host.job_env(host.devices()[1:]))
    assert handle.wait(10).exit_code == 0
    env = json.loads((handle.workdir / "files" / "env.json").read_text())
    assert "GPUSPOT_PROVIDER_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["GPUSPOT_SIMULATED_GPUS"] == host.devices()[1].uuid
    assert env["BATCH"] == "64"
    assert env["HOME"] == str(handle.workdir / "files")
    assert set(env) - {"LC_CTYPE"} <= {"PATH", "LANG", "HOME", "BATCH", *host.job_env(host.devices())}


def test_the_supervisor_does_not_carry_the_agents_secrets_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUSPOT_PROVIDER_KEY", "0x" + "11" * 32)
    handle = start(tmp_path, python_job("import time; time.sleep(60)"))
    try:
        wait_for(handle.workdir / JOB_PID_FILE)
        record = json.loads((handle.workdir / SUPERVISOR_PID_FILE).read_text())
        environ = Path(f"/proc/{record['pid']}/environ").read_bytes()
        assert b"GPUSPOT_PROVIDER_KEY" not in environ
    finally:
        handle.stop()
        handle.wait(10)


def test_a_restarted_agent_reattaches_from_the_workdir(tmp_path: Path) -> None:
    spec = python_job("import time; open('ready', 'w').close(); time.sleep(0.5)", outputs=("ready",))
    handle = start(tmp_path, spec)
    workdir = handle.workdir
    del handle  # the agent forgets everything but the directory
    again = jobs.JobHandle.attach(workdir)
    assert again.lease_id == 1 and again.outputs == ("ready",)
    assert again.status().running
    status = again.wait(10)
    assert status.exit_code == 0 and status.receipt_state is JobState.SUCCEEDED
    assert again.output_document()["outputs"] == {"ready": "0x" + keccak256(b"").hex()}


def test_a_job_survives_its_agents_kill_9_and_reports_its_exit(tmp_path: Path) -> None:
    # a real agent process starts the job and is killed with SIGKILL; the job goes on to the end unwatched
    workdir = tmp_path / "lease-7"
    spec = python_job("import time; time.sleep(0.5); open('done', 'w').write('yes')", outputs=("done",))
    jobs.prepare_workdir(spec, workdir, get_blob=lambda h: b"")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from gpuspot.protocol.jobspec import JobSpec
                from provider_agent import jobs
                spec = JobSpec.parse(Path({str(workdir / "spec.json")!r}).read_bytes())
                jobs.start_job(7, spec, Path({str(workdir)!r}), {{}}, time.time() + 30)
                print("started", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )
    assert agent.stdout is not None and agent.stdout.readline() == b"started\n"
    agent.kill()
    agent.wait()
    wait_for(workdir / "exit.json", within=10)
    handle = jobs.JobHandle.attach(workdir)
    status = handle.status()
    assert status.exit_code == 0 and status.receipt_state is JobState.SUCCEEDED
    assert handle.output_document()["outputs"] == {"done": "0x" + keccak256(b"yes").hex()}


def test_a_killed_supervisor_makes_the_job_lost_and_kills_it(tmp_path: Path) -> None:
    handle = start(tmp_path, python_job("import time; time.sleep(60)"))
    wait_for(handle.workdir / JOB_PID_FILE)
    supervisor = json.loads((handle.workdir / SUPERVISOR_PID_FILE).read_text())["pid"]
    job = json.loads((handle.workdir / JOB_PID_FILE).read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    assert gone(supervisor)
    status = jobs.JobHandle.attach(handle.workdir).status()
    assert status.state == "lost" and status.receipt_state is JobState.FAILED
    assert gone(job)  # an unsupervised job must not keep the devices


def test_start_twice_is_refused(tmp_path: Path) -> None:
    handle = start(tmp_path, python_job("pass"))
    handle.wait(10)
    with pytest.raises(jobs.JobError, match="attach"):
        jobs.start_job(1, python_job("pass"), handle.workdir, {}, time.time() + 10)
    with pytest.raises(jobs.JobError, match="no job"):
        jobs.JobHandle.attach(tmp_path / "elsewhere")


def test_an_output_that_links_outside_the_job_is_not_an_output(tmp_path: Path) -> None:
    secret = tmp_path / "agent-key"
    secret.write_text("0x11")
    spec = python_job(f"import os; os.symlink({str(secret)!r}, 'stolen')", outputs=("stolen",))
    handle = start(tmp_path, spec)
    assert handle.wait(10).exit_code == 0
    assert handle.output_files() == {} and handle.output_document()["outputs"] == {}
