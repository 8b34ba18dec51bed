"""Issue #14's smaller first-contact defects, each reproduced: the --fusion switch, honest table
titles, readable comparison charts and analysis tables."""

from __future__ import annotations

import numpy as np
import pytest

from affectfusion.config import load_config, load_raw, resolve_config_path
from affectfusion.evaluation.plots import value_range
from affectfusion.recipes.fusion.train import fusion_switch
from tests.helpers import run_cli


def test_fusion_flag_drops_the_options_of_the_configs_own_strategy() -> None:
    """Item 1: `train p2_speech_text --fusion gated` failed on cross_attention's `layers`/`heads`."""
    raw = load_raw(resolve_config_path("p2_speech_text"))
    cfg = load_config("p2_speech_text", fusion_switch(raw, "gated"))
    assert cfg.model.fusion.name == "gated" and cfg.model.fusion.options == {} and cfg.variants is None
    same = load_config("p2_speech_text", fusion_switch(raw, "cross_attention"))
    assert same.model.fusion.options == {"layers": 1, "heads": 4}  # the config's own strategy keeps them


def test_fusion_flag_through_the_cli(tmp_path, capsys, monkeypatch) -> None:
    sets = ["--set", "train.epochs=1", "--set", "train.progress=false", "--set", "data.options.n_train=40"]
    sets += ["--set", "data.options.n_eval=20", "--out", str(tmp_path / "run")]
    code, _, err = run_cli(["train", "p2_speech_text", "--fusion", "gated", *sets], capsys, monkeypatch)
    assert code == 0, err


def test_comparison_bars_start_at_zero() -> None:
    """Bars encode a value by their length, so the axis starts at 0 (a cut axis made 0.64 vs 0.69 look
    like a two-fold gap); small differences are read from the bar labels and interval whiskers."""
    low, high = value_range(np.array([[0.64], [0.69]]))
    assert low == 0.0 and high > 0.69
    assert value_range(np.array([[-0.2, 0.5]]))[0] < -0.2  # a negative correlation keeps its bar
    assert value_range(np.array([[np.nan]])) == (0.0, 1.0)


def test_bootstrap_intervals_match_sklearn_on_every_resample() -> None:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error

    from affectfusion.evaluation import intervals

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    idx = rng.integers(0, 50, (5, 50))
    fast = intervals._classification(y, p, 4, idx)
    for r in range(5):
        assert fast["accuracy"][r] == pytest.approx(accuracy_score(y[idx[r]], p[idx[r]]))
        assert fast["macro_f1"][r] == pytest.approx(f1_score(y[idx[r]], p[idx[r]], average="macro"))
    yr, pr = rng.normal(size=50), rng.normal(size=50)
    fast = intervals._regression(yr, pr, idx)
    assert fast["mae"][0] == pytest.approx(mean_absolute_error(yr[idx[0]], pr[idx[0]]))
    assert fast["pearson_r"][0] == pytest.approx(np.corrcoef(yr[idx[0]], pr[idx[0]])[0, 1])
    (low, high) = intervals.bootstrap_intervals(y, p, "classification", 4)["accuracy"]
    assert low < accuracy_score(y, p) < high


def test_compare_table_names_split_and_size_and_shows_intervals(tmp_path, capsys, monkeypatch) -> None:
    """Item 6 of the second round: the demo's table did not say which split or how many samples, and
    had no intervals."""
    import pandas as pd
    import yaml

    from tests.helpers import tiny_config

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config({"train.epochs": 1}).to_dict()))
    for fusion in ("concat", "gated"):
        args = ["train", str(config), "--fusion", fusion, "--out", str(tmp_path / fusion)]
        assert run_cli(args, capsys, monkeypatch)[0] == 0
    args = ["compare", str(tmp_path / "concat"), str(tmp_path / "gated"), "--out", str(tmp_path / "cmp")]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "test split, n = 60" in out and "[95% CI]" in out
    df = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert (df["macro_f1_ci_low"] <= df["macro_f1"]).all() and (df["macro_f1"] <= df["macro_f1_ci_high"]).all()
    assert "n = 60 samples" in (tmp_path / "cmp" / "comparison.md").read_text()


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
