"""`python -m provider_agent check` on the CPU stand-in: the same path a GPU host runs (discovery, a timed
challenge per device verified as the matcher verifies it, a pinned job), labelled as simulated."""

from __future__ import annotations

import pytest

from provider_agent.__main__ import main


def test_the_host_check_passes_on_the_cpu_stand_in_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--backend", "cpu", "--simulates", "H100-80GB", "--cpu-gpus", "2", "--n", "64"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "backend: cpu-simulated; sells as H100-80GB" in out
    assert out.count(": passed in ") == 2
    assert "| CUDA_VISIBLE_DEVICES=\n" in out, "the job sees no GPU"
    assert "| GPUSPOT_BACKEND=cpu-simulated" in out
    assert out.rstrip().endswith("check passed")


def test_the_host_check_refuses_a_cpu_without_a_product_to_stand_in_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--backend", "cpu"]) == 1
    assert "discovery failed" in capsys.readouterr().err
