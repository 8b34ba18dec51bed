"""The trust commands end to end: check-data, train (data check + calibration), calibrate,
test --conformal / --by, and cross-corpus RAVDESS -> EmoDB on the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from affectfusion.rundir import RunPaths
from tests.helpers import SHARED_DATA, run_cli, tiny_config


def write_config(tmp_path: Path, overrides: dict | None = None) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(overrides).to_dict()))
    return path


def test_check_data_command(tmp_path: Path, capsys, monkeypatch) -> None:
    code, out, _ = run_cli(
        ["check-data", str(write_config(tmp_path)), "--out", str(tmp_path / "c.json")], capsys, monkeypatch
    )
    assert code == 0 and "no leakage found" in out
    assert json.loads((tmp_path / "c.json").read_text())["splits"] == {"train": 120, "dev": 60, "test": 60}


def test_train_calibrate_and_test_with_conformal_and_subgroups(tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(["train", str(write_config(tmp_path)), "--out", str(run)], capsys, monkeypatch)
    assert code == 0, err
    paths = RunPaths(run)
    assert paths.data_check.is_file() and paths.calibration.is_file()  # recorded / fitted at train time
    code, out, err = run_cli(["calibrate", str(run)], capsys, monkeypatch)
    assert code == 0 and "ECE" in out and "->" in out, err
    code, out, err = run_cli(["test", str(run), "--conformal", "0.1", "--by", "group"], capsys, monkeypatch)
    assert code == 0, err
    assert "target coverage 90%" in out and "worst-group gaps" in out
    assert paths.coverage("test").is_file() and paths.subgroups("test").is_file() and paths.conformal.is_file()
    report = paths.report.read_text()
    for heading in ("## Data check", "## Calibration", "## Conformal prediction", "## Subgroups"):
        assert heading in report
    code, _, err = run_cli(["test", str(run), "--by", "speaker"], capsys, monkeypatch)
    assert code == 2 and "no sample has metadata column 'speaker'" in err


def test_label_map_needs_data(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["test", str(tmp_path), "--label-map", "common6"], capsys, monkeypatch)
    assert code == 2 and "--data" in err


@pytest.mark.slow
def test_cross_corpus_ravdess_to_emodb(tmp_path: Path, capsys, monkeypatch) -> None:
    if not (SHARED_DATA / "ravdess_speech_16k").is_dir() or not (SHARED_DATA / "emodb_2s_16k").is_dir():
        pytest.skip("../shared/data with RAVDESS and EmoDB is absent")
    run = tmp_path / "ravdess"
    sets = [
        f"data.root={SHARED_DATA / 'ravdess_speech_16k'}",
        "data.options.extra_views=[]",
        "data.extract={audio_func: {name: egemaps}}",
        "model.encoders={audio_func: {name: mean}}",
        "train.epochs=5",
        "train.progress=false",
    ]
    code, _, err = run_cli(
        ["train", "ravdess_speech", "--out", str(run), *[f"--set={s}" for s in sets]], capsys, monkeypatch
    )
    assert code == 0, err
    emodb = SHARED_DATA / "emodb_2s_16k"
    code, out, err = run_cli(["test", str(run), "--data", str(emodb), "--label-map", "common6"], capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(RunPaths(run).cross_corpus("emodb_2s_16k_test_small").read_text())
    assert result["adapter"] == "emodb" and result["n_samples"] == 69
    assert result["unmapped_run_classes"] == ["calm", "surprised"]
    assert result["unmapped_data_labels"] == {"boredom": 8} and result["n_scored"] == 61
    assert result["metrics"]["n"] == 61 and result["metrics"]["accuracy"] is not None
    assert "boredom (8)" in out and "calm, surprised" in out
    assert "## Cross-corpus evaluation" in RunPaths(run).report.read_text()
