"""How well the classes separate in each block's embedding: each modality encoder's pooled output and the fused vector.

This is P2's "temporal / contextual / fusion block" separability, for any modalities. Three
complementary numbers, because each alone misleads: the silhouette score (cluster geometry, no
training), k-NN accuracy (local neighbourhoods, any shape) and linear-probe accuracy (is the label
linearly readable, what a linear head sees). Projections (PCA, t-SNE, UMAP) make the same visible.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from affectfusion.config import RunConfig, TaskConfig
from affectfusion.data import MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.plots import save_figure
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun
from affectfusion.training.loading import load_model
from affectfusion.training.predict import Predictions, predict

FUSED = "fused"
PROJECTION_METHODS = ("pca", "tsne", "umap")
METHOD_TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
SCORE_COLUMNS = ("silhouette", "knn_accuracy", "probe_accuracy")
KNN_K = 5
CV_FOLDS = 5
PROBE_TEST_SHARE = 0.3
MIN_PROJECTED = 5  # fewer points make t-SNE/UMAP meaningless (and some solvers fail)
# scikit-learn's OpenMP loops (Barnes-Hut t-SNE, k-NN distances) busy-wait for their threads; on a
# shared 2-core machine (a training run alongside) t-SNE of 2,000 points took 67 s on all cores and
# 13 s on one; on an idle machine one thread gives up at most the second core.
SKLEARN_THREADS = 1


SCORE_TITLES = {"silhouette": "silhouette", "knn_accuracy": "k-NN accuracy", "probe_accuracy": "linear-probe accuracy"}
SEPARABILITY_NOTE = (
    "Silhouette on standardised embeddings (-1..1, higher = tighter, better-separated classes); k-NN accuracy "
    "(k = 5, 5-fold stratified CV); linear-probe accuracy (logistic regression, stratified 70/30 split). "
    "Chance = majority-class share. Modality blocks hold only the samples that have that modality."
)


@dataclass
class Blocks:
    """Embeddings per block with the labels and ids of their rows.

    Labels and ids are per block: a modality block holds only the samples that have that
    modality, the fused block every (subsampled) labelled sample.
    """

    embeddings: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    ids: dict[str, list[str]]
    classes: list[str]
    task: str
    n_labelled: int  # labelled samples in the split, before the cap
    cap: int
    seed: int

    @property
    def subsampled(self) -> bool:
        return self.n_labelled > self.cap


def classification_task(cfg: RunConfig) -> TaskConfig:
    """The primary classification task (the first task if it is one, else the first that is)."""
    for task in cfg.tasks:
        if task.type == "classification":
            return task
    names = ", ".join(f"{t.name} ({t.type})" for t in cfg.tasks)
    raise AffectFusionError(
        f"run {cfg.name!r} has no single-label classification task ({names}); separability and failure "
        "analysis need one class per sample (multi-label and regression runs are not supported yet)"
    )


def presence(dataset: MultimodalDataset) -> dict[str, np.ndarray]:
    """Per modality, which samples have it (embeddings of missing modalities are zeros, not data)."""
    return {m: np.array([m in s.features for s in dataset.samples], dtype=bool) for m in dataset.modalities}


def subsample(y: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``cap`` rows, stratified by ``y`` where every class allows it."""
    index = np.arange(len(y))
    if len(y) <= cap:
        return index
    try:
        keep, _ = train_test_split(index, train_size=cap, stratify=y, random_state=seed)
    except ValueError:  # a class with one sample, or cap below the number of classes
        keep, _ = train_test_split(index, train_size=cap, random_state=seed)
    return np.sort(keep)


def blocks_from_predictions(
    preds: Predictions, present: dict[str, np.ndarray], task: TaskConfig, cap: int = 2000, seed: int = 0
) -> Blocks:
    """Split ``predict(..., keep_embeddings=True)`` output into blocks, capped at ``cap`` labelled samples."""
    if not preds.embeddings:
        raise AffectFusionError("predictions carry no embeddings (call predict with keep_embeddings=True)")
    y = preds.y_true[task.name]
    labelled = np.flatnonzero(y >= 0)
    if labelled.size == 0:
        raise AffectFusionError(f"no sample is labelled for task {task.name!r}")
    chosen = labelled[subsample(y[labelled], cap, seed)]
    ids = np.asarray(preds.ids, dtype=object)
    embeddings, labels, block_ids = {}, {}, {}
    for block, emb in preds.embeddings.items():
        rows = chosen if block == FUSED else chosen[present[block][chosen]]
        embeddings[block] = emb[rows].astype(np.float64)
        labels[block] = y[rows].astype(np.int64)
        block_ids[block] = ids[rows].tolist()
    return Blocks(embeddings, labels, block_ids, list(task.classes or []), task.name, int(labelled.size), cap, seed)


def block_embeddings(
    run: LoadedRun, split: str, root: str | Path | None = None, cap: int = 2000, seed: int = 0
) -> Blocks:
    """Per-block embeddings of a run's best checkpoint on one split (primary classification task)."""
    task = classification_task(run.config)
    dataset = load_dataset(run.config, split, root=root, modalities=run.modalities)
    preds = predict(load_model(run), dataset, run.scalers, keep_embeddings=True)
    return blocks_from_predictions(preds, presence(dataset), task, cap, seed)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def separability_scores(X: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Silhouette (standardised X), k-NN accuracy (stratified CV) and linear-probe accuracy (70/30).

    A score that cannot be computed is None and ``note`` says why. Classes with a single sample
    are left out first: neither a CV fold nor a held-out split can contain them.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    out: dict[str, Any] = {
        "n": len(y),
        "dim": X.shape[1] if X.ndim == 2 else 0,
        "n_classes": 0,
        "chance": None,
        **dict.fromkeys(SCORE_COLUMNS),
        "note": None,
    }
    notes = []
    classes, counts = np.unique(y, return_counts=True)
    if (counts < 2).any():
        keep = np.isin(y, classes[counts >= 2])
        notes.append(f"left out {int((~keep).sum())} sample(s) of classes with a single sample")
        X, y, counts = X[keep], y[keep], counts[counts >= 2]
    out["n_classes"] = len(counts)
    if len(counts) < 2:
        out["note"] = "; ".join([*notes, f"{len(y)} sample(s) of {len(counts)} class(es): need 2 classes"])
        return out
    n = len(y)
    out["chance"] = float(counts.max() / n)  # majority-class share: what a constant guess scores
    with warnings.catch_warnings(), threadpool_limits(SKLEARN_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        if n > len(counts):
            out["silhouette"] = _finite(silhouette_score(StandardScaler().fit_transform(X), y, random_state=seed))
        folds = int(min(CV_FOLDS, counts.min()))
        k = min(KNN_K, n - math.ceil(n / folds))  # a training fold must hold k neighbours
        knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        out["knn_accuracy"] = float(cross_val_score(knn, X, y, cv=cv).mean())
        if folds < CV_FOLDS or k < KNN_K:
            notes.append(f"k-NN with k={k}, {folds}-fold CV (small classes)")
        n_test = math.ceil(PROBE_TEST_SHARE * n)
        if n_test < len(counts) or n - n_test < len(counts):
            notes.append("too few samples for a stratified 70/30 linear probe")
        else:
            X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=PROBE_TEST_SHARE, stratify=y, random_state=seed)
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            out["probe_accuracy"] = float(probe.fit(X_tr, y_tr).score(X_te, y_te))
    out["note"] = "; ".join(notes) or None
    return out


def separability_frame(scores: dict[str, dict[str, Any]], cap: int | None = None) -> pd.DataFrame:
    """One row per block (the CSV and the report table)."""
    df = pd.DataFrame([{"block": block, **s} for block, s in scores.items()])
    if cap is not None:
        df.insert(1, "cap", cap)
    return df


def project(X: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates of standardised ``X`` by PCA, t-SNE (perplexity fitted to n) or UMAP."""
    with threadpool_limits(SKLEARN_THREADS):
        return _project(X, method, seed)


def _project(X: np.ndarray, method: str, seed: int) -> np.ndarray:
    Z = StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    if Z.shape[1] < 2:
        Z = np.hstack([Z, np.zeros((len(Z), 2 - Z.shape[1]))])
    n = len(Z)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(Z)
    if method == "tsne":
        perplexity = float(np.clip((n - 1) / 3, 2.0, 30.0))  # sklearn needs perplexity < n
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z)
    if method == "umap":
        import umap  # numba compiles on first import (~30 s); only pay for it when asked

        reducer = umap.UMAP(n_neighbors=max(2, min(15, n - 1)), random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
            return np.asarray(reducer.fit_transform(Z))
    raise AffectFusionError(f"unknown projection method {method!r}; choose from {', '.join(PROJECTION_METHODS)}")


def _palette(classes: Sequence[str]) -> dict[str, Any]:
    return dict(zip(classes, sns.color_palette("tab10" if len(classes) <= 10 else "husl", len(classes)), strict=True))


def _scatter(ax: plt.Axes, coords: np.ndarray, y: np.ndarray, classes: Sequence[str], palette: dict) -> None:
    names = np.asarray(classes, dtype=object)[y]
    sns.scatterplot(
        x=coords[:, 0],
        y=coords[:, 1],
        hue=names,
        hue_order=list(classes),
        palette=palette,
        s=14,
        alpha=0.8,
        linewidth=0,
        legend=False,
        ax=ax,
    )
    ax.set(xticks=[], yticks=[])


def _legend(fig: plt.Figure, classes: Sequence[str], palette: dict) -> None:
    handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=c) for c in classes]
    fig.legend(handles=handles, title="class", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def plot_projections(
    X: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    path: Path,
    title: str,
    methods: Sequence[str] = PROJECTION_METHODS,
    seed: int = 0,
    advance: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """One panel per method, points coloured by class; returns the coordinates (reusable elsewhere).

    ``advance`` is called after each method (progress bars: t-SNE and UMAP take seconds each).
    """
    coords = {}
    for method in methods:
        coords[method] = project(X, method, seed)
        if advance is not None:
            advance()
    palette = _palette(classes)
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        _scatter(ax, coords[method], y, classes, palette)
        ax.set_title(METHOD_TITLES.get(method, method))
    _legend(fig, classes, palette)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return coords


def plot_block_comparison(
    variants: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    path: Path,
    title: str,
    methods: Sequence[str] = ("pca", "tsne"),
    seed: int = 0,
    coords: dict[str, dict[str, np.ndarray]] | None = None,
) -> Path:
    """One block (normally ``fused``) across variants: a column per variant, a row per method.

    ``variants`` maps a variant name to ``(X, y)``; ``coords[variant][method]`` reuses projections
    already computed for the per-run figures instead of running t-SNE/UMAP again.
    """
    coords = coords or {}
    palette = _palette(classes)
    fig, axes = plt.subplots(
        len(methods), len(variants), figsize=(3.8 * len(variants), 3.8 * len(methods)), squeeze=False
    )
    for col, (variant, (X, y)) in enumerate(variants.items()):
        for row, method in enumerate(methods):
            ax = axes[row, col]
            xy = coords.get(variant, {}).get(method)
            _scatter(ax, project(X, method, seed) if xy is None else xy, y, classes, palette)
            if row == 0:
                ax.set_title(variant)
            if col == 0:
                ax.set_ylabel(METHOD_TITLES.get(method, method))
    _legend(fig, classes, palette)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
