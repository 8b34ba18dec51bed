"""Figures for run folders: training curves, confusion matrices, reliability diagrams, run comparisons
(PNG, headless). A run's figures are drawn through :mod:`affectfusion.evaluation.figures`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display on servers/CI; must precede pyplot

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import MaxNLocator

from affectfusion.errors import AffectFusionError
from affectfusion.io import atomic_file

if TYPE_CHECKING:
    import pandas as pd


def new_figure(
    width: float, height: float, nrows: int = 1, ncols: int = 1, **subplots: Any
) -> tuple[Figure, list[Axes]]:
    """A figure outside pyplot (no global figure registry, no GUI backend: safe on servers and in
    threads) whose constrained layout is solved once, while it is saved: a training run's plots then
    cost one text layout pass each instead of three (tight_layout + a tight bounding box + the draw).
    ``subplots`` go to :meth:`Figure.subplots` (``height_ratios``, ``sharex``); axes come row by row."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, list(axes.flat)


def save_figure(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write the PNG atomically (a report never embeds a half-written image) and free the figure.
    A figure with constrained layout (:func:`new_figure`) is laid out while it is drawn; others are
    cropped to their contents (a second draw)."""
    path = Path(path)
    constrained = isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches=None if constrained else "tight")
    finally:
        if fig.canvas.manager is not None:  # made by pyplot (analysis figures): registered until closed
            import matplotlib.pyplot as plt  # already loaded by whoever made the figure

            plt.close(fig)
    return path


def _floats(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def plot_training_curves(
    path: Path,
    epochs: list[int],
    losses: dict[str, list[float | None]],
    monitor: str | None = None,
    monitored: list[float] | None = None,
    best: tuple[int, float] | None = None,
) -> Path:
    """Loss per epoch (``losses``: label -> values, train and validation) and, if ``monitor`` is given,
    that validation metric (``monitored``) with its ``best`` (epoch, value) marked, in a second panel
    since the scales differ. The series come from ``history.jsonl``
    (:func:`~affectfusion.evaluation.report.curves_drawing`)."""
    if not epochs:
        raise AffectFusionError("no training history to plot (history.jsonl is empty)")
    fig, axes = new_figure(11 if monitor else 6, 4, ncols=2 if monitor else 1)
    ax = axes[0]
    for label, values in losses.items():
        ax.plot(epochs, _floats(values), marker="o", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax.legend(loc="upper right")  # a fixed place: searching for the "best" one costs a draw
    ax.grid(alpha=0.3)
    if monitor:
        ax = axes[1]
        ax.plot(epochs, _floats(monitored or []), marker="o", ms=3, color="C2")
        if best is not None:
            ax.axvline(best[0], color="grey", ls="--", lw=1)
            ax.scatter([best[0]], [best[1]], color="C3", zorder=3, label=f"best: epoch {best[0]} = {best[1]:.4f}")
            ax.legend(loc="lower right")
        ax.set(xlabel="epoch", ylabel=monitor, title=f"Validation {monitor}")
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(fig, path)


def plot_confusion_matrix(cm: Any, classes: list[str], path: Path, title: str) -> Path:
    """Counts and row-normalised recall side by side; the second shows errors on rare classes that
    raw counts hide."""
    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    k = len(classes)
    side = max(4.0, 0.6 * k + 2.0)
    fig, axes = new_figure(2 * side + 1, side, ncols=2)
    font = 9 if k <= 8 else 7
    for ax, data, fmt, sub in (
        (axes[0], counts, "d", "counts"),
        (axes[1], normalised, ".2f", "row-normalised (recall)"),
    ):
        # imshow + text: the same heatmap as seaborn's, drawn several times faster
        top = float(data.max()) if data is counts else 1.0
        ax.imshow(data, cmap="Blues", vmin=0, vmax=max(top, 1e-9))
        for (i, j), value in np.ndenumerate(data):
            dark = value > 0.6 * top
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=font, color="w" if dark else "k")
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set(xlabel="predicted", ylabel="true", title=sub)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_reliability(curves: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> Path:
    """Reliability diagram: accuracy against confidence per bin for each curve (before / after); a curve
    is the fields of :class:`~affectfusion.evaluation.calibration.Reliability` as a dict (plain data, so
    the figure helper need not import the calibration code)."""
    fig, (ax, hist) = new_figure(5, 6, nrows=2, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    for label, r in curves.items():
        count, edges = np.asarray(r["count"]), np.asarray(r["edges"])
        keep = count > 0
        ax.plot(np.asarray(r["confidence"])[keep], np.asarray(r["accuracy"])[keep], marker="o", label=label)
        centers = (edges[:-1] + edges[1:]) / 2
        hist.bar(centers, count / max(count.sum(), 1), width=1 / len(centers), alpha=0.5, label=label)
    ax.set(ylabel="accuracy", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    hist.set(xlabel="confidence", ylabel="share")
    return save_figure(fig, path)


def value_range(values: np.ndarray) -> tuple[float, float]:
    """A y-range for bars: from 0 (a bar's length is its value, so a cut axis exaggerates differences;
    the bar labels and interval whiskers show small ones), down to the lowest value when one is negative,
    with room above for the labels."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = min(float(finite.min()), 0.0), max(float(finite.max()), 0.0)
    span = max(high - low, 1e-6)
    return low - (0.05 * span if low < 0 else 0.0), high + 0.25 * span


def _column(df: pd.DataFrame, column: str, row: int) -> float:
    """A float cell, NaN when the column is absent or empty."""
    if column not in df.columns:
        return math.nan
    value = df[column].iloc[row]
    return float(value) if value is not None and value == value else math.nan


def plot_comparison(df: pd.DataFrame, metrics: list[str], path: Path, title: str) -> Path:
    """One group of bars per metric, one bar per run (``run`` column, else the index), from 0, with the
    95 % interval as a whisker where the table has one."""
    import pandas as pd  # only here: the figure helper draws run figures without loading pandas

    cols = [m for m in metrics if m in df.columns and pd.to_numeric(df[m], errors="coerce").notna().any()]
    if not cols:
        raise AffectFusionError(f"nothing to plot: none of {metrics} has values")
    runs = [str(r) for r in (df["run"] if "run" in df.columns else df.index)]
    values = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    width = 0.8 / len(runs)
    x = np.arange(len(cols))
    fig, (ax,) = new_figure(max(6.0, 1.2 * len(cols) * max(1.0, len(runs) / 3)), 4.5)
    # 95 % intervals (``<metric>_ci_low`` / ``_ci_high`` columns) as whiskers where compare computed them
    lows = np.array([[_column(df, f"{m}_ci_low", i) for m in cols] for i in range(len(runs))])
    highs = np.array([[_column(df, f"{m}_ci_high", i) for m in cols] for i in range(len(runs))])
    for i, run in enumerate(runs):
        xs = x + (i - (len(runs) - 1) / 2) * width
        bars = ax.bar(xs, values[i], width, label=run)
        whiskers = np.isfinite(lows[i]) & np.isfinite(highs[i])
        if whiskers.any():
            err = np.abs(np.stack([values[i] - lows[i], highs[i] - values[i]]))[:, whiskers]
            ax.errorbar(xs[whiskers], values[i][whiskers], yerr=err, fmt="none", ecolor="black", lw=0.8, capsize=2)
        labels = [f"{v:.3f}" if math.isfinite(v) else "" for v in values[i]]
        ax.bar_label(bars, labels=labels, fontsize=7, rotation=90, label_type="center")  # clear of whiskers
    ax.set_xticks(x, cols, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylim(*value_range(np.concatenate([values, highs], axis=1)))
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return save_figure(fig, path)
