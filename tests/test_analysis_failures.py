"""Failure analysis and the ``analyze`` command end to end, on tiny trained variant runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from affectfusion.analysis.analyze import analyze_run, analyze_runs, parse_methods
from affectfusion.analysis.failures import confusion_pairs, cross_variant_failures
from affectfusion.cli.analysis import analyze_command
from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training.predict import Predictions
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config

VARIANTS = ("concat", "weighted")


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two variant runs of one config (as ``train`` writes for ``variants``)."""
    root = tmp_path_factory.mktemp("variants")
    for fusion in VARIANTS:
        Trainer(tiny_config({"model.fusion.name": fusion, "train.epochs": 2}), root / fusion).fit()
    return root


def test_confusion_pairs_match_the_matrix() -> None:
    cm = [[5, 2, 0], [4, 1, 1], [0, 3, 9]]
    pairs = confusion_pairs(cm, ["a", "b", "c"])
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [
        ("b", "a", 4),
        ("c", "b", 3),
        ("a", "b", 2),
        ("b", "c", 1),
    ]
    assert pairs[0]["share_of_true"] == pytest.approx(4 / 6)
    assert sum(p["count"] for p in pairs) == np.sum(cm) - np.trace(cm)
    assert len(confusion_pairs(cm, ["a", "b", "c"], top=2)) == 2


def test_cross_variant_overlap_on_known_predictions() -> None:
    task = TaskConfig(name="y", type="classification", classes=["a", "b"])

    def preds(ids: list[str], y: list[int], pred: list[int]) -> Predictions:
        return Predictions(ids, [None] * len(ids), [None] * len(ids), {"y": np.array(y)}, {"y": np.array(pred)})

    summary, frame = cross_variant_failures(
        {
            "v1": preds(["s1", "s2", "s3", "s4"], [0, 1, 1, 0], [1, 1, 0, 0]),
            "v2": preds(["s4", "s3", "s2", "s1", "s9"], [0, 1, 1, 0, 1], [0, 0, 0, 1, 1]),
        },
        task,
    )
    assert summary["n_shared"] == 4 and summary["n_only_in_some"] == 1
    assert summary["all_wrong"]["ids"] == ["s1", "s3"]
    assert summary["some_wrong"]["ids"] == ["s2"]
    assert summary["only_this_variant_wrong"]["v2"]["ids"] == ["s2"]
    assert summary["n_correct_histogram"] == {0: 2, 1: 1, 2: 1}
    assert frame["n_correct"].tolist() == [0, 1, 0, 2]
    assert frame["pred_v2"].tolist() == ["b", "a", "a", "a"]


def test_failure_report_of_one_run(variants: Path) -> None:
    run_dir = variants / "weighted"
    summary = analyze_run(run_dir, methods="pca")
    out = run_dir / "analysis" / "test"
    for name in ("separability.csv", "separability.json", "failures.json", "failures.md", "report.html"):
        assert (out / name).is_file(), name
    assert {p.name for p in out.glob("projections_*.png")} == {f"projections_{b}.png" for b in summary["separability"]}
    report = json.loads((out / "failures.json").read_text())
    assert report["cap"] == 2000 and report["n_labelled"] == 60

    run = read_run(run_dir)
    dataset = load_dataset(run.config, "test", modalities=run.modalities)
    truth = {s.id: run.config.tasks[0].classes[s.targets["label"]] for s in dataset.samples}
    saved = json.loads((run_dir / "eval/test/metrics.json").read_text())["tasks"]["label"]
    cm = np.array(report["confusion_matrix"])
    assert cm.tolist() == saved["confusion_matrix"], "same checkpoint, same data, same confusion matrix"
    assert sum(p["count"] for p in report["confusion_pairs"]) == report["n_wrong"] == cm.sum() - np.trace(cm)
    for p in report["confusion_pairs"]:
        i, j = report["classes"].index(p["true"]), report["classes"].index(p["pred"])
        assert p["count"] == cm[i, j] and p["share_of_true"] == pytest.approx(cm[i, j] / cm[i].sum())

    cases = report["cases"]
    assert 1 <= len(cases) <= 5
    assert [c["confidence"] for c in cases] == sorted((c["confidence"] for c in cases), reverse=True)
    for c in cases:
        assert c["id"] in truth and truth[c["id"]] == c["true"] != c["pred"], "real ids, really wrong"
        weights = c["explanations"]["modality_weights"]
        assert set(weights) == {"text", "audio", "video"}
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(weights[m] == 0 for m in weights if m not in c["present"]), "a missing modality weighs 0"

    gain = report["fusion_gain"]
    acc = {m: a for m, a in gain["unimodal_accuracy"].items() if a is not None}
    assert gain["best_unimodal"] == max(acc, key=acc.__getitem__)
    assert set(gain["fusion_right_best_wrong"]["ids"]) <= set(truth)
    assert sum(c["fusion_helps"] for c in gain["by_class"].values()) == gain["fusion_right_best_wrong"]["count"]
    difficulty = report["class_difficulty"]
    assert difficulty["easiest"][0] == difficulty["ranking"][0]["class"]
    assert "Most confident failure cases" in (out / "failures.md").read_text()


def test_analyze_variant_folder(variants: Path) -> None:
    out = variants / "analysis" / "test"
    result = analyze_runs(sorted(p for p in variants.iterdir() if p.name in VARIANTS), out, methods=["pca", "tsne"])
    for name in (
        "report.html",
        "fused_projections.png",
        "separability.csv",
        "separability.md",
        "failure_overlap.json",
        "failure_overlap.csv",
    ):
        assert (out / name).is_file(), name
    assert [r["variant"] for r in result["ranking"]] and {r["variant"] for r in result["ranking"]} == set(VARIANTS)
    overlap = result["failure_overlap"]
    assert overlap["n_shared"] == 60 and sum(overlap["n_correct_histogram"].values()) == 60
    for fusion in VARIANTS:
        assert (variants / fusion / "analysis/test/report.html").is_file()
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1
    assert not re.search(r'src="(?!data:)', page), "self-contained: no image loaded from a file"
    assert 'href="../../concat/analysis/test/report.html"' in page
    per_run = (variants / "concat/analysis/test/report.html").read_text()
    assert per_run.count('src="data:image/png;base64,') == 4  # text, audio, video, fused


def test_analyze_command(variants: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("analyze")(analyze_command)
    app.command("other")(lambda: None)  # two commands, so typer keeps "analyze" as a subcommand
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", str(variants / "concat"), "--methods", "pca", "--cap", "50"])
    assert result.exit_code == 0, result.output
    assert "fused" in result.output and "probe" in result.output
    assert json.loads((variants / "concat/analysis/test/separability.json").read_text())["subsampled"]
    bad = runner.invoke(app, ["analyze", str(tmp_path), "--methods", "pca"])
    assert isinstance(bad.exception, AffectFusionError) and "not a run directory" in str(bad.exception)


def test_bad_input_is_one_line_error(variants: Path, tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="not a run directory"):
        analyze_run(tmp_path)
    with pytest.raises(AffectFusionError, match="unknown projection method"):
        parse_methods("pca,lda")
    with pytest.raises(AffectFusionError, match="cap"):
        analyze_run(variants / "concat", cap=1)
