"""The summary of a cross-validation: per-fold test metrics, mean ± std and a 95 % t-interval over folds of
every metric, the pooled test predictions (each sample once) with their confusion matrices, and the time
each fold spent outside its epochs. ``cv.json`` for programs (``compare``, the dashboard), ``cv.md`` for
people; both state the protocol first, since a number means nothing without it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from affectfusion.config import TaskConfig
from affectfusion.data.fold_plan import FoldPlan, Protocol
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import CLASSIFICATION_SCALARS, REGRESSION_SCALARS, task_metrics
from affectfusion.evaluation.report import markdown_table
from affectfusion.io import read_json, write_csv, write_json, write_text
from affectfusion.rundir import CvPaths, RunPaths

TEST = "test"  # the split name of a fold's test part (data.folds)


def interval(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample std and the 95 % Student-t interval of the mean over folds (None where undefined)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = statistics.stdev(vals)
    half = float(student_t.ppf(0.975, len(vals) - 1)) * std / math.sqrt(len(vals))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": len(vals)}


def fold_scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    """``task.metric`` -> value for every scalar metric of every task of one evaluation."""
    out = {}
    for task, per in (metrics.get("tasks") or {}).items():
        for name, value in per.items():
            if name == "n":  # sample counts are in the fold's sizes
                continue
            if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
                out[f"{task}.{name}"] = None if value is None else float(value)
    return out


def pooled(df: pd.DataFrame, tasks: list[TaskConfig]) -> dict[str, Any]:
    """Metrics of the pooled test predictions per task, with the confusion matrix of classification tasks."""
    out: dict[str, Any] = {}
    for t in tasks:
        true, pred = df.get(f"{t.name}_true"), df.get(f"{t.name}_pred")
        if true is None or pred is None or t.type == "multilabel":
            continue
        if t.type == "classification":
            classes = t.classes or []
            keep = true.fillna("").astype(str) != ""
            index = {c: i for i, c in enumerate(classes)}
            y = np.asarray([index[c] for c in true[keep].astype(str)])
            p = np.asarray([index[c] for c in pred[keep].astype(str)])
        else:
            keep = pd.to_numeric(true, errors="coerce").notna()
            y, p = true[keep].astype(float).to_numpy(), pred[keep].astype(float).to_numpy()
        if len(y):
            metrics = task_metrics(t, y, p)
            out[t.name] = {k: v for k, v in metrics.items() if k in ("confusion_matrix", "classes") or k in _SCALARS}
            out[t.name]["n"] = len(y)
    return out


_SCALARS = set(CLASSIFICATION_SCALARS + REGRESSION_SCALARS)


def write_cv_summary(
    paths: CvPaths,
    cfg: Any,  # a RunConfig, or a specialists config: its name and tasks
    protocol: Protocol,
    splits: list[str],
    plans: list[FoldPlan],
    results: list[Path],
    timings: list[dict[str, Any]],
) -> dict[str, Any]:
    """Read every fold's test evaluation (the run in ``results``, aligned with ``plans``); write cv.json,
    cv.md and the pooled predictions; the summary."""
    previous = read_json(paths.summary).get("timings", []) if paths.summary.is_file() else []
    timing = {t["fold"]: t for t in previous} | {t["fold"]: t for t in timings}
    folds: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    for plan, result in zip(plans, results, strict=True):
        run = RunPaths(result)
        if not run.metrics(TEST).is_file():
            raise AffectFusionError(f"cv fold {plan.index}: {run.metrics(TEST)} is missing; run the same cv again")
        metrics = read_json(run.metrics(TEST))
        folds.append(
            {
                "fold": plan.index,
                "run_dir": paths.fold(plan.index).name,
                "results_dir": run.root.relative_to(paths.root).as_posix(),
                "test": plan.test,
                "val_groups": plan.val,
                "sizes": plan.sizes,
                "metrics": fold_scalars(metrics),
            }
        )
        frame = pd.read_csv(run.predictions(TEST), keep_default_na=False, dtype=str)
        frames.append(frame.assign(fold=plan.index))
    names = list(dict.fromkeys(k for f in folds for k in f["metrics"]))
    predictions = pd.concat(frames, ignore_index=True)
    for t in cfg.tasks:  # numbers back from text, for regression tasks
        for col in (f"{t.name}_true", f"{t.name}_pred"):
            if t.type == "regression" and col in predictions:
                predictions[col] = pd.to_numeric(predictions[col], errors="coerce")
    summary = {
        "protocol": {
            "name": protocol.name,
            "folds_column": protocol.folds,
            "group_column": protocol.group,
            "k": protocol.k,
            "consecutive": protocol.consecutive,
            "validation": protocol.validation_rule(),
            "stratified_by": protocol.stratify,
            "splits": splits,
            "n_folds": len(plans),
            "n_samples": len(predictions),
            "seed": protocol.seed,
        },
        "config": cfg.name,
        "primary_task": cfg.tasks[0].name,
        "folds": folds,
        "metrics": {
            n: {**interval([f["metrics"].get(n) for f in folds]), "values": [f["metrics"].get(n) for f in folds]}
            for n in names
        },
        "pooled": pooled(predictions, cfg.tasks),
        "timings": [timing[k] for k in sorted(timing)],
    }
    write_csv(predictions, paths.pooled_predictions)
    write_json(paths.summary, summary)
    write_text(paths.report, cv_markdown(summary))
    return summary


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def cv_markdown(s: dict[str, Any]) -> str:
    """cv.md: protocol first, then per-fold and aggregated metrics, pooled confusion matrices and timings."""
    p = s["protocol"]
    lines = [
        f"# Cross-validation: {s['config']}",
        "",
        f"Protocol: {p['name']}, {p['n_folds']} folds over {p['n_samples']} samples "
        f"of splits {', '.join(p['splits'])}.",
        f"Validation (early stopping, model selection, calibration): {p['validation']}.",
        "Every sample is tested exactly once; no group is in two parts of a fold (each fold's data check).",
        "",
        "## Mean over folds",
        "",
    ]
    rows = [
        [n, _fmt(m["mean"]), _fmt(m["std"]), "-" if not m["ci95"] else f"[{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"]
        for n, m in s["metrics"].items()
        if n.split(".")[-1] in _SCALARS
    ]
    lines += [markdown_table(["metric", "mean", "std", "95% CI (t)"], rows, [False, True, True, False]), ""]
    shown = [n for n in s["metrics"] if n.split(".")[-1] in _SCALARS]
    lines += ["## Per fold", ""]
    header = ["fold", "test", "n test", *shown]
    per = [
        [
            str(f["fold"]),
            ", ".join(f["test"][:4]) + (" ..." if len(f["test"]) > 4 else ""),
            str(f["sizes"].get("test")),
            *[_fmt(f["metrics"].get(n)) for n in shown],
        ]
        for f in s["folds"]
    ]
    lines += [markdown_table(header, per, [False, False, True, *[True] * len(shown)]), ""]
    for task, info in s["pooled"].items():
        lines += [f"## Pooled test predictions: {task} (n = {info['n']})", ""]
        lines.append(", ".join(f"{k} {_fmt(v)}" for k, v in info.items() if k in _SCALARS))
        cm = info.get("confusion_matrix")
        if cm:
            classes = info["classes"]
            lines += ["", "Confusion matrix (rows: truth, columns: prediction):", ""]
            rows = [[c, *r] for c, r in zip(classes, cm, strict=True)]
            lines.append(markdown_table(["", *classes], rows, [False, *[True] * len(classes)]))
        lines.append("")
    lines += ["## Time per fold", ""]
    lines.append(
        markdown_table(
            ["fold", "wall s", "epochs s", "outside epochs s", "worker start-up s"],
            [
                [
                    str(t["fold"]),
                    f"{t['wall_s']:.1f}",
                    f"{t['epochs_s']:.1f}",
                    f"{t['overhead_s']:.1f}",
                    _fmt(t.get("worker_startup_s")),
                ]
                for t in s["timings"]
            ],
            [False, True, True, True, True],
        )
    )
    return "\n".join(lines) + "\n"
