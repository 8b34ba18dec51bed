"""The training loop end to end on tiny synthetic data: outputs, resume, early stopping, tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from affectfusion.config import RunConfig
from affectfusion.data.types import Collator
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_jsonl
from affectfusion.models import ENCODERS
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training.checkpoint import load_tensors
from affectfusion.training.evaluation import evaluate_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict
from affectfusion.training.steps import drop_modalities
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config


def test_run_directory_has_everything(tmp_path: Path) -> None:
    run = tmp_path / "run"
    results = Trainer(tiny_config(), run).fit()
    for rel in [
        "config.yaml",
        "meta.json",
        "history.jsonl",
        "report.md",
        "checkpoints/best.safetensors",
        "checkpoints/best.json",
        "checkpoints/last.safetensors",
        "checkpoints/last.optim.safetensors",
        "eval/dev/metrics.json",
        "eval/test/metrics.json",
        "eval/test/predictions.csv",
        "plots/training_curves.png",
        "plots/confusion_test_label.png",
    ]:
        assert (run / rel).is_file(), rel
    metrics = json.loads((run / "eval/test/metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics == {**results["test"], **metrics}
    assert len(read_jsonl(run / "history.jsonl")) == 3
    assert not list(run.rglob("*.tmp")), "no temp files left behind"


def test_saved_model_reproduces_predictions(tmp_path: Path) -> None:
    cfg = tiny_config()
    Trainer(cfg, tmp_path / "run").fit()
    run = read_run(tmp_path / "run")
    model = load_model(run)
    ds = load_dataset(run.config, "test", modalities=run.modalities)
    first = predict(model, ds, run.scalers)
    again = predict(load_model(run), ds, run.scalers)
    np.testing.assert_array_equal(first.proba["label"], again.proba["label"])
    saved = json.loads((tmp_path / "run/eval/test/metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(float((first.pred["label"] == first.y_true["label"]).mean()))


def assert_same_tensors(a: Path, b: Path) -> None:
    """Every tensor of checkpoint ``a`` equals the one of the same name in ``b``."""
    full, resumed = load_tensors(a), load_tensors(b)
    for k in full:
        torch.testing.assert_close(full[k], resumed[k], msg=k)


def train_interrupted_then_resumed(cfg: RunConfig, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``cfg`` into ``run_dir``, interrupted during epoch 3 (after epoch 2's checkpoint), then resume it."""
    import affectfusion.training.trainer as trainer_module

    original = trainer_module.train_epoch
    calls = {"n": 0}

    def interrupt_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", interrupt_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run_dir).fit()
    assert json.loads((run_dir / "checkpoints/last.json").read_text())["epoch"] == 2
    monkeypatch.setattr(trainer_module, "train_epoch", original)
    Trainer(cfg, run_dir).fit()


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_config({"train.epochs": 4, "train.modality_dropout": 0.2, "model.dropout": 0.2})
    Trainer(cfg, tmp_path / "full").fit()
    train_interrupted_then_resumed(cfg, tmp_path / "resumed", monkeypatch)

    full = load_tensors(tmp_path / "full/checkpoints/last.safetensors")
    resumed = load_tensors(tmp_path / "resumed/checkpoints/last.safetensors")
    assert full.keys() == resumed.keys()
    for k in full:
        torch.testing.assert_close(full[k], resumed[k], msg=k)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "resumed/history.jsonl")] == [1, 2, 3, 4]


def test_weight_average_is_what_is_validated_saved_and_resumed(tmp_path: Path, monkeypatch) -> None:
    """train.ema_decay: the best checkpoint holds the moving average (not the raw weights), and an
    interrupted run resumes the same average."""
    one = tiny_config({"train.epochs": 1, "train.ema_decay": 0.9})
    Trainer(one, tmp_path / "one").fit()
    average = load_tensors(tmp_path / "one/checkpoints/last.ema.safetensors")
    best = load_tensors(tmp_path / "one/checkpoints/best.safetensors")
    raw = load_tensors(tmp_path / "one/checkpoints/last.safetensors")
    assert {f"module.{k}" for k in best} | {"n_averaged"} == set(average)
    for k in best:
        torch.testing.assert_close(best[k], average[f"module.{k}"], msg=k)
    assert any(not torch.equal(best[k], raw[k]) for k in best if best[k].is_floating_point())

    cfg = tiny_config({"train.epochs": 4, "train.ema_decay": 0.9})
    Trainer(cfg, tmp_path / "full").fit()
    train_interrupted_then_resumed(cfg, tmp_path / "resumed", monkeypatch)
    assert_same_tensors(
        tmp_path / "full/checkpoints/last.ema.safetensors", tmp_path / "resumed/checkpoints/last.ema.safetensors"
    )
    with pytest.raises(AffectFusionError, match="ema_decay"):
        tiny_config({"train.ema_decay": 1.0})


def test_rerun_of_finished_run_does_not_retrain(tmp_path: Path) -> None:
    cfg = tiny_config()
    Trainer(cfg, tmp_path / "run").fit()
    before = (tmp_path / "run/checkpoints/last.safetensors").stat().st_mtime_ns
    Trainer(cfg, tmp_path / "run").fit()
    assert (tmp_path / "run/checkpoints/last.safetensors").stat().st_mtime_ns == before


def test_other_config_in_same_run_dir_is_refused(tmp_path: Path) -> None:
    Trainer(tiny_config(), tmp_path / "run").fit()
    with pytest.raises(AffectFusionError, match="different config"):
        Trainer(tiny_config({"train.lr": 0.5}), tmp_path / "run").fit()
    Trainer(tiny_config({"train.lr": 0.5}), tmp_path / "run").fit(overwrite=True)


def test_early_stopping_stops(tmp_path: Path) -> None:
    cfg = tiny_config({"train.epochs": 20, "train.lr": 1e-9, "train.early_stopping": {"patience": 2}})
    Trainer(cfg, tmp_path / "run").fit()
    assert len(read_jsonl(tmp_path / "run/history.jsonl")) == 3


def test_multitask_regression_classification_contrastive(tmp_path: Path) -> None:
    cfg = tiny_config(
        {
            "data.options.task": "regression",
            "data.options.target_name": "phq8",
            "data.options.target_range": [0, 24],
            "data.options.integer_targets": True,
            "tasks": [
                {"name": "phq8", "type": "regression", "loss": "rmse"},
                {
                    "name": "depressed",
                    "type": "classification",
                    "classes": ["no", "yes"],
                    "threshold_of": "phq8",
                    "threshold": 10,
                    "class_weights": "balanced",
                },
            ],
            "train.contrastive_weight": 0.1,
            "train.scheduler": "cosine",
            "train.warmup_epochs": 1,
            "train.early_stopping": {"monitor": "phq8.rmse"},
        }
    )
    Trainer(cfg, tmp_path / "run").fit()
    metrics = json.loads((tmp_path / "run/eval/test/metrics.json").read_text())
    assert metrics["primary_task"] == "phq8"
    assert {"mae", "rmse", "pearson_r", "ccc"} <= metrics.keys()
    assert {"accuracy", "macro_f1"} <= metrics["tasks"]["depressed"].keys()
    history = read_jsonl(tmp_path / "run/history.jsonl")
    assert "contrastive" in history[0]["train_parts"]
    meta = json.loads((tmp_path / "run/meta.json").read_text())
    assert 0 < meta["scalers"]["phq8"]["mean"] < 24
    assert len(meta["class_weights"]["depressed"]) == 2


def test_modality_dropout_keeps_one_modality_per_sample() -> None:
    cfg = tiny_config()
    ds = load_dataset(cfg, "train")
    batch = Collator(ds.modalities, {"label": "classification"})(ds.samples[:64])
    g = torch.Generator().manual_seed(0)
    dropped = drop_modalities(batch, 0.9, g)
    present = torch.stack(list(dropped.present.values()), 1)
    assert present.any(1).all()
    assert present.sum() < torch.stack(list(batch.present.values()), 1).sum()
    for m in dropped.present:
        assert not (dropped.present[m] & ~batch.present[m]).any(), "dropout never adds a modality"
        gone = ~dropped.present[m]
        assert dropped.features[m][gone].abs().sum() == 0


def test_wrong_feature_dimension_at_test_time(tmp_path: Path) -> None:
    Trainer(tiny_config(), tmp_path / "run").fit()
    run = read_run(tmp_path / "run")
    run.config.data.options["modalities"]["text"]["dim"] = 9
    with pytest.raises(AffectFusionError, match=r"modality 'text' has feature dimension 9, the model expects 8"):
        evaluate_run(run, "test")


def test_label_outside_class_list(tmp_path: Path) -> None:
    cfg = tiny_config({"data.options.num_classes": 4})
    with pytest.raises(AffectFusionError, match=r"label 3 .* not in its class list"):
        Trainer(cfg, tmp_path / "run").fit()


# Feature encoders; token-id encoders (hf_lora) train in tests/test_hf_lora.py.
@pytest.mark.parametrize("encoder", [n for n in ENCODERS.names() if not getattr(ENCODERS.get(n), "raw_input", False)])
def test_every_encoder_trains(tmp_path: Path, encoder: str) -> None:
    options = getattr(ENCODERS.get(encoder), "example_options", {})  # required options, if any
    cfg = tiny_config({"model.encoder": {"name": encoder, "options": options}, "train.epochs": 1})
    Trainer(cfg, tmp_path / "run").fit()
    assert (tmp_path / "run/eval/test/metrics.json").is_file()
