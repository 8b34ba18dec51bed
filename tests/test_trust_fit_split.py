"""A trust number is only shown when its data supports it: `calibrate` and `test --conformal` refuse a
calibration split that is too small or saturated, `data.calibration_split` holds out a better one, a
refused / unreadable / invalid / stale trust file never breaks `predict` or the API (they answer
without it and say why), `train` warns once about a small validation split, prints the test scores
and credits what allowed leaking splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from affectfusion.config import load_config
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.trust import calibrate_run, conformal_run
from affectfusion.rundir import RunPaths, read_run
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from affectfusion.training.loading import load_model
from affectfusion.training.trainer import Trainer
from tests.helpers import run_cli, tiny_config

CLASSES = ["a", "b", "c"]
PROTOTYPES = 3.0 * np.eye(3, 8, dtype=np.float32)  # class means, 4.2 apart


def write_features(root: Path, sizes: dict[str, int], noise: float, copy_train_into: str | None = None) -> Path:
    """A feature folder (manifest + one ``.npz`` of id -> 8-d array per split): class prototype plus noise.
    ``copy_train_into``: that split's arrays are exact copies of train's (a leak the data check finds)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows, train = ["id,split,label"], []
    for split, n in sizes.items():
        arrays = {}
        for i in range(n):
            x = PROTOTYPES[i % 3] + noise * rng.standard_normal(8).astype(np.float32)
            if split == copy_train_into:
                x = train[i]
            arrays[f"{split}{i}"] = x
            rows.append(f"{split}{i},{split},{CLASSES[i % 3]}")
        train = list(arrays.values()) if split == "train" else train
        np.savez(root / f"{split}_x.npz", **arrays)
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_config(path: Path, root: Path, **data: object) -> Path:
    raw = {
        "name": "ff",
        "data": {
            "adapter": "feature_folder",
            "root": str(root),
            "test_split": "test",
            "options": {"manifest": "manifest.csv", "features": {"x": "{split}_x.npz"}},
            **data,
        },
        "tasks": [{"name": "label", "type": "classification", "classes": CLASSES}],
        "model": {"hidden_dim": 16, "head_hidden": 16},
        "train": {"epochs": 4, "batch_size": 32, "lr": 0.01, "progress": False},
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def train(config: Path, out: Path, capsys, monkeypatch, *extra: str) -> tuple[str, str]:
    code, stdout, err = run_cli(["train", str(config), "--out", str(out), *extra], capsys, monkeypatch)
    assert code == 0, err
    return stdout, err


def api_task(run: Path, x: np.ndarray) -> dict:
    with TestClient(create_app(Predictor.load(run))) as client:
        r = client.post("/predict/batch", json={"items": [{"features": {"x": x.tolist()}}]})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["tasks"]["label"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Separable but noisy classes: a 10-row dev split, and a 90-row held-out `calib` split."""
    return write_features(tmp_path_factory.mktemp("ff"), {"train": 150, "dev": 10, "calib": 90, "test": 60}, noise=1.5)


@pytest.fixture(scope="module")
def held_out_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained with `data.calibration_split: calib`, calibrated and with 90 % conformal sets."""
    base = tmp_path_factory.mktemp("held_out")
    cfg = load_config(str(write_config(base / "ff.yaml", data, calibration_split="calib")))
    Trainer(cfg, base / "run").fit()
    run = read_run(base / "run")
    model = load_model(run)
    calibrate_run(run, model)
    conformal_run(run, model, 0.1, "test")
    return base / "run"


def test_a_small_dev_split_is_said_once_and_the_trust_commands_refuse_it(
    data: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    run = tmp_path / "run"
    out, err = train(write_config(tmp_path / "ff.yaml", data), run, capsys, monkeypatch)
    assert err.count("has only 10 samples") == 1 and "calibrate (needs 30 samples)" in err  # once, at the start
    assert "label: not calibrated: 'dev' has 10 labelled samples" in " ".join(err.split())
    assert "test split 'test', 60 samples" in out and "accuracy" in out  # the test scores, with the split's size
    entry = json.loads(RunPaths(run).calibration.read_text())["tasks"]["label"]
    assert "temperature" not in entry and "data.calibration_split" in entry["refused"]

    code, out, err = run_cli(["test", str(run), "--conformal", "0.1"], capsys, monkeypatch)
    assert code == 1 and "refused" in out and "no conformal set" in err and "at least 9 per class" in err
    saved = json.loads(RunPaths(run).conformal.read_text())
    assert saved["tasks"] == {} and "label" in saved["refused"]  # nothing the predictor would serve

    x = tmp_path / "x.npy"
    np.save(x, PROTOTYPES[0])
    code, out, err = run_cli(["predict", str(run), "--features", f"x={x}"], capsys, monkeypatch)
    assert code == 0, err
    assert "trust: not calibrated" in out and "trust: no conformal set" in out and "calibrated (T" not in out
    task = api_task(run, PROTOTYPES[0])
    assert "calibrated_probabilities" not in task and "prediction_set" not in task
    assert len(task["trust_warnings"]) == 2 and sum(task["probabilities"].values()) == pytest.approx(1.0)


def test_a_calibration_split_is_fitted_on_when_set(data: Path, held_out_run: Path) -> None:
    paths = RunPaths(held_out_run)
    calibration = json.loads(paths.calibration.read_text())
    assert calibration["fitted_on"] == "calib" and calibration["tasks"]["label"]["temperature"] > 0
    assert set(calibration["tasks"]["label"]["splits"]) == {"calib", "dev", "test"}
    saved = json.loads(paths.conformal.read_text())
    assert saved["calibrated_on"] == "calib" and np.isfinite(saved["tasks"]["label"]["q"][0])
    task = Predictor.load(held_out_run).predict_one({"x": PROTOTYPES[1]}).tasks["label"]
    assert task["calibrated_probabilities"] and task["prediction_set"]["coverage"] == pytest.approx(0.9)
    assert "trust_warnings" not in task
    check = json.loads(paths.data_check.read_text())
    assert check["splits"]["calib"] == 90  # the calibration split is checked for leakage like the others


def test_the_calibration_split_must_be_held_out() -> None:
    with pytest.raises(AffectFusionError, match="calibration_split 'test' must be a held-out split"):
        tiny_config({"data.calibration_split": "test"})
    with pytest.raises(AffectFusionError, match="calibration_split 'train' must be a held-out split"):
        tiny_config({"data.calibration_split": "train"})
    assert tiny_config({"data.calibration_split": "calib"}).data.fit_split == "calib"
    assert tiny_config().data.fit_split == "dev"


BAD_FILES = {
    "conformal q null": ("conformal", lambda d: d["tasks"]["label"].update(q=[None]), "no conformal set"),
    "conformal wrong kind": ("conformal", lambda d: d["tasks"]["label"].update(kind="multilabel"), "fitted for a"),
    "conformal stale": ("conformal", lambda d: d["temperatures"].update(label=0.5), "calibrated since"),
    "conformal garbage": ("conformal", None, "conformal.json is unreadable"),
    "temperature null": ("calibration", lambda d: d["tasks"]["label"].update(temperature=None), "not calibrated"),
    "temperature negative": ("calibration", lambda d: d["tasks"]["label"].update(temperature=-1), "not calibrated"),
    "calibration garbage": ("calibration", None, "calibration.json is unreadable"),
    "calibration no tasks": ("calibration", lambda d: d.pop("tasks"), "calibration.json is unreadable"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_or_stale_trust_file_never_breaks_predict_or_the_api(
    case: str, held_out_run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(held_out_run, run)
    which, edit, said = BAD_FILES[case]
    path = getattr(RunPaths(run), which)
    if edit is None:
        path.write_text('{"tasks": {"label": ', encoding="utf-8")
    else:
        saved = json.loads(path.read_text())
        edit(saved)
        path.write_text(json.dumps(saved), encoding="utf-8")
    x = tmp_path / "x.npy"
    np.save(x, PROTOTYPES[2])
    code, out, err = run_cli(["predict", str(run), "--features", f"x={x}"], capsys, monkeypatch)
    assert code == 0, err
    assert "trust: " in out and said in " ".join(out.split())
    task = api_task(run, PROTOTYPES[2])
    assert task["label"] in CLASSES and any(said in w for w in task["trust_warnings"])
    if which == "calibration":  # no temperature: the probabilities are served unscaled, and the sets fitted on
        assert "calibrated_probabilities" not in task and "prediction_set" not in task  # scaled ones are stale
    else:
        assert "prediction_set" not in task and task["calibrated_probabilities"]


def test_a_saturated_dev_split_is_refused_and_the_predictor_serves_unscaled_probabilities(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Acceptance: dev accuracy 1.0 on 60 samples (enough of them): calibrate refuses, says why in its table,
    calibration.json and the report, and predictions carry the raw probabilities only."""
    root = write_features(tmp_path / "data", {"train": 90, "dev": 60, "test": 60}, noise=0.05)
    run = tmp_path / "run"
    _, err = train(write_config(tmp_path / "ff.yaml", root), run, capsys, monkeypatch, "--set", "train.epochs=20")
    assert "has only" not in err and "not calibrated: the model makes no error on 'dev'" in " ".join(err.split())
    code, out, err = run_cli(["calibrate", str(run)], capsys, monkeypatch)
    assert code == 1 and "refused" in out and "accuracy 1.0" in err
    paths = RunPaths(run)
    entry = json.loads(paths.calibration.read_text())["tasks"]["label"]
    assert "temperature" not in entry and "accuracy 1.0" in entry["refused"]
    assert (
        "**Not calibrated** (probabilities are served unscaled): the model makes no error" in paths.report.read_text()
    )

    predictor = Predictor.load(run)
    plain = predictor.predict_one({"x": PROTOTYPES[0]}).tasks["label"]
    assert "calibrated_probabilities" not in plain and "temperature" not in plain
    assert "accuracy 1.0" in plain["trust_warnings"][0]
    task = api_task(run, PROTOTYPES[0])
    assert task["probabilities"] == pytest.approx(plain["probabilities"]) and "calibrated_probabilities" not in task

    code, out, err = run_cli(["test", str(run), "--conformal", "0.2"], capsys, monkeypatch)
    assert code == 1 and "accuracy 1.0" in err  # conformal refuses the saturated split too
    assert json.loads(paths.conformal.read_text())["tasks"] == {}


@pytest.mark.parametrize("how", ["config", "flag"])
def test_train_says_leakage_was_allowed_and_by_what(how: str, tmp_path: Path, capsys, monkeypatch) -> None:
    root = write_features(tmp_path / "data", {"train": 60, "dev": 30, "test": 30}, 1.5, copy_train_into="dev")
    config = write_config(tmp_path / "ff.yaml", root, **({"allow_leakage": True} if how == "config" else {}))
    flag = ["--allow-leakage"] if how == "flag" else []
    _, err = train(config, tmp_path / "run", capsys, monkeypatch, *flag)
    credit = "--allow-leakage" if how == "flag" else f"data.allow_leakage: true in {config}"
    said = " ".join(err.split())
    assert "the data splits leak (" in said and f"allowed by {credit}" in said
    report = RunPaths(tmp_path / "run").report.read_text()
    assert f"Training went ahead anyway (allowed by `{credit}`)." in report
    if how == "config":
        assert "--allow-leakage" not in report
