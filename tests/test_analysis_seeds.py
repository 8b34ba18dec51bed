"""Seeds and significance: paired tests on synthetic predictions, id pairing, seed sweeps, grouping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, root_mean_squared_error

from affectfusion.analysis.seed_report import aggregate_seeds, paired_samples
from affectfusion.analysis.seeds import group_by_variant, parse_seeds
from affectfusion.analysis.significance import accuracy, macro_f1, mae, paired_bootstrap, permutation_test, rmse
from affectfusion.cli.tables import print_seed_summary
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.fusion.recipe import train_seeds
from tests.helpers import tiny_config
from tests.test_cli import run_cli

SEEDS = [1, 2, 3]


def noisy(y: np.ndarray, p_correct: float, rng: np.random.Generator, k: int = 3) -> np.ndarray:
    """Predictions that are right with probability ``p_correct`` and otherwise a wrong class."""
    wrong = (y + rng.integers(1, k, y.shape)) % k
    return np.where(rng.random(y.shape) < p_correct, y, wrong)


def test_batched_metrics_equal_sklearn_row_by_row() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, (40, 25)), rng.integers(0, 4, (40, 25))
    p[0], y[0] = 0, 1  # a row whose truth and predictions share no class
    y[1] = p[1] = np.arange(25) % 2  # a row with two of the four classes
    assert np.allclose(
        macro_f1(y, p), [f1_score(t, q, average="macro", zero_division=0) for t, q in zip(y, p, strict=True)]
    )
    assert np.allclose(accuracy(y, p), [accuracy_score(t, q) for t, q in zip(y, p, strict=True)])
    yr, pr = rng.normal(size=(6, 30)), rng.normal(size=(6, 30))
    assert np.allclose(mae(yr, pr), [mean_absolute_error(t, q) for t, q in zip(yr, pr, strict=True)])
    assert np.allclose(rmse(yr, pr), [root_mean_squared_error(t, q) for t, q in zip(yr, pr, strict=True)])


def test_bootstrap_interval_covers_the_true_difference() -> None:
    """a is right 80 % of the time and b 65 %, so the true accuracy difference is 0.15."""
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(20):
        y = rng.integers(0, 3, 300)
        res = paired_bootstrap(y, noisy(y, 0.8, rng), noisy(y, 0.65, rng), accuracy, n_boot=500, seed=i)
        covered += res["ci_low"] <= 0.15 <= res["ci_high"]
        assert res["ci_low"] <= res["diff"] <= res["ci_high"]
    assert covered >= 17  # nominal 95 % of 20


def test_big_gap_excludes_zero_and_identical_predictions_give_exactly_zero() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    a, b = noisy(y, 0.9, rng), noisy(y, 0.5, rng)
    big = paired_bootstrap(y, a, b, macro_f1)
    assert big["ci_low"] > 0.2 and big["p_value"] < 0.01
    same = paired_bootstrap(y, a, a.copy(), macro_f1)
    assert same["diff"] == 0.0 and same["ci_low"] == 0.0 == same["ci_high"] and same["p_value"] == 1.0
    # Several seed pairs: [k, n] predictions, the statistic averages over them.
    multi = paired_bootstrap(y, np.stack([a, a]), np.stack([b, a]), accuracy, n_boot=300)
    assert multi["n_seeds"] == 2 and multi["diff"] == pytest.approx(accuracy(y, a)[0] / 2 - accuracy(y, b)[0] / 2)


def test_permutation_p_small_for_a_big_gap_and_large_for_none() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    a = noisy(y, 0.85, rng)
    assert permutation_test(y, a, noisy(y, 0.5, rng), accuracy, n_perm=1000)["p_value"] < 0.01
    # b is right on as many samples as a, on different ones: no gap at all.
    b = np.where(np.roll(a == y, 7), y, (y + 1) % 3)
    none = permutation_test(y, a, b, accuracy, n_perm=1000)
    assert none["diff"] == 0.0 and none["p_value"] > 0.5
    assert permutation_test(y, a, a, macro_f1, n_perm=200)["p_value"] == 1.0


def write_predictions(path: Path, ids: list[str], truth: list[str], pred: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "group": "g", "source": "", "label_true": truth, "label_pred": pred}).to_csv(
        path, index=False
    )
    return path


def test_paired_samples_pairs_by_id_and_rejects_disjoint_or_conflicting_files(tmp_path: Path) -> None:
    classes = ["a", "b", "c"]
    first = write_predictions(tmp_path / "1.csv", ["s1", "s2", "s3", "s4"], ["a", "b", "c", ""], list("abca"))
    second = write_predictions(tmp_path / "2.csv", ["s3", "s9", "s1", "s4"], ["c", "a", "a", "b"], list("cccb"))
    ids, y, preds = paired_samples([first, second], "label", classes)
    assert ids == ["s1", "s3"]  # s2 and s9 are in one file only, s4 is unlabelled in the first
    assert y.tolist() == [0, 2] and preds.tolist() == [[0, 2], [2, 2]]

    disjoint = write_predictions(tmp_path / "3.csv", ["x1", "x2"], ["a", "b"], ["a", "b"])
    with pytest.raises(AffectFusionError, match="no labelled sample ids in common"):
        paired_samples([first, disjoint], "label", classes)
    conflicting = write_predictions(tmp_path / "4.csv", ["s1", "s3"], ["b", "c"], ["a", "a"])
    with pytest.raises(AffectFusionError, match="disagree on the label truth"):
        paired_samples([first, conflicting], "label", classes)
    with pytest.raises(AffectFusionError, match="no predictions at"):
        paired_samples([first, tmp_path / "gone.csv"], "label", classes)


def test_paired_samples_reads_regression_values(tmp_path: Path) -> None:
    first = write_predictions(tmp_path / "1.csv", ["s1", "s2", "s3"], ["1.5", "", "-2"], ["1", "0", "-1"])
    second = write_predictions(tmp_path / "2.csv", ["s3", "s2", "s1"], ["-2", "0.5", "1.5"], ["0", "1", "2"])
    ids, y, preds = paired_samples([first, second], "label")
    assert ids == ["s1", "s3"] and y.tolist() == [1.5, -2.0] and preds.tolist() == [[1.0, -1.0], [2.0, 0.0]]


@pytest.mark.parametrize("text", ["", "1,,2", "1,x", "-1", "1.5", "1,1"])
def test_bad_seed_lists_give_one_line_errors(text: str) -> None:
    with pytest.raises(AffectFusionError, match="--seeds") as info:
        parse_seeds(text)
    assert "\n" not in str(info.value)


def test_parse_seeds_accepts_spaces() -> None:
    assert parse_seeds(" 3, 1,2 ") == [3, 1, 2]


def fake_run(path: Path, seed: int, overrides: dict | None = None) -> Path:
    """A folder with just a resolved config.yaml: all that grouping reads."""
    cfg = tiny_config({"train.seed": seed, "name": f"tiny_seed{seed}", **(overrides or {})})
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def test_group_by_variant_keeps_different_configs_apart(tmp_path: Path) -> None:
    fast = [fake_run(tmp_path / "lr01" / f"seed{s}", s) for s in (2, 1)]
    slow = [fake_run(tmp_path / "lr001" / f"seed{s}", s, {"train.lr": 0.001}) for s in (1, 2)]
    gated = [fake_run(tmp_path / "gated" / f"seed{s}", s, {"model.fusion.name": "gated"}) for s in (1, 2)]
    groups = group_by_variant([*fast, *slow, *gated])
    # Two concat configs clash on "concat" and on "tiny/concat", so their folder names label them.
    assert groups == {"lr01": fast[::-1], "lr001": slow, "gated": gated}
    assert group_by_variant(fast) == {"concat": fast[::-1]}
    twin = fake_run(tmp_path / "copy" / "seed1", 1)
    with pytest.raises(AffectFusionError, match="same config and seed 1"):
        group_by_variant([*fast, twin])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """3 seeds × 2 fusion strategies of the tiny config, one epoch each (the statistics need
    different models, not good ones)."""
    out = tmp_path_factory.mktemp("seeds") / "sweep"
    return out, train_seeds(SWEEP_CONFIG, out, SEEDS, overwrite=False)


SWEEP_CONFIG = tiny_config({"variants": ["concat", "gated"], "train.epochs": 1})


def test_train_seeds_writes_one_run_per_seed_and_variant_and_resumes(sweep: tuple[Path, list[Path]]) -> None:
    out, dirs = sweep
    assert dirs == [out / f"seed{s}" / v for s in SEEDS for v in ("concat", "gated")]
    saved = yaml.safe_load((out / "seed2" / "gated" / "config.yaml").read_text())
    assert saved["train"]["seed"] == 2 and saved["name"] == "tiny_seed2/gated"
    assert (out / "seed3" / "comparison" / "comparison.csv").is_file()
    assert group_by_variant(dirs) == {"concat": dirs[0::2], "gated": dirs[1::2]}
    # Running the sweep again skips finished runs instead of training more epochs.
    history = (out / "seed1" / "gated" / "history.jsonl").read_text()
    assert train_seeds(SWEEP_CONFIG, out, [1]) == dirs[:2]
    assert (out / "seed1" / "gated" / "history.jsonl").read_text() == history


def test_seed_aggregate_gives_mean_std_and_an_interval_for_the_difference(sweep: tuple[Path, list[Path]]) -> None:
    out, dirs = sweep
    summary, pairwise = aggregate_seeds(group_by_variant(dirs), out / "seeds", n_boot=500, n_perm=500)

    assert summary["group"].tolist() == ["concat", "gated"]
    assert summary["seeds"].tolist() == ["1,2,3", "1,2,3"] and summary["split"].tolist() == ["test", "test"]
    for m in ("accuracy", "macro_f1"):
        assert summary[f"{m}_mean"].between(0, 1).all() and (summary[f"{m}_std"] >= 0).all()
    assert pairwise["metric"].tolist() == ["macro_f1", "accuracy"]
    row = pairwise.iloc[0]
    assert (row["a"], row["b"], row["n_samples"], row["n_seed_pairs"]) == ("concat", "gated", 60, 3)
    assert row["ci_low"] <= row["diff"] <= row["ci_high"] and 0 < row["p_bootstrap"] <= 1
    assert row["diff_of_means"] == pytest.approx(row["mean_a"] - row["mean_b"])
    assert row["diff"] == pytest.approx(row["diff_of_means"])  # every run scored the same 60 test samples

    for name in ("seeds_summary.csv", "seeds_pairwise.csv", "seeds.png"):
        assert (out / "seeds" / name).is_file()
    report = (out / "seeds" / "seeds.md").read_text()
    assert "concat \N{MINUS SIGN} gated macro_f1 = " in report
    assert "95% CI" in report and "(paired bootstrap over 60 test samples × 3 seeds)" in report
    assert "higher macro_f1 is better" in report

    console = Console(record=True, width=160)
    print_seed_summary(summary, pairwise, console)
    text = console.export_text()
    assert " ± " in text and "concat − gated" in text and "60 × 3" in text


def test_cli_train_seeds_resumes_and_compare_aggregates(
    sweep: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = sweep
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(SWEEP_CONFIG.to_dict()))
    code, text, err = run_cli(["train", str(config), "--seeds", "1", "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    assert "concat − gated" in text and (out / "seeds" / "seeds.md").is_file()

    seed_dirs = [str(out / f"seed{s}") for s in SEEDS]
    args = ["compare", *seed_dirs, "--seeds-aggregate", "--out", str(tmp_path / "agg")]
    code, text, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert " ± " in text and (tmp_path / "agg" / "seeds_pairwise.csv").is_file()

    code, _, err = run_cli(["train", str(config), "--seeds", "1,x", "--out", str(out)], capsys, monkeypatch)
    assert code == 2 and "--seeds expects comma-separated" in err
