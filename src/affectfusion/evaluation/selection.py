"""Model selection: which way each metric is better, the metric that picks the best epoch and drives early
stopping, the best epoch of a history, and the warning when that metric is at its ceiling from the start
(then it cannot tell checkpoints apart)."""

from __future__ import annotations

import math
from typing import Any

from affectfusion.config import RunConfig, TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import metric_value
from affectfusion.evaluation.mmsa_metrics import MMSA_SCALARS

METRIC_DIRECTION: dict[str, str] = {
    "accuracy": "max",
    "balanced_accuracy": "max",
    "macro_f1": "max",
    "weighted_f1": "max",
    "precision": "max",
    "recall": "max",
    "f1": "max",
    "pearson_r": "max",
    "ccc": "max",
    "binary_accuracy": "max",
    "binary_f1": "max",
    **dict.fromkeys(MMSA_SCALARS, "max"),
    "micro_f1": "max",
    "samples_f1": "max",
    "subset_accuracy": "max",
    "mae": "min",
    "rmse": "min",
    "loss": "min",
    "val_loss": "min",
    "train_loss": "min",
}

# Best possible value of bounded metrics: a validation score stuck there cannot rank checkpoints.
METRIC_CEILING: dict[str, float] = {
    **{m: 1.0 for m, d in METRIC_DIRECTION.items() if d == "max"},
    "mae": 0.0,
    "rmse": 0.0,
}


def default_monitor(task: TaskConfig) -> str:
    """The validation metric early stopping watches when the config says ``auto``."""
    return "rmse" if task.type == "regression" else "macro_f1"


def metric_mode(name: str) -> str:
    """'max' or 'min' for a metric name, top-level or dotted (``emotion.macro_f1``)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf not in METRIC_DIRECTION:
        raise AffectFusionError(
            f"unknown direction for metric {name!r}: set early_stopping.mode to 'max' or 'min' "
            f"(known metrics: {', '.join(METRIC_DIRECTION)})"
        )
    return METRIC_DIRECTION[leaf]


def resolve_monitor(cfg: RunConfig) -> tuple[str, str]:
    """(validation metric, 'max'|'min') that picks the best epoch and drives early stopping."""
    es = cfg.train.early_stopping
    monitor = es.monitor if es and es.monitor != "auto" else default_monitor(cfg.tasks[0])
    mode = es.mode if es and es.mode != "auto" else ("min" if monitor in ("loss", "val_loss") else metric_mode(monitor))
    return monitor, mode


def history_value(record: dict[str, Any], monitor: str) -> float:
    """The monitored value of one history.jsonl epoch record; ``loss`` means the validation loss."""
    if monitor in ("loss", "val_loss", "train_loss"):
        key = "train_loss" if monitor == "train_loss" else "val_loss"
        value = record.get(key)
        return math.nan if value is None else float(value)
    return metric_value(record.get("val") or {}, monitor)


def best_epoch(history: list[dict[str, Any]], monitor: str, mode: str = "auto") -> tuple[int, float] | None:
    """(epoch, value) of the best finite monitored value; ties go to the earliest epoch."""
    sign = 1.0 if (metric_mode(monitor) if mode == "auto" else mode) == "max" else -1.0
    best: tuple[int, float] | None = None
    for record in history:
        value = history_value(record, monitor)
        if math.isfinite(value) and (best is None or sign * value > sign * best[1]):
            best = (int(record["epoch"]), value)
    return best


def saturation_warning(history: list[dict[str, Any]], monitor: str, split: str) -> str | None:
    """A sentence when the monitored validation metric sits at its ceiling from the first epochs on.

    Then every later checkpoint ties with the first, early stopping and model selection are blind,
    and the usual causes are label-informed features or a leak between splits.
    """
    leaf = monitor.rsplit(".", 1)[-1]
    if leaf not in METRIC_CEILING or not history:
        return None
    ceiling = METRIC_CEILING[leaf]
    values = [history_value(r, monitor) for r in history]
    at_ceiling = [i for i, v in enumerate(values) if math.isfinite(v) and abs(v - ceiling) < 1e-9]
    if not at_ceiling or at_ceiling[0] > 1:
        return None
    return (
        f"validation {monitor} on {split!r} reached its best possible value {ceiling:g} at epoch {at_ceiling[0] + 1}: "
        "it cannot tell checkpoints apart, so early stopping and model selection are blind. Label-informed "
        "features or samples shared between splits are the usual causes; pick settings on another split."
    )
