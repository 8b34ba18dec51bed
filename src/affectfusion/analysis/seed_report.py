"""The seed aggregate of ``train --seeds`` and ``compare --seeds-aggregate``.

Mean ± std per group and paired tests between groups (:mod:`affectfusion.analysis.significance`), as
CSV, markdown and a plot.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from affectfusion.analysis.multilabel_bits import METRICS as MULTILABEL_METRICS
from affectfusion.analysis.multilabel_bits import check_classes, label_set_bits
from affectfusion.analysis.significance import (
    METRICS,
    TESTED_METRICS,
    describe_difference,
    mean_std,
    paired_bootstrap,
    permutation_test,
)
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import SPLIT_PREFERENCE
from affectfusion.evaluation.metrics import SCALAR_ORDER
from affectfusion.evaluation.plots import save_figure
from affectfusion.evaluation.report import markdown_table
from affectfusion.evaluation.selection import METRIC_DIRECTION
from affectfusion.io import write_csv, write_text
from affectfusion.rundir import RunFolder, RunPaths, SeedAggregatePaths, read_run_folder


# -- predictions files -----------------------------------------------------------------------------
def _read_predictions(path: Path, task: str, classes: list[str] | None, multilabel: bool = False) -> pd.DataFrame:
    """Labelled rows of one predictions.csv as columns ``true``/``pred`` indexed by id; class names
    become class indices (multi-label sets: bitmasks, see ``multilabel_bits``)."""
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
    if multilabel:
        check_classes(classes)
        bits = {col: [label_set_bits(v, index, str(path)) for v in df[col]] for col in ("true", "pred")}
        return df.assign(**bits).set_index("id")
    unknown = sorted(set(df["true"]).union(df["pred"]) - set(index))
    if unknown:
        raise AffectFusionError(f"{path}: {task} label(s) {', '.join(map(repr, unknown))} not in classes {classes}")
    return df.assign(true=df["true"].map(index), pred=df["pred"].map(index)).set_index("id")


def paired_samples(
    files: list[Path], task: str, classes: list[str] | None = None, multilabel: bool = False
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align several predictions.csv files sample by sample.

    Returns the ids labelled in every file (in the first file's order), the truth ``[n]`` and the
    predictions ``[len(files), n]``. Class names become indices into ``classes``, or values are
    read as numbers when ``classes`` is None (regression). It is an error if no id is shared or if
    the files disagree on a sample's truth, because then they were scored on different data.
    """
    frames = [_read_predictions(Path(f), task, classes, multilabel) for f in files]
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
    if name is None or kind is None:
        raise AffectFusionError(f"eval/{split}/metrics.json of the runs names no primary task (or not its type)")
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
        files = [RunPaths(r.path).predictions(split) for r in runs]
        _, y, preds = paired_samples(files, name, classes, multilabel=kind == "multilabel")
        pred_a, pred_b = preds[: len(pairs)], preds[len(pairs) :]
        for m in tested:
            fn = (MULTILABEL_METRICS if kind == "multilabel" else METRICS)[m]
            boot = paired_bootstrap(y, pred_a, pred_b, fn, n_boot, seed, ci)
            perm = permutation_test(y, pred_a, pred_b, fn, n_perm, seed)
            column = means[f"{m}_mean"].astype(float)
            mean_a, mean_b = float(column[label_a]), float(column[label_b])
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
        raise AffectFusionError(f"no metrics to aggregate in {RunPaths(Path('<run>')).metrics(split)}")
    pairwise = _pairwise(loaded, summary, split, task, metrics, n_boot, n_perm, seed, ci)
    out = SeedAggregatePaths(Path(out_dir))
    write_csv(summary, out.summary)
    write_csv(pairwise, out.pairwise)
    write_text(out.report, _report(summary, pairwise, metrics, n_boot, n_perm))
    _plot(summary, metrics, out.plot)
    return summary, pairwise
