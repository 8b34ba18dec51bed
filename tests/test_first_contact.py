"""Issue #14's smaller first-contact defects, each reproduced: the --fusion switch, honest table
titles, readable comparison charts and analysis tables."""

from __future__ import annotations

import numpy as np
import pytest

from affectfusion.cli.train import fusion_switch
from affectfusion.config import load_config
from affectfusion.evaluation.plots import value_range
from tests.helpers import run_cli


def test_fusion_flag_drops_the_options_of_the_configs_own_strategy() -> None:
    """Item 1: `train p2_speech_text --fusion gated` failed on cross_attention's `layers`/`heads`."""
    cfg = load_config("p2_speech_text", fusion_switch("p2_speech_text", "gated"))
    assert cfg.model.fusion.name == "gated" and cfg.model.fusion.options == {} and cfg.variants is None
    same = load_config("p2_speech_text", fusion_switch("p2_speech_text", "cross_attention"))
    assert same.model.fusion.options == {"layers": 1, "heads": 4}  # the config's own strategy keeps them


def test_fusion_flag_through_the_cli(tmp_path, capsys, monkeypatch) -> None:
    sets = ["--set", "train.epochs=1", "--set", "train.progress=false", "--set", "data.options.n_train=40"]
    sets += ["--set", "data.options.n_eval=20", "--out", str(tmp_path / "run")]
    code, _, err = run_cli(["train", "p2_speech_text", "--fusion", "gated", *sets], capsys, monkeypatch)
    assert code == 0, err


def test_comparison_axis_shows_small_differences() -> None:
    """Item 10: bars from 0 made 0.64 vs 0.69 look equal; the axis now starts near the values."""
    low, high = value_range(np.array([[0.64], [0.69]]))
    assert 0.5 < low < 0.64 and high > 0.69
    assert value_range(np.array([[0.0, 2.0]]))[0] == 0.0  # values at 0 keep the zero line
    assert value_range(np.array([[np.nan]])) == (0.0, 1.0)


def test_analyze_table_puts_model_accuracy_on_the_fused_row() -> None:
    """Item 10: the model's accuracy was printed on the first block's row (audio)."""
    from rich.console import Console

    from affectfusion.cli.analysis import _summary_table

    block = {"n": 10, "chance": 0.5, "silhouette": 0.1, "knn_accuracy": 0.6, "probe_accuracy": 0.7}
    run = {"split": "dev", "name": "r", "separability": {"audio": block, "fused": block}, "failures": {"accuracy": 0.9}}
    console = Console(record=True, width=200)
    console.print(_summary_table([run], "fused"))
    rows = [line for line in console.export_text().splitlines() if "audio" in line or "fused" in line]
    assert "0.900" not in rows[0] and "0.900" in rows[1]


@pytest.mark.parametrize("split", [None, "dev"])
def test_test_table_is_titled_with_the_split_it_scored(split, tmp_path, capsys, monkeypatch) -> None:
    """Item 10: `test` without --split scored dev but printed "test metrics"."""
    import yaml

    from tests.helpers import tiny_config

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config({"data.test_split": None, "train.epochs": 1}).to_dict()))
    assert run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys, monkeypatch)[0] == 0
    args = ["test", str(tmp_path / "run")] + (["--split", split] if split else [])
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "metrics on dev" in out and "test metrics" not in out
