"""Separability analysis: the scores on inputs whose answer is known, and on trained synthetic runs
where the truth is set by the generator (a pure-noise modality, an xor task only fusion can solve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from affectfusion.analysis.separability import (
    FUSED,
    block_embeddings,
    classification_task,
    plot_block_comparison,
    plot_projections,
    project,
    separability_scores,
    subsample,
)
from affectfusion.errors import AffectFusionError
from affectfusion.rundir import read_run
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config

FAST = {"data.options.missing_rate": 0.0, "data.options.n_eval": 150}


def _train(path: Path, overrides: dict) -> Path:
    Trainer(tiny_config({**FAST, **overrides}), path).fit()
    return path


def test_scores_on_separated_and_random_data() -> None:
    X, y = make_blobs(300, n_features=10, centers=3, cluster_std=0.5, random_state=0)
    clear = separability_scores(X, y, seed=0)
    assert clear["knn_accuracy"] > 0.95 and clear["probe_accuracy"] > 0.95 and clear["silhouette"] > 0.5
    noise = separability_scores(np.random.default_rng(0).standard_normal((300, 10)), y, seed=0)
    assert noise["knn_accuracy"] < 0.5 and noise["probe_accuracy"] < 0.5 and abs(noise["silhouette"]) < 0.1
    assert noise["chance"] == pytest.approx(1 / 3, abs=0.01)
    assert separability_scores(X, y, seed=0) == clear, "seeded: the same input gives the same scores"


def test_scores_degenerate_inputs() -> None:
    X = np.random.default_rng(0).standard_normal((6, 4))
    one_class = separability_scores(X, np.zeros(6, dtype=int))
    assert one_class["silhouette"] is one_class["knn_accuracy"] is one_class["probe_accuracy"] is None
    assert "2 classes" in one_class["note"]
    singletons = separability_scores(X[:2], np.array([0, 1]))
    assert singletons["knn_accuracy"] is None and "single sample" in singletons["note"]
    tiny = separability_scores(X, np.array([0, 0, 1, 1, 2, 2]))
    assert tiny["knn_accuracy"] is not None and tiny["probe_accuracy"] is None
    assert "k=3, 2-fold" in tiny["note"] and "70/30" in tiny["note"]
    constant = separability_scores(np.ones((20, 3)), np.repeat([0, 1], 10))
    assert constant["knn_accuracy"] is not None  # finite numbers, no crash on zero variance


def test_subsample_is_stratified_capped_and_seeded() -> None:
    y = np.repeat([0, 1, 2], [600, 300, 100])
    idx = subsample(y, 100, seed=3)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [60, 30, 10]
    np.testing.assert_array_equal(idx, subsample(y, 100, seed=3))
    assert len(subsample(y, 5000, seed=0)) == len(y)


def test_regression_only_run_is_rejected() -> None:
    cfg = tiny_config({"data.options.task": "regression", "tasks": [{"name": "label", "type": "regression"}]})
    with pytest.raises(AffectFusionError, match="no single-label classification task"):
        classification_task(cfg)


def test_pure_noise_modality_is_least_separable(tmp_path: Path) -> None:
    run = _train(
        tmp_path / "noise",
        {
            "data.options.modalities.noise": {"dim": 8, "informativeness": 0.0},
            "data.options.modalities.video.informativeness": 0.6,
            "data.options.noise": 0.5,
            "data.options.n_train": 150,
        },
    )
    blocks = block_embeddings(read_run(run), "test", cap=2000)
    assert set(blocks.embeddings) == {"text", "audio", "video", "noise", FUSED}
    scores = {b: separability_scores(X, blocks.labels[b]) for b, X in blocks.embeddings.items()}
    informative = ["text", "audio", "video"]
    for metric in ("knn_accuracy", "probe_accuracy"):
        assert scores["noise"][metric] < 0.45, (metric, scores["noise"])  # chance is 1/3
        assert scores["noise"][metric] < min(scores[m][metric] for m in informative) - 0.1, metric
    assert scores["noise"]["silhouette"] < min(scores[m]["silhouette"] for m in informative)


def test_fused_block_beats_every_modality_on_xor(tmp_path: Path) -> None:
    """Each modality carries an independent latent; only their xor is the label, so no single
    block separates the classes and the fused one does. XOR is not linearly separable in a
    concatenation, so k-NN (not the linear probe) is the measure here."""
    run = _train(
        tmp_path / "xor",
        {
            "data.options.interaction": "xor",
            "data.options.num_classes": 2,
            "data.options.noise": 0.3,
            "data.options.modalities.video.informativeness": 0.0,
            "model.modalities": ["text", "audio"],
            "model.fusion.name": "concat",
            "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b"]}],
            "data.options.n_train": 200,
            "train.epochs": 4,
        },
    )
    blocks = block_embeddings(read_run(run), "test")
    assert set(blocks.embeddings) == {"text", "audio", FUSED}
    knn = {b: separability_scores(X, blocks.labels[b])["knn_accuracy"] for b, X in blocks.embeddings.items()}
    assert knn["text"] < 0.65 and knn["audio"] < 0.65, knn  # chance is 0.5
    assert knn[FUSED] > max(knn["text"], knn["audio"]) + 0.15, knn


def test_block_embeddings_cap_and_missing_modalities(tmp_path: Path) -> None:
    run = _train(tmp_path / "run", {"data.options.missing_rate": 0.3, "train.epochs": 1})
    blocks = block_embeddings(read_run(run), "test", cap=40, seed=1)
    assert blocks.n_labelled == 150 and blocks.subsampled
    assert len(blocks.ids[FUSED]) == 40
    for m in ("text", "audio", "video"):
        assert 0 < len(blocks.ids[m]) < 40, "a modality block keeps only the samples that have it"
        assert set(blocks.ids[m]) <= set(blocks.ids[FUSED])
        assert np.abs(blocks.embeddings[m]).sum(1).min() > 0, "no zeroed (missing) rows"
    again = block_embeddings(read_run(run), "test", cap=40, seed=1)
    assert again.ids == blocks.ids


def test_projection_figures(tmp_path: Path) -> None:
    X, y = make_blobs(40, n_features=6, centers=3, random_state=0)
    classes = ["neutral", "joy", "anger"]
    coords = plot_projections(X, y, classes, tmp_path / "p.png", "blocks", methods=("pca", "tsne"))
    assert (tmp_path / "p.png").stat().st_size > 0
    assert {m: c.shape for m, c in coords.items()} == {"pca": (40, 2), "tsne": (40, 2)}
    plot_block_comparison(
        {"concat": (X, y), "gated": (X[:20], y[:20])}, classes, tmp_path / "cmp.png", "fused", methods=("pca",)
    )
    assert (tmp_path / "cmp.png").stat().st_size > 0
    with pytest.raises(AffectFusionError, match="unknown projection method"):
        project(X, "lda")


@pytest.mark.slow
def test_umap_projection(tmp_path: Path) -> None:
    X, y = make_blobs(60, n_features=6, centers=2, random_state=0)
    coords = plot_projections(X, y, ["a", "b"], tmp_path / "u.png", "umap", methods=("umap",))
    assert coords["umap"].shape == (60, 2) and np.isfinite(coords["umap"]).all()
