"""Side-by-side table of several runs (the P2 fusion comparison): CSV, markdown and a bar chart."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.figures import Drawing, draw_now
from affectfusion.evaluation.intervals import LEVEL, N_RESAMPLES, run_intervals
from affectfusion.evaluation.metrics import SCALAR_ORDER
from affectfusion.evaluation.report import markdown_table, run_best
from affectfusion.io import read_json, write_csv, write_text
from affectfusion.rundir import ComparisonPaths, CvPaths, RunFolder, RunPaths, is_cv, read_run_folder

# Without an explicit split, the most final evaluation available is compared.
SPLIT_PREFERENCE = ("test", "test_small", "dev")
INFO_COLUMNS = [
    "run",
    "fusion",
    "split",
    "primary_task",
    "n",
    "n_parameters",
    "best_epoch",
    "seconds_per_epoch",
]
_INT_COLUMNS = ["n", "n_parameters", "best_epoch"]


def _run_names(paths: list[Path]) -> list[str]:
    """Folder names, or paths relative to the runs' common folder where folder names collide."""
    names = [p.name for p in paths]
    clashing = {n for n in names if names.count(n) > 1}
    if not clashing:
        return names
    root = Path(os.path.commonpath(paths))
    return [p.relative_to(root).as_posix() if p.name in clashing else p.name for p in paths]


def _choose_split(run: RunFolder, split: str | None) -> str | None:
    if split is not None:
        return split if split in run.evals else None
    for name in SPLIT_PREFERENCE:
        if name in run.evals:
            return name
    return next(iter(sorted(run.evals)), None)


def _row(run: RunFolder, name: str, split: str | None) -> dict:
    metrics = run.evals.get(split, {}) if split else {}
    best = run_best(run)
    row = {
        "run": name,
        "fusion": run.fusion,
        "split": split,
        "primary_task": metrics.get("primary_task"),
        "n": metrics.get("n"),
        "n_parameters": run.meta.get("n_parameters"),
        "best_epoch": best[0] if best else None,
        "seconds_per_epoch": run.seconds_per_epoch(),
    }
    skip = {"split", "n", "primary_task", "tasks"}
    row.update({k: v for k, v in metrics.items() if k not in skip and (v is None or isinstance(v, int | float))})
    task = next((t for t in run.config.get("tasks") or [] if t.get("name") == row["primary_task"]), None)
    if split and task:
        for metric, (low, high) in run_intervals(RunPaths(run.path).predictions(split), task).items():
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
    return row


def cv_row(path: Path, name: str) -> dict:
    """A cross-validation folder as one row: identity from its first fold, the primary task's metrics as
    the mean over folds (``<metric>_std`` beside each), split ``cv (<k> folds)``."""
    summary = read_json(CvPaths(path).summary)
    fold = summary["folds"][0]
    first = read_run_folder(Path(path) / fold.get("results_dir", fold["run_dir"]))
    task = summary["primary_task"]
    row = {
        "run": name,
        "fusion": first.fusion,
        "split": f"cv ({summary['protocol']['n_folds']} folds)",
        "primary_task": task,
        "n": summary["protocol"]["n_samples"],
        "n_parameters": first.meta.get("n_parameters"),
        "best_epoch": None,
        "seconds_per_epoch": first.seconds_per_epoch(),
    }
    for key, agg in summary["metrics"].items():
        if key.startswith(f"{task}."):
            metric = key.removeprefix(f"{task}.")
            row[metric], row[f"{metric}_std"] = agg["mean"], agg["std"]
    return row


def compare_runs(run_dirs: list[Path], out_dir: Path, split: str | None = None) -> pd.DataFrame:
    """One row per run: identity, cost and the primary task's metrics on ``split`` (default: the
    first of test, test_small, dev, else any evaluated split, chosen per run and shown in the
    ``split`` column); a cross-validation folder (``cv.json``) is one row of means over its folds.
    Writes comparison.csv, comparison.md and comparison.png into ``out_dir``."""
    paths = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    if not paths:
        raise AffectFusionError("no run folders given to compare")
    rows, chosen = [], []
    for path, name in zip(paths, _run_names(paths), strict=True):
        if is_cv(path):  # a cross-validation: one row, the mean over its folds
            rows.append(cv_row(path, name))
            chosen.append(rows[-1]["split"])
            continue
        run = read_run_folder(path)
        if not run.has_config:
            raise AffectFusionError(f"{path} is not a run directory (no config.yaml)")
        chosen.append(_choose_split(run, split))
        rows.append(_row(run, name, chosen[-1]))
    if not any(chosen):
        where = RunPaths(Path("<run>")).metrics(split or "<split>")
        raise AffectFusionError(f"none of the runs has evaluation metrics ({where}): {', '.join(map(str, paths))}")
    df = pd.DataFrame(rows)
    metric_cols = [c for c in SCALAR_ORDER if c in df.columns]
    other_cols = [c for c in df.columns if c not in INFO_COLUMNS and c not in metric_cols]
    df = df[INFO_COLUMNS + metric_cols + other_cols]
    float_cols = ["seconds_per_epoch", *metric_cols, *other_cols]
    df[_INT_COLUMNS] = df[_INT_COLUMNS].astype("Int64")  # nullable: a run may lack meta.json
    df[float_cols] = df[float_cols].astype(float)  # None -> NaN

    out = ComparisonPaths(Path(out_dir))
    write_csv(df, out.table)
    splits = sorted({s for s in chosen if s})
    note = f"Split: {', '.join(splits)}" + (" (differs between runs, see `split`)" if len(splits) > 1 else "")
    sizes = sorted({int(n) for n in df["n"].dropna()})
    note += f", n = {', '.join(map(str, sizes))} samples" if sizes else ""
    if any(c.endswith("_ci_low") for c in df.columns):
        note += (
            f". `<metric>_ci_low` / `_ci_high`: {LEVEL:.0%} percentile bootstrap interval over the split's "
            f"samples ({N_RESAMPLES} resamples of the saved predictions)"
        )
    write_text(out.report, f"# Run comparison\n\n{note}\n\n{format_table(df)}\n")
    title = f"Run comparison ({', '.join(splits)}" + (f", n = {', '.join(map(str, sizes))})" if sizes else ")")
    draw_now([Drawing("plot_comparison", out.plot, {"df": df, "metrics": metric_cols, "title": title})])
    return df


def format_table(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """The comparison as a padded markdown table, readable in a terminal as-is."""
    columns = columns or list(df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in columns]
    rows = [list(r) for r in df[columns].itertuples(index=False)]
    return markdown_table(columns, rows, numeric)
