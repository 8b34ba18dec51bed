"""Calibration, conformal sets, subgroups and the data check on a trained run, and in its report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from affectfusion.analysis.trust_layer import TrustLayer
from affectfusion.data.label_maps import load_label_map, shipped_label_maps
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.conformal import read_conformal
from affectfusion.evaluation.report import write_run_report
from affectfusion.evaluation.trust_report import trust_html
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.trust import calibrate_run, conformal_run, subgroups_run
from affectfusion.rundir import read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trust") / "run"
    Trainer(tiny_config({"data.options.n_eval": 150, "train.epochs": 6}), out).fit()
    return out


def test_train_records_the_data_check(run_dir: Path) -> None:
    check = json.loads(read_run(run_dir).paths.data_check.read_text())
    assert check["leaking"] is False and check["splits"] == {"train": 120, "dev": 150, "test": 150}


def test_calibrate_conformal_subgroups_and_report(run_dir: Path) -> None:
    run = read_run(run_dir)
    model = load_model(run)
    cal = calibrate_run(run, model)
    entry = cal["tasks"]["label"]
    assert entry["temperature"] > 0 and set(entry["splits"]) == {"dev", "test"}
    dev = entry["splits"]["dev"]
    assert dev["after"]["nll"] <= dev["before"]["nll"] + 1e-9  # fitted there: never worse on its own split
    assert dev["after"]["accuracy"] == dev["before"]["accuracy"]
    assert (run_dir / cal["plots"]["label"]).is_file()

    cov = conformal_run(run, model, 0.2, "test")
    assert cov["tasks"]["label"]["method"] == "APS" and 0.6 <= cov["tasks"]["label"]["coverage"] <= 1.0
    assert read_conformal(run.paths)["label"].alpha == 0.2

    table, gaps = subgroups_run(run, model, "test", ["group"], n_resamples=20)
    assert (run.paths.subgroups("test")).is_file() and set(table["group"]) > {"all"}
    assert gaps["label"]["group"]["accuracy"]["gap"] >= 0
    assert len(pd.read_csv(run.paths.subgroups("test"))) == len(table)

    report = write_run_report(run_dir).read_text()
    for heading in ("## Data check", "## Calibration", "## Conformal prediction", "## Subgroups"):
        assert heading in report
    assert "![Reliability diagram label](plots/reliability_test_label.png)" in report
    fragment = trust_html(run_dir)
    assert "<h2>Calibration</h2>" in fragment and "<table>" in fragment


def test_train_refuses_leaking_splits(tmp_path: Path) -> None:
    rows = ["path,split,speaker,emotion"] + [
        f"{s}/{i}.wav,{s},spk{i % 2},happy" for s in ("train", "dev") for i in range(4)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    for s in ("train", "dev"):
        (tmp_path / s).mkdir()
        for i in range(4):
            (tmp_path / s / f"{i}.wav").write_bytes(b"RIFF" + bytes([i, ord(s[0])]))
    cfg = tiny_config({"data": {"adapter": "emodb", "root": str(tmp_path), "val_split": "dev", "options": {}}})
    with pytest.raises(
        AffectFusionError, match=r"the data splits leak \(2 group\(s\) in both train and dev.*--allow-leakage"
    ):
        Trainer(cfg, tmp_path / "run").fit()


def test_label_maps() -> None:
    assert {"common6", "common7", "iemocap4"} <= set(shipped_label_maps())
    m = load_label_map("common6")
    assert [m.map(x) for x in ("angry", "W", "Happiness", "calm", "boredom", "surprised")] == [
        "anger",
        "anger",
        "happiness",
        None,
        None,
        None,
    ]
    assert load_label_map("common7").map("surprised") == "surprise"
    with pytest.raises(AffectFusionError, match="neither a YAML file nor a shipped map"):
        load_label_map("common99")


def test_trust_layer_adds_calibrated_probabilities_sets_and_attribution(run_dir: Path) -> None:
    run = read_run(run_dir)
    model = load_model(run)
    calibrate_run(run, model)
    conformal_run(run, model, 0.1, "test")
    ds = load_dataset(run.config, "test", modalities=run.modalities)
    preds = predict(model, ds, run.scalers)
    extras = TrustLayer(run).outputs(model, ds, preds, explain=True)
    assert len(extras) == len(ds)
    classes = run.config.tasks[0].classes
    for i, e in enumerate(extras[:20]):
        out = e["label"]
        assert sum(out["calibrated_probabilities"].values()) == pytest.approx(1.0)
        predicted = classes[int(preds.pred["label"][i])]
        assert max(out["calibrated_probabilities"], key=out["calibrated_probabilities"].get) == predicted
        assert predicted in out["prediction_set"]["classes"] and out["prediction_set"]["coverage"] == 0.9
        a = out["attribution"]
        assert set(a["values"]) == set(run.modalities) and a["exact"]
        assert sum(a["values"].values()) == pytest.approx(a["output"] - a["base"], abs=1e-5)
        missing = set(run.modalities) - set(ds.samples[i].features)
        assert all(a["values"][m] == 0.0 for m in missing)  # a modality the sample lacks contributes nothing
