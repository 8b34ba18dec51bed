"""Seed-to-seed spread and paired significance tests between groups of runs.

A group is one configuration trained with several seeds (see
:func:`affectfusion.analysis.seeds.group_by_variant`). :func:`aggregate_seeds` reports, per group,
the mean and sample standard deviation (ddof = 1) over seeds of every primary-task metric in each
run's ``eval/<split>/metrics.json``, and for every pair of groups A, B and every tested metric
(:data:`TESTED_METRICS`) the following, computed from the runs' ``predictions.csv``:

1. Seed pairs: A's and B's runs are each sorted by ``train.seed`` and paired in that order, so
   seed k of A meets seed k of B whenever both groups used the same seeds.
2. Samples: only ids that are labelled in every paired run's predictions are kept, in one fixed
   order (the first run's), so every model is scored on exactly the same samples.
3. Statistic: the mean over seed pairs of metric(A_k) - metric(B_k) on those samples.
4. Paired bootstrap: ``n_boot`` times, draw the samples with replacement and recompute the
   statistic. One draw is shared by every seed pair and by A and B, which keeps the pairing. The
   interval is the percentile interval of these replicates. The p-value is
   2 * min(share <= 0, share >= 0) with +1 smoothing, capped at 1, so p < 1 - ci when the interval
   excludes 0.
5. Permutation test: ``n_perm`` times, swap A's and B's predictions for each sample with
   probability 1/2. The same swap applies to every seed pair. Then recompute the statistic. The
   two-sided p-value is ``scipy.stats.permutation_test``'s, with +1 smoothing for random
   resampling.

Seeds stay fixed in both tests: the intervals measure uncertainty over test samples for these
trained models. The std column measures the spread caused by training randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import f1_score, mean_absolute_error, root_mean_squared_error

from affectfusion.errors import AffectFusionError

MetricFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


"""``metric_fn(y_true, y_pred)``: two ``[R, n]`` arrays (a 1-D array counts as R = 1) -> ``[R]``, one score per row."""


# Rows x samples scored per metric call. Bounds memory when thousands of resamples are scored at once.
_BATCH_ELEMENTS = 1_000_000


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Accuracy of each row of class-index arrays. This is accuracy_score's definition (the mean
    of exact matches), computed for every row in one call."""
    y_true, y_pred = np.atleast_2d(y_true, y_pred)
    return np.mean(y_true == y_pred, axis=-1)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Macro F1 of each row, as ``f1_score(average="macro", zero_division=0)`` gives it: the mean
    over the classes present in that row's truth or predictions.

    All rows go into one ``f1_score`` call over a stacked label space (row r, class c -> r*K + c).
    Calling it once per row would spend about 1 ms per call on input validation, which is too slow
    for thousands of resamples.
    """
    y_true, y_pred = (np.asarray(v, dtype=np.int64) for v in np.atleast_2d(y_true, y_pred))
    rows, k = y_true.shape[0], int(max(y_true.max(), y_pred.max())) + 1
    offset = (np.arange(rows) * k)[:, None]
    stacked_true, stacked_pred = (y_true + offset).ravel(), (y_pred + offset).ravel()
    labels = np.union1d(stacked_true, stacked_pred)  # per row: the classes sklearn would average over
    f1 = f1_score(stacked_true, stacked_pred, labels=labels, average=None, zero_division=0)
    row = labels // k
    return np.bincount(row, weights=f1, minlength=rows) / np.bincount(row, minlength=rows)


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean absolute error of each row (scikit-learn, one output per row)."""
    y_true, y_pred = np.atleast_2d(y_true, y_pred)
    return mean_absolute_error(y_true.T, y_pred.T, multioutput="raw_values")


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Root mean squared error of each row (scikit-learn, one output per row)."""
    y_true, y_pred = np.atleast_2d(y_true, y_pred)
    return root_mean_squared_error(y_true.T, y_pred.T, multioutput="raw_values")


METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "macro_f1": macro_f1, "mae": mae, "rmse": rmse}


# Metrics tested between groups, per task type. The trainer's default monitor comes first.
TESTED_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("macro_f1", "accuracy"),
    "multilabel": ("macro_f1", "micro_f1"),  # label sets as bitmasks: analysis.multilabel_bits
    "regression": ("rmse", "mae"),
}


# -- paired tests on aligned arrays ---------------------------------------------------------------
def _as_paired(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth ``[n]`` and predictions ``[k, n]`` (k seed pairs). A 1-D prediction is one seed."""
    y, a, b = np.asarray(y_true), np.atleast_2d(pred_a), np.atleast_2d(pred_b)
    if y.ndim != 1 or a.shape != b.shape or a.shape[1] != y.shape[0]:
        raise ValueError(f"shapes do not pair up: y_true {y.shape}, pred_a {a.shape}, pred_b {b.shape}")
    if y.shape[0] < 2:
        raise AffectFusionError(f"a paired test needs at least 2 common samples, got {y.shape[0]}")
    return y, a, b


def _statistic(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, metric_fn: MetricFn, idx: np.ndarray, keep_a: np.ndarray | bool
) -> np.ndarray:
    """Mean over seed pairs of metric(a) - metric(b), one value per row of ``idx`` (``[R, n]`` sample
    positions). Where ``keep_a`` is False, a and b swap predictions for that sample."""
    k, (r, n) = a.shape[0], idx.shape
    a_rows, b_rows = a[:, idx], b[:, idx]  # [k, R, n]
    swapped_a = np.where(keep_a, a_rows, b_rows).reshape(k * r, n)
    swapped_b = np.where(keep_a, b_rows, a_rows).reshape(k * r, n)
    y_rows = np.broadcast_to(y[idx], (k, r, n)).reshape(k * r, n)
    return (metric_fn(y_rows, swapped_a) - metric_fn(y_rows, swapped_b)).reshape(k, r).mean(axis=0)


def _batch(k: int, n: int) -> int:
    """Resamples per scipy batch, so that one metric call sees at most ``_BATCH_ELEMENTS`` values."""
    return max(1, _BATCH_ELEMENTS // (k * n))


def paired_bootstrap(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric_fn: MetricFn,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap over samples of metric(a) - metric(b), averaged over seed pairs.

    ``pred_a``/``pred_b`` are ``[n]`` or ``[k, n]`` (k seed pairs), aligned sample by sample with
    ``y_true`` (see :func:`paired_samples`). Returns the observed difference ``diff``, the
    percentile interval ``ci_low``..``ci_high`` and a two-sided ``p_value`` read from the bootstrap
    distribution (step 4 in the module docstring).
    """
    y, a, b = _as_paired(y_true, pred_a, pred_b)
    n, k = y.shape[0], a.shape[0]

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        out = _statistic(y, a, b, metric_fn, np.atleast_2d(idx), True)
        return out if np.ndim(idx) > 1 else out[0]

    res = stats.bootstrap(
        (np.arange(n),),
        statistic,
        n_resamples=n_boot,
        vectorized=True,
        batch=_batch(k, n),
        method="percentile",
        confidence_level=ci,
        rng=seed,
    )
    dist = res.bootstrap_distribution
    tail = min(int((dist <= 0).sum()), int((dist >= 0).sum()))
    return {
        "diff": float(statistic(np.arange(n))),
        "ci_low": float(res.confidence_interval.low),
        "ci_high": float(res.confidence_interval.high),
        "ci_level": ci,
        "p_value": min(1.0, 2 * (tail + 1) / (n_boot + 1)),
        "n_samples": n,
        "n_seeds": k,
        "n_boot": n_boot,
    }


def permutation_test(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric_fn: MetricFn,
    n_perm: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired swap test of "a and b are exchangeable on every sample": each resample swaps a's and
    b's predictions on each sample with probability 1/2 (the same swaps for every seed pair).

    Inputs as for :func:`paired_bootstrap`. With 2**n <= ``n_perm`` scipy enumerates every swap
    pattern exactly.
    """
    y, a, b = _as_paired(y_true, pred_a, pred_b)
    n, k = y.shape[0], a.shape[0]
    positions = np.arange(n)

    def statistic(from_a: np.ndarray, from_b: np.ndarray, axis: int = -1) -> np.ndarray:
        # scipy swaps the paired index arrays; an index >= n in the first means "swapped here".
        keep_a = np.atleast_2d(from_a) < n
        out = _statistic(y, a, b, metric_fn, np.broadcast_to(positions, keep_a.shape), keep_a[None])
        return out if np.ndim(from_a) > 1 else out[0]

    res = stats.permutation_test(
        (positions, positions + n),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_perm,
        batch=_batch(k, n),
        rng=seed,
    )
    return {"diff": float(res.statistic), "p_value": float(res.pvalue), "n_samples": n, "n_seeds": k, "n_perm": n_perm}


def signed(x: float, digits: int = 3) -> str:
    """``+0.031`` / ``−0.004`` with a typographic minus, as the reports print differences."""
    return "n/a" if math.isnan(x) else f"{x:+.{digits}f}".replace("-", "\N{MINUS SIGN}")


def fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"= {p:.2g}")


def mean_std(mean: float, std: float) -> str:
    """``0.612 ± 0.021``; the std is left out with a single seed (it is undefined)."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def describe_difference(row: Mapping[Hashable, Any] | pd.Series) -> str:
    """One pairwise result in words, e.g. "gated − concat macro_f1 = +0.031 [95% CI −0.004, +0.065],
    p = 0.09 (paired bootstrap over 300 test samples × 3 seeds)"."""
    verdict = "excludes" if row["ci_low"] > 0 or row["ci_high"] < 0 else "includes"
    return (
        f"{row['a']} \N{MINUS SIGN} {row['b']} {row['metric']} = {signed(row['diff'])} "
        f"[{row['ci_level']:.0%} CI {signed(row['ci_low'])}, {signed(row['ci_high'])}], "
        f"p {fmt_p(row['p_bootstrap'])} (paired bootstrap over {row['n_samples']} {row['split']} samples "
        f"× {row['n_seed_pairs']} seed{'s' if row['n_seed_pairs'] != 1 else ''}); "
        f"permutation p {fmt_p(row['p_permutation'])}. The interval {verdict} 0; {row['better']} "
        f"{row['metric']} is better."
    )
