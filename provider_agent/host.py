"""Host discovery: which devices this machine sells, their telemetry, the environment a job sees them by.

Two backends behind one `Host` interface:
- `NvmlHost` reads NVIDIA GPUs through NVML (`pynvml`, from nvidia-ml-py): name, UUID, memory, and per
  receipt utilisation, memory used, temperature and power.
- `CpuHost` stands in for GPUs on a machine without any, so a devnet can run the whole market end to end.
  It is never silently a GPU: its devices, telemetry, job environment and description all say
  `cpu-simulated`, and `discover` builds one only when asked for the product it simulates. The caller allows
  that only on a devnet (chain id 31337); a real market's verifier would fail it on challenge deadlines
  anyway.

`product_for` maps devices to the catalog product they can be sold as, and `host_id` gives the ask's
`hostId`. See docs/provider-host.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal, Protocol

from gpuspot.catalog import Catalog, Product, UnknownProductError
from gpuspot.protocol.challenge import MatmulBackend
from gpuspot.protocol.hashing import keccak256
from provider_agent import matmul

__all__ = [
    "CPU_SIMULATED",
    "NVML",
    "CpuHost",
    "Device",
    "Host",
    "HostError",
    "NvmlHost",
    "discover",
    "host_id",
    "product_for",
]

Backend = Literal["nvml", "cpu-simulated"]
NVML: Final = "nvml"
CPU_SIMULATED: Final = "cpu-simulated"
CPU_FAULTS: Final = ("none", "wrong-answer")
"""Faults the CPU stand-in can simulate: `wrong-answer` adds 1 to every entry of each challenge product, as
a faulty or cheating GPU would; the matcher's Freivalds check must catch it (`wrong_product`)."""

_GB = 10**9  # the catalog's vram_gb is decimal GB: an "80GB" H100 has 81559 MiB, 79.6 GiB but 85.5 GB
_MIB = 2**20


class HostError(Exception):
    """The host's devices cannot be found, read or sold as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Device:
    """One device this host sells. `index` is the backend's own (NVML's index); `uuid` is stable across
    reboots and is what leases, telemetry and `CUDA_VISIBLE_DEVICES` name. `simulates` is the catalog product
    a `cpu-simulated` device stands in for (None for real GPUs)."""

    index: int
    uuid: str
    name: str
    memory_bytes: int
    backend: Backend
    simulates: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_bytes": self.memory_bytes,
            "backend": self.backend,
        }
        if self.simulates is not None:
            document["simulates"] = self.simulates
        return document


class Host(Protocol):
    """What the agent needs from a machine's devices."""

    @property
    def backend(self) -> Backend: ...

    def devices(self) -> tuple[Device, ...]:
        """Every device this host can lease, in index order."""
        ...

    def telemetry(self, devices: Sequence[Device]) -> dict[str, Any]:
        """The receipt telemetry document for `devices`: `{"backend", "devices": [uuid...], "samples":
        [{"uuid", "t_ms", "util_pct", "mem_used_mib", "temp_c", "power_mw"}...]}`, one sample per device,
        integers (or null where the backend cannot read a value)."""
        ...

    def job_env(self, devices: Sequence[Device]) -> dict[str, str]:
        """The variables that give a job exactly `devices` and nothing else."""
        ...

    def matmul(self, device: Device) -> MatmulBackend:
        """The proof-of-work multiplier that runs on `device`."""
        ...

    def describe(self) -> dict[str, Any]:
        """For logs, /metrics labels and the registry metadata."""
        ...

    def close(self) -> None: ...


def _sample(
    uuid: str, t_ms: int, util: int | None, mem_mib: int | None, temp: int | None, power: int | None
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "t_ms": t_ms,
        "util_pct": util,
        "mem_used_mib": mem_mib,
        "temp_c": temp,
        "power_mw": power,
    }


def _check_own(devices: Sequence[Device], own: Sequence[Device]) -> None:
    known = {device.uuid for device in own}
    strangers = [device.uuid for device in devices if device.uuid not in known]
    if strangers:
        raise HostError(f"devices {strangers} are not on this host: use the devices() it reported")


# --- NVML -------------------------------------------------------------------------------------------------


def _text(value: str | bytes) -> str:
    # nvidia-ml-py returns str; older bindings (and some forks) return bytes
    return value.decode() if isinstance(value, bytes) else value


class NvmlHost:
    """NVIDIA GPUs through NVML. Discovery happens once, at construction; `close()` shuts NVML down."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise HostError(
                "pynvml is not installed: install nvidia-ml-py (a dependency of gpuspot) to read NVIDIA GPUs"
            ) from None
        self._nvml: ModuleType = pynvml
        self._closed = False
        self._lock = threading.Lock()  # NVML is thread-safe, but init/shutdown pairs must not interleave
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise HostError(
                f"NVML does not start ({exc}): is the NVIDIA driver installed and loaded (nvidia-smi works)?"
            ) from None
        try:
            self._driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
            count = pynvml.nvmlDeviceGetCount()
            handles, devices = [], []
            for index in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                devices.append(
                    Device(
                        index=index,
                        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                        backend=NVML,
                    )
                )
                handles.append(handle)
        except pynvml.NVMLError as exc:
            pynvml.nvmlShutdown()
            raise HostError(f"NVML cannot read the GPUs: {exc}") from None
        if not devices:
            pynvml.nvmlShutdown()
            raise HostError("NVML reports no GPUs on this host: check nvidia-smi and the driver")
        self._devices = tuple(devices)
        self._handles = {device.uuid: handle for device, handle in zip(devices, handles, strict=True)}

    @property
    def backend(self) -> Backend:
        return NVML

    def devices(self) -> tuple[Device, ...]:
        return self._devices

    def _reading(self, read: Any, *args: Any) -> int | None:
        # a GPU that cannot report one value (power on some boards) still reports the rest
        try:
            return int(read(*args))
        except self._nvml.NVMLError:
            return None

    def telemetry(self, devices: Sequence[Device]) -> dict[str, Any]:
        _check_own(devices, self._devices)
        nvml = self._nvml
        samples = []
        for device in devices:
            handle = self._handles[device.uuid]
            t_ms = time.time_ns() // 1_000_000
            try:
                util: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                util = None
            try:
                mem: int | None = int(nvml.nvmlDeviceGetMemoryInfo(handle).used) // _MIB
            except nvml.NVMLError:
                mem = None
            temp = self._reading(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
            power = self._reading(nvml.nvmlDeviceGetPowerUsage, handle)  # milliwatts
            samples.append(_sample(device.uuid, t_ms, util, mem, temp, power))
        return {"backend": NVML, "devices": [device.uuid for device in devices], "samples": samples}

    def job_env(self, devices: Sequence[Device]) -> dict[str, str]:
        _check_own(devices, self._devices)
        # UUIDs rather than indices: CUDA's default device order is not NVML's, UUIDs mean one GPU each
        visible = ",".join(device.uuid for device in devices)
        return {"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible, "GPUSPOT_BACKEND": NVML}

    def matmul(self, device: Device) -> MatmulBackend:
        _check_own([device], self._devices)
        try:
            return matmul.cuda_matmul(matmul.cuda_index(device.uuid, device.index))
        except matmul.MatmulUnavailableError as exc:
            raise HostError(f"GPU {device.index} ({device.uuid}) cannot answer challenges: {exc}") from None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": NVML,
            "simulated": False,
            "driver_version": self._driver_version,
            "devices": [device.to_dict() for device in self._devices],
        }

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(self._nvml.NVMLError):
                    self._nvml.nvmlShutdown()

    def __enter__(self) -> NvmlHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- CPU stand-in -----------------------------------------------------------------------------------------


class CpuHost:
    """`gpus` simulated devices standing in for the catalog product `simulates`, on the CPU. Every device is
    named "CPU (simulating <product>)" with uuid `CPU-SIM-<8 hex of keccak(host label)>-<i>`, and everything
    it reports says `cpu-simulated`. Jobs see no GPU (`CUDA_VISIBLE_DEVICES=""`); challenges run on numpy."""

    def __init__(
        self,
        gpus: int,
        simulates: str,
        host_label: str | None = None,
        *,
        catalog: Catalog | None = None,
        fault: str = "none",
    ) -> None:
        if fault not in CPU_FAULTS:
            raise HostError(f"unknown CPU fault {fault!r}: one of {', '.join(CPU_FAULTS)}")
        self._fault = fault
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            raise HostError(f"a CPU stand-in simulates at least 1 GPU, got {gpus!r}")
        if not simulates:
            raise HostError("name the catalog product the CPU stands in for (simulates=...)")
        product = _by_name(catalog or Catalog.default(), simulates)
        self._product = product
        self._label = host_label or socket.gethostname()
        tag = keccak256(self._label.encode()).hex()[:8]
        self._devices = tuple(
            Device(
                index=i,
                uuid=f"CPU-SIM-{tag}-{i}",
                name=f"CPU (simulating {product.name})",
                memory_bytes=product.vram_gb * _GB,
                backend=CPU_SIMULATED,
                simulates=product.name,
            )
            for i in range(gpus)
        )
        self._cpu_times: tuple[int, int] | None = _read_cpu_times()

    @property
    def backend(self) -> Backend:
        return CPU_SIMULATED

    @property
    def simulates(self) -> Product:
        return self._product

    def devices(self) -> tuple[Device, ...]:
        return self._devices

    def _utilisation(self) -> int:
        # busy share of CPU time since the last reading (/proc/stat); the load average where there is none
        now = _read_cpu_times()
        previous, self._cpu_times = self._cpu_times, now
        if now is not None and previous is not None and now[1] > previous[1]:
            busy, total = now[0] - previous[0], now[1] - previous[1]
            return max(0, min(100, round(100 * busy / total)))
        try:
            load = os.getloadavg()[0]
        except OSError:
            return 0
        return max(0, min(100, round(100 * load / (os.cpu_count() or 1))))

    def telemetry(self, devices: Sequence[Device]) -> dict[str, Any]:
        _check_own(devices, self._devices)
        util = self._utilisation()
        mem = _memory_used_mib()
        t_ms = time.time_ns() // 1_000_000
        # the host's figures, once per simulated device: temperature and power are not simulated
        samples = [_sample(device.uuid, t_ms, util, mem, None, None) for device in devices]
        return {"backend": CPU_SIMULATED, "devices": [device.uuid for device in devices], "samples": samples}

    def job_env(self, devices: Sequence[Device]) -> dict[str, str]:
        _check_own(devices, self._devices)
        return {
            "CUDA_VISIBLE_DEVICES": "",  # a CUDA program sees no GPU rather than one it was not leased
            "NVIDIA_VISIBLE_DEVICES": "void",
            "GPUSPOT_BACKEND": CPU_SIMULATED,
            "GPUSPOT_SIMULATED_GPUS": ",".join(device.uuid for device in devices),
        }

    def matmul(self, device: Device) -> MatmulBackend:
        _check_own([device], self._devices)
        if self._fault == "wrong-answer":
            return _off_by_one
        return matmul.cpu_matmul

    def describe(self) -> dict[str, Any]:
        return {
            "backend": CPU_SIMULATED,
            "simulated": True,
            "fault": self._fault,
            "simulates": self._product.name,
            "host": self._label,
            "devices": [device.to_dict() for device in self._devices],
        }

    def close(self) -> None:
        pass

    def __enter__(self) -> CpuHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _off_by_one(a: Any, b: Any, /) -> Any:
    """A faulty GPU's product: right shape and type, every entry off by one."""
    return matmul.cpu_matmul(a, b) + 1


def _read_cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values)
    return total - idle, total


def _memory_used_mib() -> int | None:
    """MemTotal - MemAvailable from /proc/meminfo, in MiB, or None off Linux."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            kib = {line.split(":")[0]: int(line.split()[1]) for line in meminfo if line.count(":") == 1}
    except (OSError, ValueError, IndexError):
        return None
    if "MemTotal" not in kib or "MemAvailable" not in kib:
        return None
    return (kib["MemTotal"] - kib["MemAvailable"]) // 1024


# --- discovery, products, host id -------------------------------------------------------------------------


def discover(
    backend: str = "auto",
    *,
    cpu_gpus: int = 1,
    simulates: str | None = None,
    catalog: Catalog | None = None,
    fault: str = "none",
) -> Host:
    """The host's devices through `backend`:

    - `"nvml"`: NVIDIA GPUs; raises `HostError` when NVML cannot start or finds none.
    - `"cpu"`: `cpu_gpus` simulated devices standing in for the catalog product `simulates` (required),
      answering challenges wrongly when `fault` is "wrong-answer". The
      CPU is not the product it simulates, so only a devnet may sell it: the caller must refuse this backend
      unless the chain id is 31337.
    - `"auto"`: NVML if it works; else the CPU stand-in, but only when `simulates` is given.
    """
    if backend == "nvml":
        return NvmlHost()
    if backend == "cpu":
        if simulates is None:
            raise HostError(
                "the cpu backend needs simulates=<catalog product> (the GPU class it stands in for)"
            )
        return CpuHost(cpu_gpus, simulates, catalog=catalog, fault=fault)
    if backend != "auto":
        raise HostError(f"backend must be 'auto', 'nvml' or 'cpu', got {backend!r}")
    try:
        return NvmlHost()
    except HostError as nvml_error:
        if simulates is None:
            raise HostError(
                f"no NVIDIA GPU found ({nvml_error}). Either run on a host where NVML works (backend "
                f"'nvml'), or, on a devnet only, stand the CPU in for a product: backend 'cpu' with "
                f"simulates=<product>"
            ) from None
        return CpuHost(cpu_gpus, simulates, catalog=catalog)


def _by_name(catalog: Catalog, name: str) -> Product:
    try:
        return catalog.by_name(name)
    except UnknownProductError as exc:
        raise HostError(str(exc)) from None


def _model_pattern(product: Product) -> re.Pattern[str]:
    """The GPU model of a catalog name ("RTX4090-24GB" -> RTX4090) as it appears in NVML names ("NVIDIA
    GeForce RTX 4090"): letters and digits may be spaced apart, and the model must stand alone ("A100" is
    not in "RTX A1000")."""
    model = product.name.split("-")[0]
    tokens = re.findall(r"[A-Za-z]+|[0-9]+", model)
    body = r"[\s-]?".join(re.escape(token) for token in tokens)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


def product_for(devices: Sequence[Device], catalog: Catalog) -> Product:
    """The catalog product `devices` are sold as: the product whose model the GPU's name contains and whose
    memory floor it meets, the largest such floor if several do (simulated devices: the product they
    simulate). Every device must give the same product. The interconnect floor is not checked here."""
    if not devices:
        raise HostError("no devices to sell")
    found: dict[str, Product] = {}
    for device in devices:
        if device.backend == CPU_SIMULATED:
            if device.simulates is None:
                raise HostError(f"simulated device {device.uuid} does not say which product it simulates")
            found[device.uuid] = _by_name(catalog, device.simulates)
            continue
        fits = [
            product
            for product in catalog
            if _model_pattern(product).search(device.name) and device.memory_bytes // _GB >= product.vram_gb
        ]
        if not fits:
            raise HostError(
                f"GPU {device.index} ({device.name}, {device.memory_bytes // _GB} GB) fits no catalog "
                f"product: the catalog trades {', '.join(catalog.names)}"
            )
        found[device.uuid] = max(fits, key=lambda product: product.vram_gb)
    products = {product.name for product in found.values()}
    if len(products) > 1:
        raise HostError(
            f"this host's GPUs are different products ({', '.join(sorted(products))}): an ask sells one "
            f"product; run one agent per product"
        )
    return next(iter(found.values()))


def host_id(devices: Sequence[Device]) -> bytes:
    """The ask's `hostId`: keccak256 of the devices' uuids, sorted and joined by ",". Stable across reboots
    and index changes; a different set of GPUs is a different host."""
    if not devices:
        raise HostError("a host id needs at least one device")
    return keccak256(",".join(sorted(device.uuid for device in devices)).encode())
