"""95 % bootstrap intervals of a run's headline metrics, read back from its ``predictions.csv``.

A comparison of runs on a few hundred test samples is only as good as its sampling error: the demo's
macro F1 of 0.67 on 300 samples is really 0.64-0.70. The intervals resample the saved predictions
(percentile bootstrap, fixed seed), so ``compare`` can show them without re-running a model. The
resampled scores are computed for all resamples at once from per-resample confusion counts (what
scikit-learn's ``accuracy_score`` / ``f1_score(average="macro")`` compute, checked against them in
the tests), since a loop over scikit-learn calls costs seconds per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_RESAMPLES = 1000
LEVEL = 0.95
# The headline metrics that get an interval, per task type (others are in metrics.json without one).
INTERVAL_METRICS = {"classification": ("accuracy", "macro_f1"), "regression": ("mae", "pearson_r")}


def _classification(y: np.ndarray, p: np.ndarray, k: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    yt, yp = y[idx], p[idx]  # [R, n]
    accuracy = (yt == yp).mean(axis=1)
    offsets = np.arange(len(idx))[:, None] * k
    tp = np.bincount((offsets + yt)[yt == yp], minlength=len(idx) * k).reshape(len(idx), k)
    true_n = np.bincount((offsets + yt).ravel(), minlength=len(idx) * k).reshape(len(idx), k)
    pred_n = np.bincount((offsets + yp).ravel(), minlength=len(idx) * k).reshape(len(idx), k)
    # Macro F1 over the classes that occur in the resample's truth or predictions (sklearn's default labels).
    occurs = (true_n + pred_n) > 0
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros(tp.shape), where=occurs)
    macro_f1 = (f1 * occurs).sum(axis=1) / np.maximum(occurs.sum(axis=1), 1)
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def _regression(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    yt, yp = y[idx], p[idx]
    mae = np.abs(yt - yp).mean(axis=1)
    dt, dp = yt - yt.mean(axis=1, keepdims=True), yp - yp.mean(axis=1, keepdims=True)
    denom = np.sqrt((dt**2).sum(axis=1) * (dp**2).sum(axis=1))
    r = np.divide((dt * dp).sum(axis=1), denom, out=np.full(len(idx), np.nan), where=denom > 0)
    return {"mae": mae, "pearson_r": r}


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    task_type: str,
    n_classes: int = 0,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Metric -> (low, high) percentile interval; classes as indices 0..n_classes-1 for classification."""
    n = len(y_true)
    if n < 2 or task_type not in INTERVAL_METRICS:
        return {}
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    if task_type == "classification":
        draws = _classification(np.asarray(y_true, int), np.asarray(y_pred, int), n_classes, idx)
    else:
        draws = _regression(np.asarray(y_true, float), np.asarray(y_pred, float), idx)
    tail = 100 * (1 - LEVEL) / 2
    out = {}
    for metric, values in draws.items():
        finite = values[np.isfinite(values)]
        if finite.size:
            out[metric] = (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail)))
    return out


def run_intervals(predictions: Path, task: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Intervals for one task of a saved ``predictions.csv`` (``<task>_true`` / ``<task>_pred``); empty when
    the file or its columns are missing or the task type has no headline interval (multilabel)."""
    name, kind = str(task.get("name")), str(task.get("type"))
    if kind not in INTERVAL_METRICS or not predictions.is_file():
        return {}
    df = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    if f"{name}_true" not in df.columns or f"{name}_pred" not in df.columns:
        return {}
    df = df[df[f"{name}_true"] != ""]
    if kind == "classification":
        index = {c: i for i, c in enumerate(task.get("classes") or [])}
        truth, pred = df[f"{name}_true"].map(index), df[f"{name}_pred"].map(index)
        if truth.isna().any() or pred.isna().any():
            return {}
        return bootstrap_intervals(truth.to_numpy(int), pred.to_numpy(int), kind, len(index))
    truth, pred = pd.to_numeric(df[f"{name}_true"], errors="coerce"), pd.to_numeric(df[f"{name}_pred"], errors="coerce")
    keep = truth.notna() & pred.notna()
    return bootstrap_intervals(truth[keep].to_numpy(), pred[keep].to_numpy(), kind)
