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

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import f1_score, mean_absolute_error, root_mean_squared_error

from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import SPLIT_PREFERENCE
from affectfusion.evaluation.metrics import METRIC_DIRECTION, SCALAR_ORDER
from affectfusion.evaluation.plots import save_figure
from affectfusion.evaluation.report import markdown_table
from affectfusion.io import write_csv, write_text
from affectfusion.rundir import RunFolder, RunPaths, read_run_folder

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


# -- predictions files -----------------------------------------------------------------------------
def _read_predictions(path: Path, task: str, classes: list[str] | None) -> pd.DataFrame:
    """Labelled rows of one predictions.csv as columns ``true``/``pred`` indexed by id; class names
    become class indices."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise AffectFusionError(
            f"no predictions at {path}; score the run on that split first (affectfusion test RUN --split SPLIT)"
        ) from None
    cols = {"id": "id", f"{task}_true": "true", f"{task}_pred": "pred"}
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AffectFusionError(f"{path} lacks column(s) {', '.join(missing)}")
    df = df[list(cols)].rename(columns=cols)
    if df["id"].duplicated().any():
        raise AffectFusionError(f"{path} repeats sample id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    if classes is None:
        df[["true", "pred"]] = df[["true", "pred"]].apply(pd.to_numeric, errors="coerce")
        df = df[df["true"].notna()]
        if not np.isfinite(df["pred"]).all():
            raise AffectFusionError(f"{path}: some {task} predictions are not finite numbers, so they cannot be tested")
        return df.set_index("id")
    df = df[df["true"] != ""]
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df["true"]).union(df["pred"]) - set(index))
    if unknown:
        raise AffectFusionError(f"{path}: {task} label(s) {', '.join(map(repr, unknown))} not in classes {classes}")
    return df.assign(true=df["true"].map(index), pred=df["pred"].map(index)).set_index("id")


def paired_samples(
    files: list[Path], task: str, classes: list[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align several predictions.csv files sample by sample.

    Returns the ids labelled in every file (in the first file's order), the truth ``[n]`` and the
    predictions ``[len(files), n]``. Class names become indices into ``classes``, or values are
    read as numbers when ``classes`` is None (regression). It is an error if no id is shared or if
    the files disagree on a sample's truth, because then they were scored on different data.
    """
    frames = [_read_predictions(Path(f), task, classes) for f in files]
    common = frames[0].index
    for frame in frames[1:]:
        common = common[common.isin(frame.index)]
    if common.empty:
        raise AffectFusionError(f"no labelled sample ids in common between {', '.join(map(str, files))}")
    truth = frames[0].loc[common, "true"].to_numpy()
    for f, frame in zip(files[1:], frames[1:], strict=True):
        other = frame.loc[common, "true"].to_numpy()
        same = np.array_equal(truth, other) if classes is not None else np.allclose(truth, other, rtol=1e-6)
        if not same:
            raise AffectFusionError(f"{files[0]} and {f} disagree on the {task} truth of shared ids: different data?")
    preds = np.stack([frame.loc[common, "pred"].to_numpy() for frame in frames])
    return list(common), truth, preds


# -- seed aggregation ------------------------------------------------------------------------------
def _seed(run: RunFolder) -> int:
    return int((run.config.get("train") or {}).get("seed", 0))


def _common_split(runs: list[RunFolder], split: str | None) -> str:
    """The requested split, else the first of test, test_small, dev (else any) that every run has."""
    if split is not None:
        lacking = [str(r.path) for r in runs if split not in r.evals]
        if lacking:
            raise AffectFusionError(f"no eval/{split}/metrics.json in {', '.join(lacking)}")
        return split
    common = set.intersection(*(set(r.evals) for r in runs))
    for name in (*SPLIT_PREFERENCE, *sorted(common)):
        if name in common:
            return name
    raise AffectFusionError("the runs share no evaluated split (eval/<split>/metrics.json)")


def _primary_task(runs: list[RunFolder], split: str) -> tuple[str, str, list[str] | None]:
    """(name, type, classes) of the primary task, which every run must share."""
    found = set()
    for r in runs:
        name = r.evals[split].get("primary_task")
        tm = (r.evals[split].get("tasks") or {}).get(name) or {}
        found.add((name, tm.get("type"), tuple(tm.get("classes") or ()) or None))
    if len(found) != 1:
        raise AffectFusionError(f"the runs differ in their primary task: {sorted(map(str, found))}")
    name, kind, classes = found.pop()
    return name, kind, list(classes) if classes else None


def _summary(groups: dict[str, list[RunFolder]], split: str) -> tuple[pd.DataFrame, list[str]]:
    present = {k for runs in groups.values() for r in runs for k in r.evals[split]}
    metrics = [m for m in SCALAR_ORDER if m in present]
    rows = []
    for label, runs in groups.items():
        values = pd.DataFrame([[r.evals[split].get(m) for m in metrics] for r in runs], columns=metrics, dtype=float)
        row: dict[str, Any] = {
            "group": label,
            "fusion": runs[0].fusion,
            "split": split,
            "n_seeds": len(runs),
            "seeds": ",".join(str(_seed(r)) for r in runs),
            "n": runs[0].evals[split].get("n"),
        }
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = values[m].mean(), values[m].std(ddof=1)
        rows.append(row)
    return pd.DataFrame(rows), metrics


def _pairwise(
    groups: dict[str, list[RunFolder]],
    summary: pd.DataFrame,
    split: str,
    task: tuple[str, str, list[str] | None],
    metrics: list[str],
    n_boot: int,
    n_perm: int,
    seed: int,
    ci: float,
) -> pd.DataFrame:
    name, kind, classes = task
    tested = [m for m in TESTED_METRICS.get(kind, ()) if m in metrics]
    means = summary.set_index("group")
    rows = []
    for label_a, label_b in itertools.combinations(groups, 2):
        pairs = list(zip(groups[label_a], groups[label_b], strict=False))  # in seed order, the shorter group sets k
        runs = [ra for ra, _ in pairs] + [rb for _, rb in pairs]
        _, y, preds = paired_samples([RunPaths(r.path).predictions(split) for r in runs], name, classes)
        pred_a, pred_b = preds[: len(pairs)], preds[len(pairs) :]
        for m in tested:
            boot = paired_bootstrap(y, pred_a, pred_b, METRICS[m], n_boot, seed, ci)
            perm = permutation_test(y, pred_a, pred_b, METRICS[m], n_perm, seed)
            mean_a, mean_b = means.at[label_a, f"{m}_mean"], means.at[label_b, f"{m}_mean"]
            rows.append(
                {
                    "a": label_a,
                    "b": label_b,
                    "metric": m,
                    "better": "higher" if METRIC_DIRECTION[m] == "max" else "lower",
                    "split": split,
                    "n_samples": boot["n_samples"],
                    "n_seed_pairs": len(pairs),
                    "seed_pairs": ",".join(f"{_seed(ra)}:{_seed(rb)}" for ra, rb in pairs),
                    "mean_a": mean_a,
                    "mean_b": mean_b,
                    "diff_of_means": mean_a - mean_b,
                    "diff": boot["diff"],
                    "ci_low": boot["ci_low"],
                    "ci_high": boot["ci_high"],
                    "ci_level": ci,
                    "p_bootstrap": boot["p_value"],
                    "p_permutation": perm["p_value"],
                }
            )
    columns = ["a", "b", "metric", "better", "split", "n_samples", "n_seed_pairs", "seed_pairs", "mean_a", "mean_b"]
    columns += ["diff_of_means", "diff", "ci_low", "ci_high", "ci_level", "p_bootstrap", "p_permutation"]
    return pd.DataFrame(rows, columns=columns)


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


def describe_difference(row: dict[str, Any] | pd.Series) -> str:
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


def _report(summary: pd.DataFrame, pairwise: pd.DataFrame, metrics: list[str], n_boot: int, n_perm: int) -> str:
    split = summary["split"].iloc[0]
    header = ["group", "fusion", "seeds", "n", *metrics]
    rows = [
        [r["group"], r["fusion"], r["seeds"], r["n"], *(mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics)]
        for r in summary.to_dict(orient="records")
    ]
    lines = [
        "# Seed aggregate",
        "",
        f"Split `{split}`. Mean ± sample standard deviation (ddof = 1) over each group's seeds, from "
        "`eval/<split>/metrics.json`.",
        "",
        markdown_table(header, rows, [False, False, False, True] + [True] * len(metrics)),
        "",
        "## Pairwise differences",
        "",
    ]
    if pairwise.empty:
        lines.append("Only one group: nothing to compare.")
    else:
        lines += [f"- {describe_difference(r)}" for r in pairwise.to_dict(orient="records")]
        cols = ["a", "b", "metric", "diff_of_means", "diff", "ci_low", "ci_high", "p_bootstrap", "p_permutation"]
        table = [list(r) for r in pairwise[cols].itertuples(index=False)]
        lines += ["", markdown_table(cols, table, [False] * 3 + [True] * 6)]
    lines += [
        "",
        "## Procedure",
        "",
        "Runs of two groups are paired in seed order (seed k with seed k). Only sample ids labelled in every "
        "paired run's predictions are used. `diff` is the mean over seed pairs of metric(a) − metric(b) on "
        "those samples, while `diff_of_means` compares the table above. "
        f"Paired bootstrap ({n_boot} resamples): the samples are drawn with replacement, with one draw shared "
        "by both groups and all seed pairs; the interval is the percentile interval, and "
        "p = 2·min(share ≤ 0, share ≥ 0). "
        f"Permutation test ({n_perm} resamples): each sample's a and b predictions are swapped with "
        "probability 1/2 (`scipy.stats.permutation_test`, paired). Seeds are held fixed, so the intervals describe "
        "uncertainty over test samples; the ± column describes variation across training seeds.",
        "",
        "![Mean ± std over seeds](seeds.png)",
    ]
    return "\n".join(lines) + "\n"


def _plot(summary: pd.DataFrame, metrics: list[str], path: Path) -> Path:
    """One panel per metric (their scales differ), one bar per group, std as error bars."""
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    groups = summary["group"].astype(str).tolist()
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.0, 0.6 * len(groups) + 1.5) * cols, 3.6 * rows), squeeze=False)
    for ax, m in zip(axes.flat, metrics, strict=False):
        means, stds = summary[f"{m}_mean"].to_numpy(float), np.nan_to_num(summary[f"{m}_std"].to_numpy(float))
        ax.bar(range(len(groups)), means, yerr=stds, capsize=4, color=[f"C{i % 10}" for i in range(len(groups))])
        ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
        ax.set_title(f"{m} ({'higher' if METRIC_DIRECTION.get(m) == 'max' else 'lower'} is better)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(f"Mean ± std over seeds ({summary['split'].iloc[0]})")
    fig.tight_layout()
    return save_figure(fig, path)


def aggregate_seeds(
    groups: dict[str, list[Path]],
    out_dir: Path,
    split: str | None = None,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean ± std over seeds per group, and paired tests for every pair of groups (module docstring).

    ``groups`` maps a label to that group's seed runs (:func:`~affectfusion.analysis.seeds.group_by_variant`).
    ``split`` defaults to the first of test, test_small, dev that every run was scored on. Writes
    seeds_summary.csv, seeds_pairwise.csv, seeds.md and seeds.png into ``out_dir``. Returns
    (summary, pairwise).
    """
    if not groups or not all(groups.values()):
        raise AffectFusionError("no seed groups to aggregate (every group needs at least one run)")
    loaded = {label: sorted((read_run_folder(Path(p)) for p in paths), key=_seed) for label, paths in groups.items()}
    for label, runs in loaded.items():
        if not all(r.has_config for r in runs):
            raise AffectFusionError(
                f"group {label!r}: {', '.join(str(r.path) for r in runs if not r.has_config)} "
                "is not a run directory (no config.yaml)"
            )
    every_run = [r for runs in loaded.values() for r in runs]
    split = _common_split(every_run, split)
    task = _primary_task(every_run, split)
    summary, metrics = _summary(loaded, split)
    if not metrics:
        raise AffectFusionError(f"no metrics to aggregate in eval/{split}/metrics.json")
    pairwise = _pairwise(loaded, summary, split, task, metrics, n_boot, n_perm, seed, ci)
    out_dir = Path(out_dir)
    write_csv(summary, out_dir / "seeds_summary.csv")
    write_csv(pairwise, out_dir / "seeds_pairwise.csv")
    write_text(out_dir / "seeds.md", _report(summary, pairwise, metrics, n_boot, n_perm))
    _plot(summary, metrics, out_dir / "seeds.png")
    return summary, pairwise
