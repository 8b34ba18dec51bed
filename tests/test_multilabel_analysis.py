"""Multi-label runs in ablate and in the seed significance tests (GoEmotions-like data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from affectfusion.analysis.ablation import primary_metrics, run_ablation
from affectfusion.analysis.analyze import analyze_run
from affectfusion.analysis.multilabel_bits import label_set_bits, macro_f1, micro_f1
from affectfusion.analysis.seed_report import aggregate_seeds
from affectfusion.analysis.seeds import group_by_variant
from affectfusion.recipes.fusion.recipe import train_seeds
from affectfusion.rundir import RunPaths
from affectfusion.training.trainer import Trainer
from tests.test_multilabel import CLASSES, multilabel_config, write_multilabel_folder


def test_bitmask_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(7)]
    index = {c: i for i, c in enumerate(classes)}
    y, p = (rng.uniform(size=(3, 40, 7)) < 0.3 for _ in range(2))
    y[0, :, 6] = p[0, :, 6] = False  # a class absent from one row: left out of that row's macro F1

    def bits(rows: np.ndarray) -> np.ndarray:
        return np.array([[label_set_bits(";".join(np.array(classes)[s]), index, "t") for s in row] for row in rows])

    yb, pb = bits(y), bits(p)
    for r in range(3):
        present = np.flatnonzero(y[r].any(0) | p[r].any(0))
        expected_macro = f1_score(y[r], p[r], labels=present, average="macro", zero_division=0)
        assert macro_f1(yb, pb)[r] == pytest.approx(expected_macro)
        assert micro_f1(yb, pb)[r] == pytest.approx(f1_score(y[r], p[r], average="micro", zero_division=0))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("goemo_like")
    write_multilabel_folder(root)
    return root


def test_ablate_mask_on_a_multilabel_run(data: Path, tmp_path: Path) -> None:
    cfg = multilabel_config(data, {"train.epochs": 4})
    assert primary_metrics(cfg.tasks[0]) == ["macro_f1", "micro_f1"]
    result = run_ablation(cfg, tmp_path / "abl", mode="mask")
    table = result.table.set_index("subset")
    assert set(table.index) == {"audio", "text", "audio+text"}
    assert table.loc["audio+text", "macro_f1_mean"] > table.loc["audio", "macro_f1_mean"]


def test_seed_significance_on_multilabel_variants(data: Path, tmp_path: Path) -> None:
    cfg = multilabel_config(
        data, {"train.epochs": 4, "variants": {"fast": {"train.lr": 0.01}, "slow": {"train.lr": 0.0005}}}
    )
    dirs = train_seeds(cfg, tmp_path / "seeds", [1, 2])
    summary, pairwise = aggregate_seeds(group_by_variant(dirs), tmp_path / "agg", n_boot=200, n_perm=200)
    assert set(pairwise["metric"]) == {"macro_f1", "micro_f1"} and len(pairwise) == 2 and len(summary) == 2
    row = pairwise.set_index("metric").loc["micro_f1"]
    assert row["ci_low"] <= row["diff"] <= row["ci_high"] and 0 <= row["p_permutation"] <= 1
    assert "micro_f1" in (tmp_path / "agg" / "seeds.md").read_text()


def test_analyze_a_multilabel_run(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(multilabel_config(data, {"train.epochs": 6}), run).fit()
    summary = analyze_run(run)
    assert summary["task"] == "emotions" and summary["split"] == "test" and summary["n"] == 150
    errors = {e["label"]: e for e in summary["errors"]}
    assert set(errors) == set(CLASSES) and all(e["missed"] <= e["support"] for e in errors.values())
    attribution = summary["attribution_by_label"]
    assert {r["label"] for r in attribution} <= set(CLASSES) and set(attribution[0]) == {"label", "n", "audio", "text"}
    page = Path(summary["report"]).read_text()
    assert "Modality attribution per label" in page and "micro F1" in page and "<h2>Calibration</h2>" not in page
    assert RunPaths(run).multilabel_analysis("test").is_file()
