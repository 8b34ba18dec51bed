"""Every metric per subgroup (speaker, gender, corpus, intensity, ...), with bootstrap intervals and
the worst-group gap: a model that is good on average can still fail one group of people.

Groups come from a sample's metadata (what the adapter exposes) or its ``group`` (speaker / video /
dialogue id): ``column="group"``. Intervals are 95 % percentile bootstrap intervals over the
samples of each group (every metric from the same resamples); the gap is the distance between the
best and the worst group's value of each metric, over groups with at least ``min_n`` samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import CLASSIFICATION_SCALARS, MULTILABEL_SCALARS, REGRESSION_SCALARS, task_metrics
from affectfusion.evaluation.selection import METRIC_DIRECTION

N_RESAMPLES = 200
MIN_N = 5


class Scored(Protocol):
    """What a breakdown needs of a set of predictions (``training.predict.Predictions`` has it)."""

    ids: list[str]
    groups: list[str | None]
    metadata: list[dict[str, str]]
    y_true: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]

    def labelled(self, task: str) -> np.ndarray: ...


def group_values(preds: Scored, column: str) -> np.ndarray:
    """Each sample's value of a metadata column ('group' = the sample's group id); '' if it has none."""
    if column == "group":
        return np.asarray(["" if g is None else str(g) for g in preds.groups], dtype=object)
    values = np.asarray([m.get(column, "") for m in preds.metadata] or [""] * len(preds.ids), dtype=object)
    if not any(values):
        known = sorted({k for m in preds.metadata for k in m} | {"group"})
        raise AffectFusionError(f"no sample has metadata column {column!r}; this data has: {', '.join(known)}")
    return values


def scalar_metrics(task: TaskConfig) -> tuple[str, ...]:
    return {"classification": CLASSIFICATION_SCALARS, "multilabel": MULTILABEL_SCALARS}.get(
        task.type, REGRESSION_SCALARS
    )


def _bootstrap(
    task: TaskConfig, metrics: Sequence[str], y: np.ndarray, p: np.ndarray, rng: np.random.Generator, n: int
) -> dict[str, tuple[float | None, float | None]]:
    """95 % percentile-bootstrap interval of every metric (one scoring per resample for all of them);
    resamples where a metric is undefined (one class only) are left out of its interval."""
    draws: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        scored = task_metrics(task, y[idx], p[idx])
        for m in metrics:
            if scored.get(m) is not None:
                draws[m].append(float(scored[m]))
    return {
        m: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (None, None)
        for m, v in draws.items()
    }


def subgroup_metrics(
    preds: Scored,
    task: TaskConfig,
    column: str,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (group, metric): value and 95 % bootstrap interval, plus an 'all' row per metric."""
    keep = preds.labelled(task.name)
    values = group_values(preds, column)[keep]
    y, p = preds.y_true[task.name][keep], preds.pred[task.name][keep]
    metrics = list(metrics or scalar_metrics(task))
    rows: list[dict[str, Any]] = []
    for group in ["all", *sorted(set(values) - {""}, key=str)]:
        sel = np.ones(len(values), bool) if group == "all" else values == group
        scored = task_metrics(task, y[sel], p[sel])
        rng = np.random.default_rng(seed)
        enough = sel.sum() >= MIN_N and n_resamples > 0
        intervals = _bootstrap(task, metrics, y[sel], p[sel], rng, n_resamples) if enough else {}
        for metric in metrics:
            value = scored.get(metric)
            low, high = intervals.get(metric, (None, None)) if value is not None else (None, None)
            rows.append(
                {
                    "column": column,
                    "group": str(group),
                    "n": int(sel.sum()),
                    "metric": metric,
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def worst_group_gaps(table: pd.DataFrame, min_n: int = MIN_N) -> dict[str, dict[str, Any]]:
    """Per metric: best and worst group (of at least ``min_n`` samples) and the gap between them."""
    out = {}
    groups = table[(table["group"] != "all") & (table["n"] >= min_n) & table["value"].notna()]
    for metric, rows in groups.groupby("metric", sort=False):
        lower_better = METRIC_DIRECTION.get(str(metric)) == "min"
        ordered = rows.sort_values("value", ascending=lower_better)
        best, worst = ordered.iloc[0], ordered.iloc[-1]
        out[str(metric)] = {
            "best_group": best["group"],
            "best": float(best["value"]),
            "worst_group": worst["group"],
            "worst": float(worst["value"]),
            "gap": float(abs(best["value"] - worst["value"])),
            "n_groups": len(rows),
        }
    return out


def subgroup_report(
    preds: Scored,
    tasks: Sequence[TaskConfig],
    columns: Sequence[str],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every task x column breakdown as one long table, and the worst-group gaps per task and column."""
    frames: list[pd.DataFrame] = []
    gaps: dict[str, dict[str, Any]] = {}
    for task in tasks:
        for column in columns:
            table = subgroup_metrics(preds, task, column, n_resamples, seed)
            frames.append(table.assign(task=task.name))
            gaps.setdefault(task.name, {})[column] = worst_group_gaps(table)
    return pd.concat(frames, ignore_index=True), gaps
