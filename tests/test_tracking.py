"""Experiment tracking (``train.track``): the logs are read back with each library's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectfusion.rundir import RunPaths
from affectfusion.training.tracking import epoch_scalars, flat_params
from tests.helpers import run_cli, tiny_config

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def _mlflow_db(tmp_path: Path) -> str:
    (tmp_path / "ml").mkdir(exist_ok=True)
    return f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"


def test_tensorboard_and_mlflow_read_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from affectfusion.recipes.fusion.recipe import train_config

    uri = _mlflow_db(tmp_path)
    cfg = tiny_config({"train.track": ["tensorboard", "mlflow"], "train.tracking_uri": uri, "train.epochs": 3})
    run_dir = tmp_path / "run"
    train_config(cfg, run_dir)

    events = EventAccumulator(str(RunPaths(run_dir).tensorboard))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train_loss", "val_loss", "lr", "val/macro_f1"} <= set(scalars)
    assert [e.step for e in events.Scalars("val/macro_f1")] == [1, 2, 3]
    assert "test/accuracy" in scalars and "dev/accuracy" in scalars  # the evaluated best checkpoint

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.01" and run.data.params["model.hidden_dim"] == "16"
    history = client.get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [1, 2, 3]
    assert all(0.0 <= m.value <= 1.0 for m in history)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "config.yaml", "plots"} <= artifacts
    assert any(a.path.endswith(".png") for a in client.list_artifacts(run.info.run_id, "plots"))


def test_seeds_are_children_of_one_parent_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from affectfusion.recipes.fusion.recipe import train_seeds

    uri = _mlflow_db(tmp_path)
    cfg = tiny_config({"train.track": ["mlflow"], "train.tracking_uri": uri, "train.epochs": 1})
    train_seeds(cfg, tmp_path / "sweep", [1, 2])
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parents = [r for r in runs if r.data.tags.get("affectfusion.kind") == "seeds"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.params["train.seed"] for r in children) == ["1", "2"]
    assert not (tmp_path / "sweep" / "seed1" / "tb").exists()  # tensorboard was not asked for


def test_track_is_off_by_default_and_runtime_only(tmp_path: Path) -> None:
    """Untracked runs write no tb/ folder; a run resumes under other tracking settings."""
    from affectfusion.recipes.fusion.recipe import train_config

    run_dir = tmp_path / "run"
    train_config(tiny_config({"train.epochs": 1}), run_dir)
    assert not RunPaths(run_dir).tensorboard.exists()
    train_config(tiny_config({"train.epochs": 1, "train.track": ["tensorboard"]}), run_dir)  # already trained


def test_unknown_tracker_is_refused(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", "demo", "--set", "train.track=[wandb]"], capsys, monkeypatch)
    assert code == 2 and "train.track" in err and "tensorboard" in err


def test_flat_params_and_epoch_scalars() -> None:
    params = flat_params(
        {"train": {"lr": 0.01, "track": ["mlflow"]}, "model": {"fusion": {"name": "x", "options": {}}}}
    )
    assert params == {
        "train.lr": "0.01",
        "train.track": "[mlflow]",
        "model.fusion.name": "x",
        "model.fusion.options": "{}",
    }
    record = {"epoch": 1, "lr": 0.1, "train_loss": 1.0, "val_loss": 0.5, "val": {"n": 3, "accuracy": 0.5, "loss": 0.5}}
    assert epoch_scalars(record) == {"train_loss": 1.0, "val_loss": 0.5, "lr": 0.1, "val/accuracy": 0.5}


def test_cv_folds_are_children_of_one_parent_run_with_the_summary(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from affectfusion.data.fold_plan import Protocol
    from affectfusion.recipes.cv import run_cv

    uri = _mlflow_db(tmp_path)
    overrides = {"data.options.n_train": 48, "data.options.n_eval": 24, "train.epochs": 1}
    cfg = tiny_config({**overrides, "train.track": ["mlflow", "tensorboard"], "train.tracking_uri": uri})
    run_cv(cfg, tmp_path / "cv", Protocol(k=2), workers=1)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("affectfusion.kind") == "cv"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert 0.0 <= parent.data.metrics["label.accuracy.mean"] <= 1.0 and parent.data.metrics["label.accuracy.std"] >= 0
    assert {"cv.md", "cv.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert all(RunPaths(tmp_path / "cv" / f"fold{k}").tensorboard.is_dir() for k in range(2))  # one log folder per fold
