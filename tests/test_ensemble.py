"""The ensemble run kind: seeds served and scored as one model (the mean of their calibrated outputs).

Two tiny fusion configs (classification, regression) are trained with two seeds each, once per module;
the ensembles built from them are checked against their members' own predictions, with tolerances.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.calibration import apply_temperature, served_temperatures
from affectfusion.io import read_json
from affectfusion.recipes.ensemble.combine import combine, combine_served
from affectfusion.recipes.ensemble.evaluate import evaluate_ensemble
from affectfusion.recipes.ensemble.members import MAX_MEMBERS, read_members, write_manifest
from affectfusion.recipes.fusion.example import example as fusion_example
from affectfusion.rundir import RunPaths, read_run
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.base import Prediction
from affectfusion.serve.predictor import Predictor, load_predictor
from tests.helpers import call_cli, run_cli

TEXT = {"text": np.linspace(-1, 1, 8, dtype=np.float32)}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classification config trained with ``--seeds 0,1``: an ensemble folder."""
    base = tmp_path_factory.mktemp("ensemble")
    config = fusion_example(base / "config").config
    assert call_cli(["train", config, "--seeds", "0,1", "--out", str(base / "seeds")]) == 0
    return base / "seeds"


@pytest.fixture(scope="module")
def regression_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ensemble_regression")
    raw = yaml.safe_load(Path(fusion_example(base / "config").config).read_text(encoding="utf-8"))
    raw["data"]["options"] |= {"task": "regression", "target_name": "valence"}
    raw["tasks"] = [{"name": "valence", "type": "regression"}]
    config = base / "config" / "regression.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert call_cli(["train", str(config), "--seeds", "0,1", "--out", str(base / "seeds")]) == 0
    return base / "seeds"


def test_train_seeds_makes_an_ensemble_run_scored_beside_its_seeds(seeds: Path) -> None:
    assert run_kind_of(seeds).name == "ensemble"
    manifest, runs = read_members(seeds)
    assert manifest.members == ["seed0", "seed1"] and len(runs) == 2
    assert set(RunPaths(seeds).evaluated_splits()) == {"dev", "test"}
    assert "Single run vs ensemble" in RunPaths(seeds).report.read_text(encoding="utf-8")


def test_the_ensemble_scores_the_mean_of_calibrated_member_probabilities(seeds: Path) -> None:
    """Its dev predictions are the mean of the members' own dev probabilities with their temperatures."""
    ensemble = pd.read_csv(RunPaths(seeds).predictions("dev"))
    columns = [c for c in ensemble.columns if c.startswith("label_prob_")]
    expected = []
    for name in ("seed0", "seed1"):
        run = read_run(seeds / name)
        probs = pd.read_csv(run.paths.predictions("dev"))[columns].to_numpy()
        temperatures, _ = served_temperatures(run.paths, run.config.tasks)
        expected.append(apply_temperature(probs, temperatures["label"]) if "label" in temperatures else probs)
    mean = np.mean(expected, axis=0)
    np.testing.assert_allclose(ensemble[columns].to_numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(ensemble[columns].sum(axis=1), 1.0, atol=1e-6)
    classes = [c.removeprefix("label_prob_") for c in columns]
    assert list(ensemble["label_pred"]) == [classes[k] for k in mean.argmax(axis=1)]


def test_an_ensemble_of_identical_members_is_that_member(seeds: Path, tmp_path: Path) -> None:
    member = seeds / "seed0"
    copies = [shutil.copytree(member, tmp_path / f"copy{k}") for k in range(3)]
    write_manifest(tmp_path, copies, "same", "test")
    metrics = evaluate_ensemble(tmp_path, "dev")
    own = read_json(RunPaths(member).metrics("dev"))
    for key in ("accuracy", "macro_f1", "n"):
        assert metrics[key] == pytest.approx(own[key], abs=1e-9)
    single = Predictor.load(member).predict_one(TEXT).tasks["label"]
    served = load_predictor(tmp_path).predict_one(TEXT).tasks["label"]
    expected = single.get("calibrated_probabilities", single["probabilities"])
    assert served["label"] == single["label"] and served["agreement"] == 1.0
    assert served["probabilities"] == pytest.approx(expected, abs=1e-6)


def test_served_probabilities_sum_to_one(seeds: Path) -> None:
    predictor = load_predictor(seeds)
    assert predictor.info()["kind"] == "ensemble" and predictor.info()["members"] == ["seed0", "seed1"]
    results = predictor.predict([TEXT, {"text": -TEXT["text"]}, {"nothing": 1}], ["a", "b", "c"])
    for res in results[:2]:
        assert res.error is None
        assert sum(res.tasks["label"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert results[2].error and "unknown input" in results[2].error
    with pytest.raises(AffectFusionError, match="explain needs a fusion run"):
        predictor.predict_one(TEXT, explain=True)


def test_a_regression_ensemble_predicts_the_mean_value(regression_seeds: Path) -> None:
    ensemble = pd.read_csv(RunPaths(regression_seeds).predictions("dev"))
    members = [pd.read_csv(RunPaths(regression_seeds / s).predictions("dev")) for s in ("seed0", "seed1")]
    mean = np.mean([m["valence_pred"].to_numpy() for m in members], axis=0)
    np.testing.assert_allclose(ensemble["valence_pred"].to_numpy(), mean, rtol=1e-5, atol=1e-6)
    served = load_predictor(regression_seeds).predict_one(TEXT).tasks["valence"]
    values = [
        Predictor.load(regression_seeds / s).predict_one(TEXT).tasks["valence"]["value"] for s in ("seed0", "seed1")
    ]
    assert served["value"] == pytest.approx(np.mean(values), abs=1e-5)
    assert served["member_std"] == pytest.approx(np.std(values), abs=1e-5)


def test_combine_is_per_task_and_multi_task() -> None:
    """One input, two members, three tasks: mean probabilities, mean thresholds, mean value."""
    tasks = [
        TaskConfig(name="emotion", type="classification", classes=["a", "b"]),
        TaskConfig(name="tags", type="multilabel", classes=["x", "y"]),
        TaskConfig(name="valence", type="regression"),
    ]

    def member(p_a: float, tags: list[float], value: float, cal: dict[str, float] | None = None) -> Prediction:
        emotion: dict[str, Any] = {"label": "a" if p_a >= 0.5 else "b", "probabilities": {"a": p_a, "b": 1 - p_a}}
        if cal is not None:
            emotion["calibrated_probabilities"] = cal
        out = {
            "emotion": emotion,
            "tags": {"probabilities": dict(zip("xy", tags, strict=True))},
            "valence": {"value": value},
        }
        return Prediction(id="i", tasks=out, modalities_used=["text"])

    members = [[member(0.9, [0.2, 0.5], 1.0, cal={"a": 0.6, "b": 0.4})], [member(0.3, [0.8, 0.1], 3.0)]]
    result = [Prediction(id="i")]
    combine_served(tasks, members, ["m0", "m1"], {"tags": np.array([[0.5, 0.5], [0.3, 0.3]])}, result)
    out = result[0].tasks
    assert out["emotion"]["probabilities"] == pytest.approx({"a": 0.45, "b": 0.55})  # calibrated where given
    assert out["emotion"]["label"] == "b" and out["emotion"]["agreement"] == 0.5
    assert out["tags"]["labels"] == ["x"]  # means 0.5 and 0.3 against the mean thresholds 0.4 and 0.4
    assert out["valence"] == {"value": 2.0, "member_std": 1.0}
    pred, proba = combine(tasks[2], np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert proba is None and pred.tolist() == [2.0, 4.0]


def test_a_member_error_is_the_inputs_error() -> None:
    task = TaskConfig(name="emotion", type="classification", classes=["a", "b"])
    ok = Prediction(id="i", tasks={"emotion": {"label": "a", "probabilities": {"a": 0.7, "b": 0.3}}})
    result = [Prediction(id="i")]
    combine_served([task], [[ok], [Prediction(id="i", error="not finite")]], ["m0", "m1"], {}, result)
    assert result[0].error == "not finite" and not result[0].tasks


def test_mismatched_members_are_refused_naming_the_member(seeds: Path, tmp_path: Path) -> None:
    other = shutil.copytree(seeds / "seed1", tmp_path / "other")
    config = yaml.safe_load(RunPaths(other).config.read_text(encoding="utf-8"))
    config["tasks"][0]["classes"] = ["x", "y", "z"]
    RunPaths(other).config.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(AffectFusionError, match=rf"ensemble member {other} has other tasks or classes"):
        write_manifest(tmp_path, [seeds / "seed0", other], "mixed", "test")
    assert not RunPaths(tmp_path).ensemble.exists()  # refused before anything is written
    # a manifest written by hand (or before a member changed) is refused when it is loaded
    manifest = {"name": "mixed", "members": [str(seeds / "seed0"), "other"]}
    RunPaths(tmp_path).ensemble.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(AffectFusionError, match=rf"ensemble member {other} has other tasks or classes"):
        load_predictor(tmp_path)
    config["tasks"][0]["classes"] = ["a", "b", "c"]
    config["data"]["options"]["n_train"] = 90
    RunPaths(other).config.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(AffectFusionError, match=r"reads other data .*data\.options differ"):
        read_members(tmp_path)


def test_the_member_count_is_bounded_before_anything_loads(tmp_path: Path) -> None:
    members = [f"run{k}" for k in range(MAX_MEMBERS + 1)]  # none of them exists: nothing is opened
    RunPaths(tmp_path).ensemble.write_text(json.dumps({"name": "big", "members": members}), encoding="utf-8")
    with pytest.raises(AffectFusionError, match=rf"at most {MAX_MEMBERS} items"):
        load_predictor(tmp_path)
    RunPaths(tmp_path).ensemble.write_text(json.dumps({"name": "gone", "members": ["nowhere"]}), encoding="utf-8")
    with pytest.raises(AffectFusionError, match=r"ensemble member .*nowhere .* is not a trained run"):
        read_members(tmp_path)


def test_cli_test_scores_the_ensemble(seeds: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    RunPaths(seeds).metrics("dev").unlink()
    code, out, err = run_cli(["test", str(seeds), "--split", "dev"], capsys, monkeypatch)
    assert code == 0, err
    assert RunPaths(seeds).metrics("dev").is_file() and "single run vs ensemble" in out
    code, _, err = run_cli(["test", str(seeds), "--conformal", "0.1"], capsys, monkeypatch)
    assert code != 0 and "--conformal score a single run" in err and "Traceback" not in err


def test_an_ensemble_config_lists_trained_members(seeds: Path, tmp_path: Path) -> None:
    config = tmp_path / "hand.yaml"
    members = [str(seeds / "seed0"), str(seeds / "seed1")]
    config.write_text(yaml.safe_dump({"kind": "ensemble", "name": "hand", "members": members}), encoding="utf-8")
    assert call_cli(["train", str(config), "--out", str(tmp_path / "out")]) == 0
    assert read_members(tmp_path / "out")[0].name == "hand"
    assert read_json(RunPaths(tmp_path / "out").metrics("dev"))["accuracy"] == pytest.approx(
        read_json(RunPaths(seeds).metrics("dev"))["accuracy"]
    )
    config.write_text(yaml.safe_dump({"kind": "ensemble", "name": "both", "members": members, "config": "x"}))
    assert call_cli(["train", str(config), "--out", str(tmp_path / "bad")]) != 0
    config.write_text(yaml.safe_dump({"kind": "ensemble", "name": "hand", "members": members}), encoding="utf-8")
    assert call_cli(["train", str(config), "--out", str(tmp_path / "bad"), "--set", "train.epochs=3"]) != 0
    assert not (tmp_path / "bad").exists()


def test_the_api_serves_an_ensemble(seeds: Path) -> None:
    from fastapi.testclient import TestClient  # the API's test client: only this test starts the app

    from affectfusion.serve.api import create_app

    client = TestClient(create_app(seeds))
    info = client.get("/info").json()
    assert info["kind"] == "ensemble" and info["name"] == "tiny_fusion_ensemble" and "dev" in info["metrics"]
    batch = client.post("/predict/batch", json={"items": [{"features": {"text": TEXT["text"].tolist()}}]})
    assert batch.status_code == 200, batch.text
    task = batch.json()["predictions"][0]["tasks"]["label"]
    assert sum(task["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    wrong = client.post("/predict/batch", json={"items": [{"features": {"text": [1.0, 2.0]}}]})
    assert wrong.status_code == 422 and "the model expects 8" in wrong.json()["detail"]


def test_cv_over_the_training_split_serves_its_folds_as_one_model(tmp_path: Path) -> None:
    """The folds never saw dev or test: the fold ensemble is scored there, each fold beside it."""
    from affectfusion.config import load_config
    from affectfusion.data.fold_plan import Protocol
    from affectfusion.recipes.cv import run_cv

    cfg = load_config(fusion_example(tmp_path / "config").config)
    run_cv(cfg, tmp_path / "cv", Protocol(k=2), splits=["train"], workers=1)
    manifest, runs = read_members(tmp_path / "cv")
    assert manifest.members == ["fold0", "fold1"] and manifest.data is not None
    assert manifest.data["adapter"] == "synthetic" and runs[0].config.data.adapter == "folds"
    for split in ("dev", "test"):
        metrics = read_json(RunPaths(tmp_path / "cv").metrics(split))
        assert metrics["n"] == 60 and set(metrics["members"]) == {"fold0", "fold1"}
        frame = pd.read_csv(RunPaths(tmp_path / "cv").predictions(split))
        assert metrics["accuracy"] == pytest.approx((frame["label_true"] == frame["label_pred"]).mean())
    assert load_predictor(tmp_path / "cv").predict_one(TEXT).error is None


def test_the_dashboard_shows_how_to_load_an_ensemble(seeds: Path) -> None:
    from affectfusion.serve.dashboard.backends import load_backend  # the dashboard's backends: this test only

    backend = load_backend(seeds)
    code = "\n".join(str(block) for block in backend.usage())
    assert "load_predictor(" in code and "Predictor.load(" not in code
    assert backend.summary()


def test_an_ensemble_config_trains_its_seeds_and_passes_other_keys_on(tmp_path: Path) -> None:
    from affectfusion.io import read_jsonl
    from affectfusion.recipes.ensemble.example import example

    config = example(tmp_path / "config").config
    out = tmp_path / "out"
    assert call_cli(["train", config, "--out", str(out), "--set", "seeds=[3]", "--set", "train.epochs=1"]) == 0
    manifest = read_members(out)[0]
    assert manifest.name == "tiny_ensemble" and manifest.members == ["seed3"]
    assert len(read_jsonl(RunPaths(out / "seed3").history)) == 1  # train.epochs went to the member config
    assert "tiny_ensemble" in RunPaths(out).report.read_text(encoding="utf-8")
