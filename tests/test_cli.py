"""The command line as a user meets it: listings, a train/test/compare cycle, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from affectfusion.models import FUSIONS
from tests.helpers import run_cli, tiny_config


def write_config(tmp_path: Path, overrides: dict | None = None) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(overrides).to_dict()))
    return path


def registered(what: str) -> list[str]:
    """Every name ``affectfusion list <what>`` must show, read from the registry itself."""
    from affectfusion.config import list_packaged_configs
    from affectfusion.data import DATASETS
    from affectfusion.extract import EXTRACTORS
    from affectfusion.models import CONTEXTS, ENCODERS

    registries = {
        "fusions": FUSIONS,
        "encoders": ENCODERS,
        "contexts": CONTEXTS,
        "datasets": DATASETS,
        "extractors": EXTRACTORS,
    }
    return list_packaged_configs() if what == "configs" else registries[what].names()


@pytest.mark.parametrize(
    ("what", "at_least"),
    [("fusions", 8), ("encoders", 3), ("contexts", 3), ("datasets", 17), ("extractors", 12), ("configs", 10)],
)
def test_list_shows_every_registered_name(what: str, at_least: int, capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["list", what], capsys, monkeypatch)
    assert code == 0
    names = registered(what)
    assert len(names) >= at_least
    shown = {line.split("│")[1].strip() for line in out.splitlines() if line.count("│") >= 3}
    assert set(names) <= shown, f"not listed whole in the first column: {sorted(set(names) - shown)}"


def test_train_test_compare_cycle(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg = write_config(tmp_path, {"variants": ["concat", "gated"], "train.epochs": 2})
    code, out, err = run_cli(["train", str(cfg), "--out", str(tmp_path / "runs")], capsys, monkeypatch)
    assert code == 0, err
    assert "concat" in out and "gated" in out
    assert (tmp_path / "runs/comparison/comparison.csv").is_file()
    assert (tmp_path / "runs/comparison/comparison.png").is_file()

    code, out, err = run_cli(["test", str(tmp_path / "runs/gated"), "--split", "other"], capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((tmp_path / "runs/gated/eval/other/metrics.json").read_text())
    assert metrics["split"] == "other" and 0 <= metrics["accuracy"] <= 1

    out_dir = tmp_path / "cmp"
    code, out, err = run_cli(
        ["compare", str(tmp_path / "runs/concat"), str(tmp_path / "runs/gated"), "--out", str(out_dir)],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert (out_dir / "comparison.md").read_text().count("|") > 10


def test_set_and_fusion_flags(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg = write_config(tmp_path, {"variants": ["concat", "gated"]})
    args = ["train", str(cfg), "--fusion", "weighted", "--set", "train.epochs=1", "--out", str(tmp_path / "r")]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "r/config.yaml").read_text())
    assert saved["model"]["fusion"]["name"] == "weighted" and saved["train"]["epochs"] == 1
    assert saved["variants"] is None


def one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert "Traceback" not in err
    assert text.startswith("error:")
    return text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model.fusion.name": "fancy"}, "unknown fusion strategy 'fancy'; valid names: concat"),
        ({"model.encoder.name": "resnet"}, "unknown encoder 'resnet'; valid names: bilstm"),
        ({"train.epochz": 3}, "unknown config key 'train.epochz'"),
        ({"model.fusion.options.nope": 1}, "unknown config key 'nope'"),
        ({"data.options.num_classes": 4}, "not in its class list"),
        ({"data.adapter": "feature_folder", "data.options": {"features": {"a": "x.npy"}}}, "data.root is not set"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path: Path, capsys, monkeypatch, overrides, expected) -> None:
    cfg = write_config(tmp_path)
    sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]
    code, _, err = run_cli(["train", str(cfg), *sets, "--out", str(tmp_path / "r")], capsys, monkeypatch)
    assert expected in one_line_error(code, err)


def test_missing_files_give_one_line_errors(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", str(tmp_path / "nope.yaml")], capsys, monkeypatch)
    assert "config file not found" in one_line_error(code, err)
    code, _, err = run_cli(["test", str(tmp_path)], capsys, monkeypatch)
    assert "is not a run directory" in one_line_error(code, err)
    cfg = write_config(tmp_path, {"data.adapter": "mosi", "data.options": {}, "data.root": str(tmp_path / "gone")})
    code, _, err = run_cli(["train", str(cfg)], capsys, monkeypatch)
    assert "does not exist" in one_line_error(code, err)
