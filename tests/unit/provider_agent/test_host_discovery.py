"""Host discovery (provider_agent.host): the CPU stand-in as it is, NVML against a fake pynvml module."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from gpuspot.catalog import Catalog
from gpuspot.protocol import keccak256
from gpuspot.protocol.challenge import Challenge, answer, challenge_matrices, numpy_matmul
from provider_agent import matmul
from provider_agent.host import (
    CPU_SIMULATED,
    NVML,
    CpuHost,
    Device,
    HostError,
    NvmlHost,
    discover,
    host_id,
    product_for,
)

CATALOG = Catalog.default()
GiB = 2**30
MiB = 2**20


# --- a fake pynvml: what the driver's library answers, without a driver -------------------------------------


class NVMLError(Exception):
    def __init__(self, value: int, text: str = "NVML error") -> None:
        super().__init__(text)
        self.value = value


class NVMLErrorNotSupported(NVMLError):
    def __init__(self) -> None:
        super().__init__(3, "Not Supported")


class FakeNvml(ModuleType):
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[dict[str, Any]], init_error: NVMLError | None = None) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        if index >= len(self.gpus):
            raise NVMLError(2, "Invalid Argument")
        return ("handle", index)

    def _gpu(self, handle: Any) -> dict[str, Any]:
        return self.gpus[handle[1]]

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._gpu(handle)["name"]  # type: ignore[no-any-return]

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu(handle)["uuid"]  # type: ignore[no-any-return]

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> SimpleNamespace:
        gpu = self._gpu(handle)
        return SimpleNamespace(total=gpu["total"], used=gpu.get("used", 0), free=gpu["total"])

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._gpu(handle).get("util", 0), memory=0)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._gpu(handle).get("temp", 40)  # type: ignore[no-any-return]

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        power = self._gpu(handle).get("power")
        if power is None:
            raise NVMLErrorNotSupported()
        return power  # type: ignore[no-any-return]


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-5b8f6e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "total": 81559 * MiB,
}
H100_B = {**H100, "uuid": "GPU-00000000-1111-2222-3333-444444444444"}


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    module = FakeNvml([dict(H100, util=87, used=40000 * MiB, temp=61, power=412_345), dict(H100_B)])
    monkeypatch.setitem(sys.modules, "pynvml", module)
    yield module


def nvml_device(name: str, memory_bytes: int, index: int = 0) -> Device:
    return Device(index=index, uuid=f"GPU-{index}", name=name, memory_bytes=memory_bytes, backend=NVML)


# --- the CPU stand-in -------------------------------------------------------------------------------------


def test_cpu_host_says_it_is_simulated_everywhere() -> None:
    host = CpuHost(2, "H100-80GB", "box-1")
    tag = keccak256(b"box-1").hex()[:8]
    devices = host.devices()
    assert [d.uuid for d in devices] == [f"CPU-SIM-{tag}-0", f"CPU-SIM-{tag}-1"]
    assert {d.name for d in devices} == {"CPU (simulating H100-80GB)"}
    assert {d.backend for d in devices} == {CPU_SIMULATED}
    assert devices[0].memory_bytes == 80 * 10**9
    assert host.backend == CPU_SIMULATED
    described = host.describe()
    assert described["simulated"] is True and described["simulates"] == "H100-80GB"
    assert described["backend"] == CPU_SIMULATED and described["host"] == "box-1"
    json.dumps(described)


def test_cpu_host_uuids_are_stable_per_host_label() -> None:
    assert CpuHost(1, "L40S-48GB", "a").devices() == CpuHost(1, "L40S-48GB", "a").devices()
    assert CpuHost(1, "L40S-48GB", "a").devices()[0].uuid != CpuHost(1, "L40S-48GB", "b").devices()[0].uuid


def test_cpu_telemetry_is_integers_one_sample_per_device() -> None:
    host = CpuHost(3, "H100-80GB", "box")
    leased = host.devices()[1:]
    document = host.telemetry(leased)
    assert document["backend"] == CPU_SIMULATED
    assert document["devices"] == [d.uuid for d in leased]
    assert [s["uuid"] for s in document["samples"]] == document["devices"]
    for sample in document["samples"]:
        assert set(sample) == {"uuid", "t_ms", "util_pct", "mem_used_mib", "temp_c", "power_mw"}
        assert isinstance(sample["t_ms"], int) and isinstance(sample["util_pct"], int)
        assert 0 <= sample["util_pct"] <= 100
        assert isinstance(sample["mem_used_mib"], int) and sample["mem_used_mib"] > 0
        assert sample["temp_c"] is None and sample["power_mw"] is None
    assert "." not in json.dumps(document)  # no floats anywhere
    host.telemetry(leased)  # the second reading takes the /proc/stat difference


def test_cpu_job_env_hides_every_gpu() -> None:
    host = CpuHost(2, "H100-80GB", "box")
    env = host.job_env(host.devices()[:1])
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["GPUSPOT_BACKEND"] == CPU_SIMULATED
    assert env["GPUSPOT_SIMULATED_GPUS"] == host.devices()[0].uuid


def test_a_host_refuses_devices_it_does_not_have() -> None:
    host = CpuHost(1, "H100-80GB", "box")
    other = CpuHost(1, "H100-80GB", "elsewhere").devices()
    for call in (host.telemetry, host.job_env):
        with pytest.raises(HostError, match="not on this host"):
            call(other)
    with pytest.raises(HostError, match="not on this host"):
        host.matmul(other[0])


def test_cpu_matmul_answers_challenges() -> None:
    host = CpuHost(1, "H100-80GB", "box")
    challenge = Challenge.derive(keccak256(b"block"), 7, 0, n=64, issued_at_ms=0, deadline_ms=1_000)
    assert answer(challenge, host.matmul(host.devices()[0])).root == answer(challenge).root


def test_a_cpu_host_with_a_simulated_fault_answers_wrongly_and_says_so() -> None:
    host = CpuHost(1, "H100-80GB", "box", fault="wrong-answer")
    challenge = Challenge.derive(keccak256(b"block"), 7, 0, n=64, issued_at_ms=0, deadline_ms=1_000)
    a, b = challenge_matrices(challenge)
    wrong = host.matmul(host.devices()[0])(a, b)
    assert (wrong - numpy_matmul(a, b) == 1).all()
    assert answer(challenge, host.matmul(host.devices()[0])).root != answer(challenge).root
    assert host.describe()["fault"] == "wrong-answer"
    assert CpuHost(1, "H100-80GB", "box").describe()["fault"] == "none"
    with pytest.raises(HostError, match="unknown CPU fault"):
        CpuHost(1, "H100-80GB", "box", fault="slow")


def test_a_simulated_fault_needs_the_cpu_backend() -> None:
    from pydantic import ValidationError

    from provider_agent.config import AgentSettings

    with pytest.raises(ValidationError, match="cpu backend only"):
        AgentSettings(backend="nvml", cpu_fault="wrong-answer")
    with pytest.raises(ValidationError, match="cpu_fault must be one of"):
        AgentSettings(backend="cpu", simulates="H100-80GB", cpu_fault="slow")
    assert AgentSettings(backend="cpu", simulates="H100-80GB", cpu_fault="wrong-answer").cpu_fault


def test_cpu_host_needs_a_catalog_product() -> None:
    with pytest.raises(HostError, match="no product named 'B200'"):
        CpuHost(1, "B200", "box")
    with pytest.raises(HostError, match="at least 1 GPU"):
        CpuHost(0, "H100-80GB", "box")


# --- NVML -------------------------------------------------------------------------------------------------


def test_nvml_host_reads_the_gpus(fake_nvml: FakeNvml) -> None:
    host = NvmlHost()
    devices = host.devices()
    assert [d.uuid for d in devices] == [H100["uuid"], H100_B["uuid"]]
    assert devices[0] == Device(0, H100["uuid"], "NVIDIA H100 80GB HBM3", 81559 * MiB, NVML)
    described = host.describe()
    assert described["backend"] == NVML and described["simulated"] is False
    assert described["driver_version"] == "550.54.15"
    host.close()
    host.close()
    assert fake_nvml.shutdowns == 1


def test_nvml_accepts_names_as_bytes(fake_nvml: FakeNvml) -> None:
    fake_nvml.gpus[0]["name"] = b"NVIDIA H100 80GB HBM3"
    assert NvmlHost().devices()[0].name == "NVIDIA H100 80GB HBM3"


def test_nvml_telemetry_samples_each_device(fake_nvml: FakeNvml) -> None:
    with NvmlHost() as host:
        document = host.telemetry(host.devices())
    assert document["backend"] == NVML
    first, second = document["samples"]
    assert first["util_pct"] == 87 and first["mem_used_mib"] == 40000
    assert first["temp_c"] == 61 and first["power_mw"] == 412_345
    assert second["power_mw"] is None  # not supported on that board: null, the rest still read
    assert isinstance(first["t_ms"], int)


def test_nvml_job_env_names_the_leased_gpus_by_uuid(fake_nvml: FakeNvml) -> None:
    host = NvmlHost()
    env = host.job_env(host.devices()[1:])
    assert env["CUDA_VISIBLE_DEVICES"] == H100_B["uuid"]
    assert env["NVIDIA_VISIBLE_DEVICES"] == H100_B["uuid"]
    assert env["GPUSPOT_BACKEND"] == NVML
    assert host.job_env(host.devices())["CUDA_VISIBLE_DEVICES"] == f"{H100['uuid']},{H100_B['uuid']}"


def test_nvml_failure_at_discovery_is_a_host_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeNvml([], init_error=NVMLError(12, "NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(HostError, match="NVML Shared Library Not Found"):
        NvmlHost()


def test_nvml_without_gpus_is_a_host_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeNvml([])
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(HostError, match="no GPUs"):
        NvmlHost()
    assert module.shutdowns == 1


def test_nvml_error_while_reading_devices_shuts_nvml_down(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeNvml([dict(H100)])

    def broken(handle: object) -> str:
        raise NVMLError(15, "GPU is lost")

    module.nvmlDeviceGetUUID = broken  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(HostError, match="GPU is lost"):
        NvmlHost()
    assert module.shutdowns == 1


def test_nvml_matmul_without_torch_or_cupy_says_what_to_install(
    fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(matmul, "_torch", lambda: None)
    monkeypatch.setattr(matmul, "_cupy", lambda: None)
    host = NvmlHost()
    with pytest.raises(HostError, match="install torch"):
        host.matmul(host.devices()[0])


# --- discover ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], init_error=NVMLError(12, "Library Not Found")))


def test_discover_auto_prefers_nvml(fake_nvml: FakeNvml) -> None:
    assert discover("auto", simulates="H100-80GB").backend == NVML


@pytest.mark.usefixtures("no_nvml")
def test_discover_auto_falls_back_to_the_cpu_only_when_asked() -> None:
    with pytest.raises(HostError, match="backend 'cpu' with simulates"):
        discover("auto")
    host = discover("auto", cpu_gpus=2, simulates="A100-80GB")
    assert host.backend == CPU_SIMULATED and len(host.devices()) == 2


@pytest.mark.usefixtures("no_nvml")
def test_discover_explicit_backends() -> None:
    with pytest.raises(HostError, match="Library Not Found"):
        discover("nvml")
    with pytest.raises(HostError, match="simulates"):
        discover("cpu")
    assert discover("cpu", simulates="L40S-48GB").describe()["simulates"] == "L40S-48GB"
    with pytest.raises(HostError, match="'auto', 'nvml' or 'cpu'"):
        discover("rocm")


# --- products and host ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "memory", "product"),
    [
        ("NVIDIA H100 80GB HBM3", 81559 * MiB, "H100-80GB"),
        ("NVIDIA H100 PCIe", 81559 * MiB, "H100-80GB"),
        ("NVIDIA H100 NVL", 95830 * MiB, "H100-80GB"),
        ("NVIDIA A100-SXM4-80GB", 81920 * MiB, "A100-80GB"),
        ("NVIDIA A100 80GB PCIe", 81920 * MiB, "A100-80GB"),
        ("NVIDIA L40S", 46068 * MiB, "L40S-48GB"),
        ("NVIDIA GeForce RTX 4090", 24564 * MiB, "RTX4090-24GB"),
    ],
)
def test_product_for_real_gpu_names(name: str, memory: int, product: str) -> None:
    assert product_for([nvml_device(name, memory)], CATALOG).name == product


@pytest.mark.parametrize(
    ("name", "memory"),
    [
        ("NVIDIA A100-SXM4-40GB", 40960 * MiB),  # the model, but under the 80 GB floor
        ("NVIDIA L40", 46068 * MiB),  # not an L40S
        ("NVIDIA RTX A1000", 80 * GiB),  # "A100" inside another model's name
        ("Tesla V100-SXM2-32GB", 32768 * MiB),
    ],
)
def test_product_for_refuses_gpus_that_fit_nothing(name: str, memory: int) -> None:
    with pytest.raises(HostError, match="fits no catalog product"):
        product_for([nvml_device(name, memory)], CATALOG)


def test_product_for_simulated_devices_and_mixed_hosts() -> None:
    assert product_for(CpuHost(2, "RTX4090-24GB", "box").devices(), CATALOG).name == "RTX4090-24GB"
    mixed = [nvml_device("NVIDIA H100 80GB HBM3", 81559 * MiB), nvml_device("NVIDIA L40S", 46068 * MiB, 1)]
    with pytest.raises(HostError, match="different products"):
        product_for(mixed, CATALOG)
    with pytest.raises(HostError, match="no devices"):
        product_for([], CATALOG)


def test_host_id_is_keccak_of_sorted_uuids() -> None:
    a, b = nvml_device("x", 1, 0), nvml_device("x", 1, 1)
    assert host_id([b, a]) == host_id([a, b]) == keccak256(b"GPU-0,GPU-1")
    assert len(host_id([a])) == 32 and host_id([a]) != host_id([a, b])
    with pytest.raises(HostError):
        host_id([])


def test_cuda_index_maps_nvml_uuids_through_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    props = [SimpleNamespace(uuid="00000000-1111-2222-3333-444444444444"), SimpleNamespace(uuid=None)]
    torch = SimpleNamespace(
        cuda=SimpleNamespace(device_count=lambda: 2, get_device_properties=props.__getitem__)
    )
    monkeypatch.setattr(matmul, "_torch", lambda: torch)
    assert matmul.cuda_index(H100_B["uuid"], 5) == 0
    assert matmul.cuda_index(H100["uuid"], 5) == 5  # not reported: NVML's index (PCI order) stands
    raw = bytes(range(16))
    assert matmul._uuid_text(raw) == "00010203-0405-0607-0809-0a0b0c0d0e0f"
