"""Evaluation: metrics against hand-computed values, run-folder files, plots, reports, comparisons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from affectfusion.config import RunConfig, TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import compare_runs, format_table
from affectfusion.evaluation.metrics import (
    classification_metrics,
    metric_value,
    regression_metrics,
    summarize,
    task_metrics,
)
from affectfusion.evaluation.plots import plot_comparison, plot_confusion_matrix
from affectfusion.evaluation.report import curves_drawing, plot_run, write_run_report
from affectfusion.evaluation.selection import best_epoch, default_monitor, metric_mode
from affectfusion.io import append_jsonl, atomic_file, read_json, read_jsonl, write_csv, write_json, write_text

EMOTION = TaskConfig(name="emotion", type="classification", classes=["ang", "hap", "sad"])
SENTIMENT = TaskConfig(name="sentiment", type="regression", signed=True)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 3 classes, 6 samples. Per class: ang P=1/2 R=1/2 F1=1/2; hap P=2/3 R=1 F1=4/5; sad P=1 R=1/2 F1=2/3.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
MACRO_F1 = (1 / 2 + 4 / 5 + 2 / 3) / 3


def test_classification_metrics_match_hand_computed_values():
    m = classification_metrics(Y_TRUE, Y_PRED, ["ang", "hap", "sad"])
    assert m["type"] == "classification" and m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["macro_f1"] == pytest.approx(MACRO_F1)
    assert m["weighted_f1"] == pytest.approx(MACRO_F1)  # equal supports
    assert m["per_class"]["hap"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["sad"]["precision"] == 1.0 and m["per_class"]["sad"]["recall"] == 0.5
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["classes"] == ["ang", "hap", "sad"]
    json.dumps(m, allow_nan=False)  # plain JSON types only
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


def test_absent_class_is_listed_but_not_averaged_into_macro_f1():
    m = classification_metrics(Y_TRUE, Y_PRED, ["ang", "hap", "sad", "neu"])
    assert m["macro_f1"] == pytest.approx(MACRO_F1)
    assert m["per_class"]["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert np.array(m["confusion_matrix"]).shape == (4, 4)


def test_classification_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(np.array([0, 3]), np.array([0, 1]), ["a", "b"])


def test_regression_metrics_closed_forms():
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    same = regression_metrics(t, t)
    assert same["mae"] == 0.0 and same["rmse"] == 0.0 and same["ccc"] == pytest.approx(1.0)
    assert same["pearson_r"] == pytest.approx(1.0)
    assert "binary_accuracy" not in same
    # Shift by c: cov = var_t = 2 (population), CCC = 2*2 / (2 + 2 + c^2) = 0.8 for c = 1.
    shifted = regression_metrics(t, t + 1)
    assert shifted["mae"] == pytest.approx(1.0) and shifted["rmse"] == pytest.approx(1.0)
    assert shifted["pearson_r"] == pytest.approx(1.0)
    assert shifted["ccc"] == pytest.approx(0.8)
    # Pearson: deviations (-1.5,-.5,.5,1.5) vs (-1.5,.5,-.5,1.5): 4 / 5.
    assert regression_metrics([1, 2, 3, 4], [1, 3, 2, 4])["pearson_r"] == pytest.approx(0.8)
    assert regression_metrics([0, 0], [3, 4])["rmse"] == pytest.approx(math.sqrt(12.5))


def test_constant_predictions_give_zero_correlation_and_nonfinite_gives_none():
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert m["pearson_r"] == 0.0 and m["ccc"] == 0.0
    bad = regression_metrics([1.0, 2.0], [np.nan, 1.0])
    assert bad["mae"] is None and bad["pearson_r"] is None


def test_signed_binary_metrics_exclude_zero_truth():
    # Non-zero truth (-2, 1, 3) -> (neg, pos, pos); preds (-1, -0.5, 0) -> (neg, neg, pos): 0 is positive.
    m = regression_metrics([-2.0, 0.0, 1.0, 3.0], [-1.0, 2.0, -0.5, 0.0], signed=True)
    assert m["binary_accuracy"] == pytest.approx(2 / 3)
    # Both classes have F1 2/3, so the support-weighted F1 is 2/3 too.
    assert m["binary_f1"] == pytest.approx(2 / 3)
    assert regression_metrics([0.0, 0.0], [1.0, -1.0], signed=True)["binary_accuracy"] is None


def test_summarize_flattens_primary_task_and_metric_value_lookups():
    per_task = {
        "emotion": task_metrics(EMOTION, Y_TRUE, Y_PRED),
        "sentiment": task_metrics(SENTIMENT, [1.0, -1.0], [0.5, -0.5]),
    }
    m = summarize([EMOTION, SENTIMENT], per_task, "dev", 8)
    assert (m["split"], m["n"], m["primary_task"]) == ("dev", 8, "emotion")
    assert m["macro_f1"] == pytest.approx(MACRO_F1)
    assert "per_class" not in m and "type" not in m
    assert metric_value(m, "macro_f1") == pytest.approx(MACRO_F1)
    assert metric_value(m, "sentiment.mae") == pytest.approx(0.5)
    assert metric_value(m, "sentiment.binary_accuracy") == 1.0
    assert metric_value(m, "emotion.per_class.hap.f1") == pytest.approx(0.8)
    with pytest.raises(AffectFusionError, match=r"no metric 'rmse'.*sentiment\.rmse"):
        metric_value(m, "rmse")
    with pytest.raises(AffectFusionError, match=r"no metric 'arousal\.ccc'"):
        metric_value(m, "arousal.ccc")
    with pytest.raises(AffectFusionError):
        metric_value(m, "emotion.per_class")  # a dict, not a scalar
    json.dumps(m, allow_nan=False)


def test_directions_and_default_monitor():
    assert default_monitor(EMOTION) == "macro_f1" and default_monitor(SENTIMENT) == "rmse"
    assert metric_mode("sentiment.rmse") == "min" and metric_mode("binary_f1") == "max"
    with pytest.raises(AffectFusionError, match=r"early_stopping\.mode"):
        metric_mode("perplexity")
    history = [
        {"epoch": 1, "val_loss": 0.9, "val": {"rmse": 1.5}},
        {"epoch": 2, "val_loss": 0.7, "val": {"rmse": 1.2}},
        {"epoch": 3, "val_loss": 0.8, "val": {"rmse": 1.2}},
    ]
    assert best_epoch(history, "rmse") == (2, 1.2)  # ties go to the earliest epoch
    assert best_epoch(history, "rmse", mode="max") == (1, 1.5)
    assert best_epoch(history, "loss") == (2, 0.7)


def test_atomic_writers_roundtrip_and_leave_no_temp_files(tmp_path: Path):
    write_json(
        tmp_path / "a" / "m.json",
        {"x": np.float32(0.5), "y": np.int64(3), "z": float("nan"), "v": np.arange(2)},
    )
    assert read_json(tmp_path / "a" / "m.json") == {"x": 0.5, "y": 3, "z": None, "v": [0, 1]}
    write_text(tmp_path / "a" / "r.md", "hello\n")
    write_csv(pd.DataFrame({"id": ["s1", "s2"], "p": [0.1, 0.2]}), tmp_path / "a" / "p.csv")
    assert pd.read_csv(tmp_path / "a" / "p.csv")["id"].tolist() == ["s1", "s2"]
    for i in range(3):
        append_jsonl(tmp_path / "a" / "h.jsonl", {"epoch": i + 1})
    assert [r["epoch"] for r in read_jsonl(tmp_path / "a" / "h.jsonl")] == [1, 2, 3]
    # A failed write keeps the old file and removes its temp file.
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a" / "r.md") as f:
        f.write("half")
        raise RuntimeError("crash")
    assert (tmp_path / "a" / "r.md").read_text() == "hello\n"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["h.jsonl", "m.json", "p.csv", "r.md"]


def test_read_jsonl_drops_torn_last_line_only(tmp_path: Path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(AffectFusionError, match="line 2"):
        read_jsonl(path)
    with pytest.raises(AffectFusionError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_plots_write_png_files(tmp_path: Path):
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val": {"macro_f1": 0.2 * e}} for e in (1, 2, 3)
    ]
    classes = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise", "contempt"]
    cm = np.random.default_rng(0).integers(0, 30, size=(8, 8))
    cm[7] = 0  # a class with no samples must not divide by zero
    df = pd.DataFrame({"run": ["concat", "attention"], "accuracy": [0.6, 0.65], "rmse": [np.nan, 1.1]})
    paths = [
        curves_drawing(tmp_path / "curves", history, "macro_f1")(),
        curves_drawing(tmp_path / "loss_only", history, None)(),
        plot_confusion_matrix(cm, classes, tmp_path / "cm.png", "confusion"),
        plot_comparison(df, ["accuracy", "rmse", "ccc"], tmp_path / "cmp.png", "comparison"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 1000
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png"))
    assert written == ["cm.png", "cmp.png", "curves/plots/training_curves.png", "loss_only/plots/training_curves.png"]
    with pytest.raises(AffectFusionError, match="nothing to plot"):
        plot_comparison(df, ["ccc"], tmp_path / "none.png", "x")


def _make_run(
    folder: Path,
    task: TaskConfig,
    fusion: str,
    n_params: int,
    history_values: list[float],
    evals: dict[str, dict],
) -> Path:
    cfg = RunConfig(name=folder.name, data={"adapter": "synthetic"}, tasks=[task], model={"fusion": {"name": fusion}})
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    meta = {
        "modalities": {
            "audio": {"name": "audio", "dim": 88, "sequence": False},
            "text": {"name": "text", "dim": 768, "sequence": True},
        },
        "n_parameters": n_params,
        "fusion": fusion,
        "tasks": [task.name],
    }
    write_json(folder / "meta.json", meta)
    monitor = default_monitor(task)
    for e, v in enumerate(history_values, start=1):
        append_jsonl(
            folder / "history.jsonl",
            {
                "epoch": e,
                "lr": 1e-3,
                "train_loss": 1.0 / e,
                "val_loss": 1.1 / e,
                "seconds": float(e),
                "val": {monitor: v},
            },
        )
    for split, metrics in evals.items():
        write_json(folder / "eval" / split / "metrics.json", metrics)
    return folder


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    emotion_dev = summarize([EMOTION], {"emotion": task_metrics(EMOTION, Y_TRUE, Y_PRED)}, "dev", 6)
    emotion_test = summarize([EMOTION], {"emotion": task_metrics(EMOTION, Y_TRUE, Y_TRUE)}, "test", 6)
    sentiment_dev = summarize(
        [SENTIMENT],
        {"sentiment": task_metrics(SENTIMENT, [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0, 6.0])},
        "dev",
        5,
    )
    a = _make_run(
        tmp_path / "runs" / "concat",
        EMOTION,
        "concat",
        1000,
        [0.3, 0.5, 0.4],
        {"dev": emotion_dev, "test": emotion_test},
    )
    b = _make_run(
        tmp_path / "runs" / "attention",
        SENTIMENT,
        "attention",
        2500,
        [1.4, 1.1, 1.2, 1.3],
        {"dev": sentiment_dev},
    )
    return a, b


def test_compare_runs_table_and_files(two_runs: tuple[Path, Path], tmp_path: Path):
    a, b = two_runs
    out = tmp_path / "cmp"
    df = compare_runs([a, b], out)
    assert df["run"].tolist() == ["concat", "attention"]
    assert df["fusion"].tolist() == ["concat", "attention"]
    assert df["split"].tolist() == ["test", "dev"]  # test preferred where it exists
    assert df["n_parameters"].tolist() == [1000, 2500]
    assert df["best_epoch"].tolist() == [2, 2]  # max macro_f1 for a, min rmse for b
    assert df["seconds_per_epoch"].tolist() == pytest.approx([2.0, 2.5])
    assert df.loc[0, "accuracy"] == 1.0 and math.isnan(df.loc[0, "rmse"])
    assert df.loc[1, "ccc"] == pytest.approx(0.8) and math.isnan(df.loc[1, "macro_f1"])
    assert df.loc[1, "binary_accuracy"] == 1.0
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "comparison.md", "comparison.png"}
    csv = pd.read_csv(out / "comparison.csv")
    assert csv["n_parameters"].tolist() == [1000, 2500]
    md = (out / "comparison.md").read_text()
    assert "differs between runs" in md and "| concat" in md and "0.8000" in md
    assert (out / "comparison.png").read_bytes()[:8] == PNG_MAGIC

    dev = compare_runs([a, b], out, split="dev")
    assert dev["split"].tolist() == ["dev", "dev"]
    assert dev.loc[0, "macro_f1"] == pytest.approx(MACRO_F1)
    text = format_table(dev, ["run", "split", "macro_f1", "rmse"])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # padded, aligned
    assert f"{MACRO_F1:.4f}" in lines[2] and "n/a" in lines[2]


def test_compare_runs_disambiguates_clashing_names_and_reports_bad_input(two_runs: tuple[Path, Path], tmp_path: Path):
    a, _ = two_runs
    other = _make_run(
        tmp_path / "other" / "concat",
        EMOTION,
        "gated",
        10,
        [0.1],
        {"dev": read_json(a / "eval" / "dev" / "metrics.json")},
    )
    df = compare_runs([a, other], tmp_path / "cmp")
    assert df["run"].tolist() == ["runs/concat", "other/concat"]
    assert df["split"].tolist() == ["test", "dev"]

    not_run = tmp_path / "empty"
    not_run.mkdir()
    with pytest.raises(AffectFusionError, match=r"empty is not a run directory"):
        compare_runs([a, not_run], tmp_path / "cmp")
    with pytest.raises(AffectFusionError, match="none of the runs has evaluation metrics"):
        compare_runs([a], tmp_path / "cmp", split="validation")


def test_run_report_contains_metrics_and_plots(two_runs: tuple[Path, Path]):
    a, _ = two_runs
    written = plot_run(a)
    assert {p.name for p in written} == {
        "training_curves.png",
        "confusion_dev_emotion.png",
        "confusion_test_emotion.png",
    }
    text = write_run_report(a).read_text()
    assert "# Run report: concat" in text
    assert "**Fusion:** concat" in text and "1,000" in text
    assert "| audio" in text and "768" in text
    assert "**Best epoch:** 2 (validation macro_f1 = 0.5000, max)" in text
    assert "### Split `dev`" in text and "### Split `test`" in text
    assert f"{MACRO_F1:.4f}" in text and "0.6667" in text  # dev macro F1, accuracy
    assert "| hap" in text and "0.8000" in text  # per-class F1
    assert "![Training curves](plots/training_curves.png)" in text
    assert "(plots/confusion_dev_emotion.png)" in text


def test_run_report_works_without_history_or_eval(tmp_path: Path):
    run = tmp_path / "fresh"
    run.mkdir()
    cfg = RunConfig(name="fresh", data={"adapter": "synthetic"}, tasks=[SENTIMENT])
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    text = write_run_report(run).read_text()
    assert "# Run report: fresh" in text
    assert "No evaluation results yet" in text and "none yet" in text
    assert plot_run(run) == []
