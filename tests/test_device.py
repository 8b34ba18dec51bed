"""Device, precision and CPU-thread choices: resolution, clear errors, and mixed precision trained on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from affectfusion import threads as threads_mod
from affectfusion.device import resolve_device
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training.checkpoint import load_tensors
from affectfusion.training.distributed import backend_for
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config


def test_auto_device_is_cpu_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert backend_for("auto") == "gloo" and backend_for("cpu") == "gloo"


def test_absent_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AffectFusionError, match=r"train.device is 'cuda:1'.*sees no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(AffectFusionError, match="not a device"):
        resolve_device("gpu")


def test_config_refuses_unknown_device_and_bad_threads() -> None:
    with pytest.raises(AffectFusionError, match=r"train\.device"):
        tiny_config({"train.device": "gpu0"})
    with pytest.raises(AffectFusionError, match="threads"):
        tiny_config({"train.threads": 0})
    assert tiny_config({"train.threads": 2}).train.threads == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu_and_loads_in_fp32(tmp_path: Path, precision: str) -> None:
    cfg = tiny_config({"train.epochs": 3, "train.device": "cpu", "train.precision": precision})
    metrics = Trainer(cfg, tmp_path / "run").fit()
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) for r in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"], "it learns under autocast"
    weights = load_tensors(tmp_path / "run/checkpoints/best.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}, "weights stay fp32 under autocast"
    last = json.loads((tmp_path / "run/checkpoints/last.json").read_text())
    assert (last["grad_scaler"] is not None) == (precision == "fp16")
    run = read_run(tmp_path / "run")
    assert run.meta["precision"] == precision and run.meta["device"] == "cpu"
    model = load_model(run)
    preds = predict(model, load_dataset(run.config, "test", modalities=run.modalities), run.scalers)
    acc = float((preds.pred["label"] == preds.y_true["label"]).mean())
    assert acc == pytest.approx(metrics["test"]["accuracy"], abs=0.05), "fp32 reload predicts as the run scored"


def test_a_run_resumes_under_other_device_and_threads(tmp_path: Path) -> None:
    Trainer(tiny_config({"train.epochs": 1, "train.threads": 1, "train.device": "cpu"}), tmp_path / "run").fit()
    again = tiny_config({"train.epochs": 1, "train.threads": 2, "train.device": "auto"})
    Trainer(again, tmp_path / "run").fit()  # "already trained", not "a different config"
    with pytest.raises(AffectFusionError, match="different config"):
        Trainer(tiny_config({"train.epochs": 1, "train.precision": "bf16"}), tmp_path / "run").fit()


def test_thread_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_mod, "cpu_budget", lambda: 8)
    monkeypatch.setattr(threads_mod, "other_load", lambda: 3.2)
    assert threads_mod.choose_threads(3).threads == 3, "an explicit number wins"
    assert threads_mod.choose_threads("auto").threads == 5, "8 cores, ~3 busy"
    assert threads_mod.choose_threads("auto", n_parameters=34_000).threads == 1, "a small model gets one thread"
    assert threads_mod.choose_threads("auto", n_parameters=7_000_000).threads == 3
    monkeypatch.setattr(threads_mod, "other_load", lambda: 20.0)
    assert threads_mod.choose_threads("auto").threads == 1, "never below one"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    choice = threads_mod.choose_threads("auto")
    assert choice.threads == 2 and "OMP_NUM_THREADS" in str(choice)


def test_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads_mod._cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads_mod._cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu/cpu.cfs_period_us").write_text("100000")
    assert threads_mod._cgroup_quota(tmp_path) == 3.0
    assert threads_mod.cpu_budget() >= 1


def test_predict_and_serve_take_a_device(trained_features_run: Path, capsys, monkeypatch) -> None:
    """``predict``/``serve`` load the model on the device asked for; an absent GPU is one line, no traceback."""
    from affectfusion.serve.predictor import load_predictor
    from tests.helpers import run_cli

    predictor = load_predictor(trained_features_run, device="auto")
    assert next(predictor.model.parameters()).device.type == resolve_device("auto").type
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(
        ["predict", str(trained_features_run), "--text", "hi", "--device", "cuda"], capsys, monkeypatch
    )
    assert code == 2 and "--device is 'cuda'" in err and "Traceback" not in err


def test_validation_in_the_training_precision_scores_like_fp32(tmp_path: Path) -> None:
    """``validate_precision: train`` validates each epoch under bf16 autocast (finite metrics, float32
    probabilities); the best checkpoint's final scores are fp32 and close to the bf16 validation."""
    cfg = tiny_config(
        {"train.epochs": 2, "train.device": "cpu", "train.precision": "bf16", "train.validate_precision": "train"}
    )
    metrics = Trainer(cfg, tmp_path / "run").fit()
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["val_loss"]) and np.isfinite(r["val"]["accuracy"]) for r in history)
    best = max(history, key=lambda r: r["val"]["accuracy"])
    assert metrics["dev"]["accuracy"] == pytest.approx(best["val"]["accuracy"], abs=0.1)
    run = read_run(tmp_path / "run")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        preds = predict(load_model(run), load_dataset(run.config, "dev", modalities=run.modalities), run.scalers)
    assert preds.proba["label"].dtype == np.float32
    np.testing.assert_allclose(preds.proba["label"].sum(1), 1.0, atol=1e-2)
