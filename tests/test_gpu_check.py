"""benchmarks/gpu_check.py on a machine without CUDA: it says so, trains the CPU arms and checks the reload."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_check_runs_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine: the CPU path
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu_check.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    assert "CUDA is absent" in capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["cuda_available"] is False and report["ok"] is True
    for name in ("demo", "hf_audio"):
        (arm,) = report["results"][name]
        assert (arm["device"], arm["precision"]) == ("cpu", "fp32") and arm["s_per_epoch"] > 0
        assert report["reload_on_cpu"][name]["same_labels_on_cpu"] == 1.0
