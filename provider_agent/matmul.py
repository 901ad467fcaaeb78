"""Proof-of-work multipliers: the `MatmulBackend`s the agent answers challenges with.

Every backend returns exactly `numpy_matmul`'s product (docs/proof-of-work.md, "Bounds"): entries of C are
integers of magnitude at most n * 2^14 <= 2^28, so int8 products accumulated in int32 are exact, and so is
float64 (every partial sum is an integer far below 2^53, whatever order the hardware adds in).

- `cpu_matmul`: the CPU reference, `gpuspot.protocol.challenge.numpy_matmul`.
- `cuda_matmul(index)`: `torch._int_mm` (int8 tensor cores, int32 accumulation) on `cuda:<index>`; where
  `_int_mm` is missing or refuses a shape (it needs more than 16 rows), a float64 matmul on the same GPU
  (CUDA has no integer GEMM in torch); without torch, cupy in float64.

torch and cupy are optional: a GPU host installs one of them (with CUDA); `gpu_available()` says whether one
sees a GPU.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from gpuspot.protocol.challenge import MatmulBackend, numpy_matmul

__all__ = ["MatmulUnavailableError", "cpu_matmul", "cuda_index", "cuda_matmul", "gpu_available"]

Int8Matrix = npt.NDArray[np.int8]
Int32Matrix = npt.NDArray[np.int32]

cpu_matmul: MatmulBackend = numpy_matmul
"""The CPU reference (float64 BLAS, exact for every challenge size)."""


class MatmulUnavailableError(RuntimeError):
    """No GPU multiplier can run here: neither torch nor cupy is installed, or neither sees the GPU."""


def _torch() -> ModuleType | None:
    # CUDA numbers GPUs fastest-first unless told otherwise; PCI order is NVML's, so indices agree. It only
    # counts before CUDA starts in this process, hence here, before the first import.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _cupy() -> ModuleType | None:
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        return importlib.import_module("cupy")
    except ImportError:
        return None


def gpu_available() -> bool:
    """Whether torch (or else cupy) is installed and sees at least one CUDA device. Never raises."""
    try:
        torch = _torch()
        if torch is not None:
            return bool(torch.cuda.is_available()) and int(torch.cuda.device_count()) > 0
        cupy = _cupy()
        if cupy is not None:
            return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # a broken CUDA install answers "no GPU", it does not stop the agent
        return False
    return False


def _uuid_text(raw: object) -> str | None:
    """A CUDA device uuid as NVML writes it, without the "GPU-" prefix: 8-4-4-4-12 lowercase hex."""
    if isinstance(raw, bytes | bytearray) and len(raw) == 16:
        h = bytes(raw).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if raw is None:
        return None
    text = str(raw).lower()
    return text.removeprefix("gpu-")


def cuda_index(uuid: str, fallback: int) -> int:
    """The CUDA index (torch's or cupy's) of the GPU whose NVML uuid is `uuid`; `fallback` (NVML's index,
    which PCI device order makes CUDA's too) when the library cannot report uuids."""
    wanted = uuid.lower().removeprefix("gpu-")
    try:
        torch = _torch()
        if torch is not None:
            for index in range(int(torch.cuda.device_count())):
                if _uuid_text(getattr(torch.cuda.get_device_properties(index), "uuid", None)) == wanted:
                    return index
            return fallback
        cupy = _cupy()
        if cupy is not None:
            for index in range(int(cupy.cuda.runtime.getDeviceCount())):
                if _uuid_text(cupy.cuda.runtime.getDeviceProperties(index).get("uuid")) == wanted:
                    return index
    except Exception:
        return fallback
    return fallback


class _TorchMatmul:
    """`torch._int_mm` on one GPU, float64 where it refuses a shape."""

    def __init__(self, torch: ModuleType, index: int) -> None:
        self._torch = torch
        self._device = torch.device("cuda", index)
        self._int_mm: Any = getattr(torch, "_int_mm", None)
        self._refused: set[tuple[int, ...]] = set()  # shapes _int_mm raised on: not retried

    def __call__(self, a: Int8Matrix, b: Int8Matrix, /) -> Int32Matrix:
        torch = self._torch
        ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.int8)).to(device=self._device)
        tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.int8)).to(device=self._device)
        shape = (*a.shape, *b.shape)
        product = None
        if self._int_mm is not None and shape not in self._refused:
            try:
                product = self._int_mm(ta, tb)
            except RuntimeError:
                self._refused.add(shape)
        if product is None:
            product = (ta.to(dtype=torch.float64) @ tb.to(dtype=torch.float64)).to(dtype=torch.int32)
        return np.ascontiguousarray(product.cpu().numpy(), dtype=np.int32)


class _CupyMatmul:
    """cupy on one GPU, in float64 (cuBLAS DGEMM; exact, see the module docstring)."""

    def __init__(self, cupy: ModuleType, index: int) -> None:
        self._cupy = cupy
        self._index = index

    def __call__(self, a: Int8Matrix, b: Int8Matrix, /) -> Int32Matrix:
        cupy = self._cupy
        with cupy.cuda.Device(self._index):
            product = cupy.asarray(a, dtype=cupy.float64) @ cupy.asarray(b, dtype=cupy.float64)
            return np.ascontiguousarray(cupy.asnumpy(product), dtype=np.int32)


def cuda_matmul(device_index: int) -> MatmulBackend:
    """A multiplier on CUDA device `device_index` (CUDA's numbering; `cuda_index` maps an NVML uuid to it).
    Raises `MatmulUnavailableError` when neither torch nor cupy can use that device."""
    torch = _torch()
    if torch is not None:
        try:
            count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
        except Exception as exc:
            raise MatmulUnavailableError(f"torch cannot start CUDA: {exc}") from None
        if not 0 <= device_index < count:
            raise MatmulUnavailableError(
                f"torch sees {count} CUDA devices, not device {device_index}: install a CUDA build of torch "
                f"and check the driver (nvidia-smi)"
            )
        return _TorchMatmul(torch, device_index)
    cupy = _cupy()
    if cupy is not None:
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:
            raise MatmulUnavailableError(f"cupy cannot start CUDA: {exc}") from None
        if not 0 <= device_index < count:
            raise MatmulUnavailableError(f"cupy sees {count} CUDA devices, not device {device_index}")
        return _CupyMatmul(cupy, device_index)
    raise MatmulUnavailableError(
        "no GPU multiplier: install torch with CUDA (pip install torch) or cupy to answer challenges on GPUs"
    )
