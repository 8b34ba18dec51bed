"""Task metrics and the metrics dict every split's evaluation is stored as.

Conventions (fixed here so every run is scored the same way):

* A metric that cannot be computed (no samples, non-finite predictions, no non-zero truth for
  the signed binary metrics) is ``None``, which is ``null`` in JSON and NaN in tables.
* Pearson r of a constant vector (a collapsed model) is 0.0, not undefined: there is no linear
  relation to report, and early stopping and tables can still compare it.
* CCC is Lin's concordance with population (1/n) moments; two identical constant vectors get 1.0.
* Macro F1 averages the classes present in the truth or the predictions (scikit-learn's default),
  so a class absent from a small split does not count as an F1 of 0. Per-class rows and the
  confusion matrix always list every class.
* Signed regression (sentiment in [-3, 3]): binary accuracy/F1 on samples whose truth is non-zero
  (the MOSI/MOSEI convention), positive = value >= 0; F1 is support-weighted over both classes.
* Multilabel: micro F1 pools every (sample, class) decision; macro F1 averages the per-class F1 of
  the classes present in the truth or the predictions (as for single-label); samples F1 averages
  per-sample F1, a sample with no true and no predicted class counting as 1; subset accuracy is
  the share of samples whose predicted label set is exactly right.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.mmsa_metrics import MMSA_SCALARS, mmsa_metrics

CLASSIFICATION_SCALARS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")
MULTILABEL_SCALARS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy")
REGRESSION_SCALARS = ("mae", "rmse", "pearson_r", "ccc")
SIGNED_SCALARS = ("binary_accuracy", "binary_f1", *MMSA_SCALARS)
# Column order in tables (macro_f1 is shared by both kinds of classification).
SCALAR_ORDER = tuple(dict.fromkeys(CLASSIFICATION_SCALARS + MULTILABEL_SCALARS + REGRESSION_SCALARS + SIGNED_SCALARS))
# Decision thresholds tried when tuning a multilabel task on the validation split.
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
_NOT_METRICS = {"type", "n", "split", "primary_task"}
_MISSING = object()


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _pair(y_true: Any, y_pred: Any, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=dtype).ravel()
    p = np.asarray(y_pred, dtype=dtype).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    return t, p


def _per_class(classes: list[str], precision, recall, f1, support) -> dict[str, dict[str, float | int]]:
    """Per-class P/R/F1/support as plain JSON types, keyed by class name."""
    return {
        c: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro/weighted F1, per-class P/R/F1 and the confusion matrix.

    ``y_true``/``y_pred`` are class indices into ``classes``.
    """
    # scikit-learn (~1 s) loads when something is scored: predicting does not need it
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    t, p = _pair(y_true, y_pred, np.int64)
    k = len(classes)
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError(f"{name} has class indices outside 0..{k - 1}")
    labels = list(range(k))
    out: dict[str, Any] = {"type": "classification", "n": int(t.size)}
    if t.size == 0:
        out.update(dict.fromkeys(CLASSIFICATION_SCALARS))
        out.update(per_class={}, classes=list(classes), confusion_matrix=[[0] * k for _ in range(k)])
        return out
    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    with warnings.catch_warnings():
        # sklearn warns when y_pred has classes y_true lacks; the score is still the defined one.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(t, p)
    out.update(
        accuracy=_num(accuracy_score(t, p)),
        balanced_accuracy=_num(balanced),
        macro_f1=_num(f1_score(t, p, average="macro", zero_division=0)),
        weighted_f1=_num(f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        per_class=_per_class(classes, precision, recall, f1, support),
        classes=list(classes),
        confusion_matrix=confusion_matrix(t, p, labels=labels).astype(int).tolist(),
    )
    return out


def _multi_hot_pair(y_true: Any, y_pred: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.ndim != 2 or arr.shape[1] != k:
            raise ValueError(f"{name} must be [n, {k}] multi-hot, got shape {arr.shape}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1")
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has {p.shape}")
    return t.astype(np.int64), p.astype(np.int64)


def _present_macro_f1(t: np.ndarray, p: np.ndarray) -> float | None:
    """Macro F1 over the classes present in the truth or the predictions (None if there are none)."""
    from sklearn.metrics import f1_score  # scikit-learn: only when scoring

    present = np.flatnonzero(t.any(0) | p.any(0))
    if present.size == 0:
        return None
    return _num(f1_score(t, p, labels=present, average="macro", zero_division=0))


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Micro/macro/samples F1, subset accuracy and per-class P/R/F1/support.

    ``y_true``/``y_pred`` are ``[n, K]`` multi-hot (0/1) over ``classes``.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support  # only when scoring

    k = len(classes)
    t, p = _multi_hot_pair(y_true, y_pred, k)
    out: dict[str, Any] = {"type": "multilabel", "n": int(t.shape[0])}
    if t.shape[0] == 0:
        out.update(dict.fromkeys(MULTILABEL_SCALARS))
        out.update(per_class={}, classes=list(classes))
        return out
    precision, recall, f1, support = precision_recall_fscore_support(
        t, p, labels=list(range(k)), average=None, zero_division=0
    )
    out.update(
        micro_f1=_num(f1_score(t, p, average="micro", zero_division=0)),
        macro_f1=_present_macro_f1(t, p),
        samples_f1=_num(f1_score(t, p, average="samples", zero_division=1.0)),
        subset_accuracy=_num(accuracy_score(t, p)),
        per_class=_per_class(classes, precision, recall, f1, support),
        classes=list(classes),
    )
    return out


def tune_thresholds(y_true: np.ndarray, proba: np.ndarray, mode: str, default: float) -> np.ndarray:
    """Per-class decision thresholds from :data:`THRESHOLD_GRID` that maximise macro F1 on
    validation data (never the test split: the tuned thresholds are what the test is scored with).

    ``global``: one threshold for every class, chosen by macro F1. ``per_class``: each class its own
    threshold, chosen by that class's F1 (which maximises their mean); a class with no positive
    sample keeps ``default``. ``none``: ``default`` everywhere. Ties go to the value nearest ``default``.
    """
    from sklearn.metrics import f1_score  # scikit-learn: only when tuning

    k = proba.shape[1]
    t = np.asarray(y_true).astype(np.int64)
    if mode == "none" or t.shape[0] == 0:
        return np.full(k, default)
    grid = np.asarray(THRESHOLD_GRID)
    decisions = [(proba >= g).astype(np.int64) for g in grid]
    if mode == "global":
        macro = [_present_macro_f1(t, p) for p in decisions]
        return np.full(k, _best(grid, np.array([np.nan if m is None else m for m in macro]), default))
    if mode != "per_class":
        raise ValueError(f"unknown threshold tuning mode {mode!r}")
    per_class = np.stack([f1_score(t, p, average=None, zero_division=0) for p in decisions])  # [G, K]
    return np.array([_best(grid, per_class[:, j], default) if t[:, j].any() else default for j in range(k)])


def _best(grid: np.ndarray, scores: np.ndarray, default: float) -> float:
    """The grid value with the highest score, the one nearest ``default`` among ties."""
    if np.isnan(scores).all():
        return default
    ties = grid[scores >= np.nanmax(scores) - 1e-12]
    return float(ties[np.argmin(np.abs(ties - default))])


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r, 0.0 when either side is constant (or fewer than 2 samples)."""
    from scipy.stats import pearsonr  # scipy.stats: only when scoring a regression

    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
    return float(pearsonr(y_true, y_pred).statistic)


def concordance(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's CCC = 2 cov / (var_t + var_p + (mean_t - mean_p)^2), population moments."""
    mt, mp = y_true.mean(), y_pred.mean()
    vt, vp = y_true.var(), y_pred.var()
    cov = ((y_true - mt) * (y_pred - mp)).mean()
    denom = vt + vp + (mt - mp) ** 2
    return 1.0 if denom == 0 else float(2 * cov / denom)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, signed: bool = False) -> dict[str, Any]:
    """MAE, RMSE, Pearson r, CCC; plus binary accuracy/F1 on the sign if ``signed``."""
    from sklearn.metrics import accuracy_score, f1_score  # scikit-learn: only when scoring

    t, p = _pair(y_true, y_pred, np.float64)
    out: dict[str, Any] = {"type": "regression", "n": int(t.size)}
    scalars = REGRESSION_SCALARS + (SIGNED_SCALARS if signed else ())
    if t.size == 0 or not (np.isfinite(t).all() and np.isfinite(p).all()):
        out.update(dict.fromkeys(scalars))
        return out
    err = p - t
    out.update(
        mae=_num(np.abs(err).mean()),
        rmse=_num(np.sqrt((err**2).mean())),
        pearson_r=_num(pearson(t, p)),
        ccc=_num(concordance(t, p)),
    )
    if signed:
        nonzero = t != 0
        if nonzero.any():
            bt, bp = t[nonzero] >= 0, p[nonzero] >= 0
            out["binary_accuracy"] = _num(accuracy_score(bt, bp))
            out["binary_f1"] = _num(f1_score(bt, bp, average="weighted", zero_division=0))
        else:
            out.update(dict.fromkeys(("binary_accuracy", "binary_f1")))
        out.update(mmsa_metrics(t, p))  # MMSA's Acc-2 (has0/non0), F1, Acc-5, Acc-7
    return out


def task_metrics(task: TaskConfig, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Score one task; the caller passes only the labelled samples."""
    if task.type == "classification":
        return classification_metrics(y_true, y_pred, task.classes or [])
    if task.type == "multilabel":
        return multilabel_metrics(y_true, y_pred, task.classes or [])
    return regression_metrics(y_true, y_pred, signed=task.signed)


def _is_scalar(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def summarize(tasks: list[TaskConfig], per_task: dict[str, dict], split: str, n: int) -> dict[str, Any]:
    """The stored metrics dict: the first task's scalars at top level (what monitors and tables
    read by default), every scored task under ``tasks``. Tasks absent from ``per_task`` (no labels
    in this split) are left out."""
    primary = tasks[0].name
    out: dict[str, Any] = {"split": split, "n": int(n), "primary_task": primary}
    out.update({k: v for k, v in per_task.get(primary, {}).items() if k not in _NOT_METRICS and _is_scalar(v)})
    out["tasks"] = {t.name: per_task[t.name] for t in tasks if t.name in per_task}
    return out


def available_metrics(metrics: dict[str, Any]) -> list[str]:
    """Every name :func:`metric_value` accepts for this dict (top-level and ``task.metric``)."""
    names = [k for k, v in metrics.items() if k not in _NOT_METRICS and _is_scalar(v)]
    for task, tm in metrics.get("tasks", {}).items():
        names += [f"{task}.{k}" for k, v in tm.items() if k not in _NOT_METRICS and _is_scalar(v)]
    return names


def _lookup(metrics: dict[str, Any], name: str) -> Any:
    if name in metrics:
        return metrics[name]
    task, _, rest = name.partition(".")
    node: Any = metrics.get("tasks", {}).get(task, _MISSING) if rest else _MISSING
    for part in rest.split(".") if node is not _MISSING else []:
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
    return node


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """A metric by top-level name (``macro_f1``) or dotted path (``emotion.macro_f1``,
    ``emotion.per_class.happy.f1``). A stored ``None`` (not computable) comes back as NaN."""
    value = _lookup(metrics, name)
    if value is _MISSING or name in _NOT_METRICS or not _is_scalar(value):
        raise AffectFusionError(f"no metric {name!r}; available: {', '.join(available_metrics(metrics)) or 'none'}")
    return math.nan if value is None else float(value)
