"""Proof-of-work multipliers (provider_agent.matmul): bit-identical to the numpy reference.

The CUDA paths run for real only where torch sees a GPU; elsewhere fakes of torch and cupy, backed by numpy,
check the plumbing: _int_mm first, float64 where it refuses a shape, int32 numpy arrays out.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gpuspot.protocol import keccak256
from gpuspot.protocol.challenge import Challenge, answer, challenge_matrices, numpy_matmul
from provider_agent import matmul


def challenge(n: int) -> Challenge:
    return Challenge.derive(keccak256(b"matmul test block"), 3, 1, n=n, issued_at_ms=0, deadline_ms=1_000)


@pytest.mark.parametrize("n", [16, 64, 256])
def test_cpu_matmul_is_the_reference(n: int) -> None:
    c = challenge(n)
    assert answer(c, matmul.cpu_matmul).root == answer(c, numpy_matmul).root


def test_cpu_matmul_is_exact_at_the_bound() -> None:
    n = 512
    a = np.full((n, n), -128, dtype=np.int8)
    product = matmul.cpu_matmul(a, a)
    assert product.dtype == np.int32 and int(product[0, 0]) == n * 128 * 128


class FakeTensor:
    def __init__(self, array: np.ndarray[Any, Any], device: str = "cpu") -> None:
        self.array = array
        self.device = device

    def to(self, device: Any = None, dtype: Any = None) -> FakeTensor:
        array = self.array if dtype is None else self.array.astype(dtype)
        return FakeTensor(array, self.device if device is None else str(device))

    def __matmul__(self, other: FakeTensor) -> FakeTensor:
        assert self.device == other.device != "cpu", "both operands on the GPU"
        assert self.array.dtype == np.float64, "the fallback multiplies in float64"
        return FakeTensor(self.array @ other.array, self.device)

    def cpu(self) -> FakeTensor:
        return FakeTensor(self.array, "cpu")

    def numpy(self) -> np.ndarray[Any, Any]:
        assert self.device == "cpu"
        return self.array


def fake_torch(int_mm: bool = True) -> SimpleNamespace:
    calls: list[str] = []

    def _int_mm(a: FakeTensor, b: FakeTensor) -> FakeTensor:
        calls.append("_int_mm")
        assert a.array.dtype == b.array.dtype == np.int8
        if a.array.shape[0] <= 16:  # what torch says for small matrices
            raise RuntimeError("self.size(0) needs to be greater than 16")
        return FakeTensor(a.array.astype(np.int32) @ b.array.astype(np.int32), a.device)

    torch = SimpleNamespace(
        float64=np.float64,
        int32=np.int32,
        calls=calls,
        device=lambda kind, index: f"{kind}:{index}",
        from_numpy=lambda array: FakeTensor(array),
        cuda=SimpleNamespace(is_available=lambda: True, device_count=lambda: 2),
    )
    if int_mm:
        torch._int_mm = _int_mm
    return torch


@pytest.mark.parametrize("n", [16, 32, 128])
@pytest.mark.parametrize("int_mm", [True, False])
def test_torch_path_matches_the_reference(monkeypatch: pytest.MonkeyPatch, n: int, int_mm: bool) -> None:
    torch = fake_torch(int_mm)
    monkeypatch.setattr(matmul, "_torch", lambda: torch)
    backend = matmul.cuda_matmul(1)
    c = challenge(n)
    assert answer(c, backend).root == answer(c).root
    a, b = challenge_matrices(c)
    result = backend(a, b)
    assert result.dtype == np.int32 and result.flags.c_contiguous
    if int_mm:
        # refused once at n = 16, then not retried for that shape
        assert torch.calls == (["_int_mm"] if n == 16 else ["_int_mm", "_int_mm"])


def test_torch_without_that_gpu_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul, "_torch", lambda: fake_torch())
    with pytest.raises(matmul.MatmulUnavailableError, match="torch sees 2 CUDA devices, not device 2"):
        matmul.cuda_matmul(2)


def test_cupy_path_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[int] = []

    class Device:
        def __init__(self, index: int) -> None:
            used.append(index)

        def __enter__(self) -> None:
            pass

        def __exit__(self, *exc: object) -> None:
            pass

    cupy = SimpleNamespace(
        float64=np.float64,
        asarray=lambda a, dtype: np.asarray(a, dtype=dtype),
        asnumpy=lambda a: a,
        cuda=SimpleNamespace(Device=Device, runtime=SimpleNamespace(getDeviceCount=lambda: 1)),
    )
    monkeypatch.setattr(matmul, "_torch", lambda: None)
    monkeypatch.setattr(matmul, "_cupy", lambda: cupy)
    assert matmul.gpu_available()
    c = challenge(64)
    assert answer(c, matmul.cuda_matmul(0)).root == answer(c).root
    assert used == [0]


def test_no_gpu_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul, "_torch", lambda: None)
    monkeypatch.setattr(matmul, "_cupy", lambda: None)
    assert not matmul.gpu_available()
    with pytest.raises(matmul.MatmulUnavailableError, match="install torch"):
        matmul.cuda_matmul(0)


def test_gpu_available_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA driver version is insufficient")

    torch = SimpleNamespace(cuda=SimpleNamespace(is_available=broken))
    monkeypatch.setattr(matmul, "_torch", lambda: torch)
    assert matmul.gpu_available() is False


def _torch_sees_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _torch_sees_cuda(), reason="needs torch with a CUDA GPU")
@pytest.mark.parametrize("n", [16, 256, 1024])
def test_cuda_matmul_on_a_real_gpu(n: int) -> None:
    c = challenge(n)
    assert answer(c, matmul.cuda_matmul(0)).root == answer(c).root
