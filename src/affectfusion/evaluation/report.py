"""Read a run folder back and write its human-readable ``report.md`` (and say which plots it embeds).

Everything here tolerates a partial run folder (training still going, evaluation not run yet):
absent files are shown as absent, never an error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from affectfusion.config import validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.figures import Drawing, draw_now
from affectfusion.evaluation.metrics import SCALAR_ORDER
from affectfusion.evaluation.selection import best_epoch, history_value, resolve_monitor
from affectfusion.evaluation.trust_report import trust_markdown
from affectfusion.io import write_text
from affectfusion.rundir import RunFolder, RunPaths, read_run_folder


def run_monitor(run: RunFolder) -> tuple[str, str] | None:
    """(metric, 'max'|'min') the trainer selects the best epoch by, as configured."""
    try:
        return resolve_monitor(validate(run.config))
    except AffectFusionError:
        return None


def run_best(run: RunFolder) -> tuple[int, float] | None:
    """(epoch, value) of the best validation epoch in the run's history."""
    monitor = run_monitor(run)
    return best_epoch(run.history, *monitor) if monitor and run.history else None


def curves_drawing(run_dir: Path, history: list[dict[str, Any]], monitor: str | None) -> Drawing:
    """``plots/training_curves.png`` from ``history.jsonl``: loss per epoch and, if given, the monitored
    validation metric with its best epoch."""
    kwargs: dict[str, Any] = {
        "epochs": [int(r["epoch"]) for r in history],
        "losses": {"train": [r.get("train_loss") for r in history], "validation": [r.get("val_loss") for r in history]},
        "monitor": monitor,
    }
    if monitor:
        kwargs["monitored"] = [history_value(r, monitor) for r in history]
        kwargs["best"] = best_epoch(history, monitor)
    return Drawing("plot_training_curves", RunPaths(Path(run_dir)).training_curves, kwargs)


def run_drawings(run: RunFolder) -> list[Drawing]:
    """The figures of a run folder, from its files: training curves and one confusion matrix per split
    and classification task."""
    drawings = []
    if run.history:
        monitor = run_monitor(run)
        drawings.append(curves_drawing(run.path, run.history, monitor and monitor[0]))
    for split, metrics in run.evals.items():
        for task, tm in (metrics.get("tasks") or {}).items():
            if tm.get("type") == "classification" and tm.get("n"):
                path = RunPaths(run.path).confusion_plot(split, task)
                title = f"{run.name}: {task} ({split}, n = {tm['n']})"
                kwargs = {"cm": tm["confusion_matrix"], "classes": tm["classes"], "title": title}
                drawings.append(Drawing("plot_confusion_matrix", path, kwargs))
    return drawings


def plot_run(run_dir: Path) -> list[Path]:
    """(Re)draw a run folder's figures in this process; returns the paths written."""
    return draw_now(run_drawings(read_run_folder(run_dir)))


def fmt_value(value: Any) -> str:
    """Table cell text: ints as ints, floats to 4 decimals, missing as 'n/a'."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[Any]], numeric: list[bool] | None = None) -> str:
    """A padded pipe table (GitHub markdown, also readable as plain text); numeric columns right-aligned."""
    cells = [[fmt_value(v) for v in row] for row in rows]
    numeric = numeric or [False] * len(header)
    widths = [max([len(h), 3, *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else "-" * (w + 2) for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(header), rule + "|", *(line(r) for r in cells)])


def _overview(run: RunFolder) -> list[str]:
    lines = [f"# Run report: {run.name}", "", f"- **Folder:** `{run.path}`"]
    if run.config.get("description"):
        lines.append(f"- **Description:** {run.config['description']}")
    fusion = run.fusion
    if ((run.config.get("model") or {}).get("fusion") or {}).get("channel_scaling"):
        fusion = f"{fusion} (with channel scaling)"
    lines.append(f"- **Fusion:** {fusion or 'n/a'}")
    tasks = []
    for t in run.config.get("tasks") or []:
        detail = ", ".join(t.get("classes") or [])
        detail = detail or ("signed" if t.get("signed") else "")
        tasks.append(f"{t['name']} ({t.get('type')}{': ' + detail if detail else ''})")
    lines.append(f"- **Tasks:** {'; '.join(tasks) or 'n/a'}")
    for task, tuned in run.thresholds.items():
        values = sorted(set(tuned["thresholds"]))
        shown = f"{values[0]:.2f}" if len(values) == 1 else f"per class, {values[0]:.2f}–{values[-1]:.2f}"
        lines.append(
            f"- **Decision threshold `{task}`:** {shown} (tuning {tuned['tuning']} on `{tuned['split']}`; "
            f"macro F1 there {fmt_value(tuned['macro_f1_default'])} at the configured threshold, "
            f"{fmt_value(tuned['macro_f1_tuned'])} tuned)"
        )
    n_params = run.meta.get("n_parameters")
    lines.append(f"- **Parameters:** {f'{n_params:,}' if isinstance(n_params, int) else 'n/a'}")
    if run.history:
        per_epoch = run.seconds_per_epoch()
        timing = f" (mean {per_epoch:.2f} s/epoch)" if per_epoch is not None else ""
        lines.append(f"- **Epochs trained:** {len(run.history)}{timing}")
        monitor, best = run_monitor(run), run_best(run)
        if monitor and best:
            lines.append(f"- **Best epoch:** {best[0]} (validation {monitor[0]} = {best[1]:.4f}, {monitor[1]})")
    else:
        lines.append("- **Training history:** none yet (no history.jsonl)")
    lines += [f"- **Warning:** {w}" for w in run.meta.get("warnings", [])]
    return lines


def _modalities(run: RunFolder) -> list[str]:
    mods = run.meta.get("modalities") or {}
    if not mods:
        return []
    rows = [[name, m.get("dim"), "sequence" if m.get("sequence") else "vector"] for name, m in mods.items()]
    return ["", "## Modalities", "", markdown_table(["modality", "dim", "kind"], rows, [False, True, False])]


def _task_section(run: RunFolder, split: str, task: str, tm: dict[str, Any], embedded: set[str]) -> list[str]:
    lines = ["", f"#### Task `{task}` ({tm.get('type')}, n = {tm.get('n')})", ""]
    scalars = [k for k in SCALAR_ORDER if k in tm] + [
        k for k, v in tm.items() if k not in SCALAR_ORDER and k not in ("type", "n") and isinstance(v, float)
    ]
    lines.append(markdown_table(["metric", "value"], [[k, tm[k]] for k in scalars], [False, True]))
    per_class = tm.get("per_class") or {}
    if per_class:
        rows = [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in per_class.items()]
        header = ["class", "precision", "recall", "F1", "support"]
        thresholds = tm.get("thresholds")  # multilabel: the decision threshold each class was scored at
        if thresholds:
            rows = [[*row, thresholds[c]] for row, c in zip(rows, per_class, strict=True)]
            header.append("threshold")
        lines += ["", "Per class:", "", markdown_table(header, rows, [False] + [True] * (len(header) - 1))]
    classes, cm = tm.get("classes") or [], tm.get("confusion_matrix") or []
    if classes and cm:
        rows = [[c, *counts] for c, counts in zip(classes, cm, strict=True)]
        header = ["true \\ predicted", *classes]
        lines += ["", "Confusion matrix:", "", markdown_table(header, rows, [False] + [True] * len(classes))]
    plot = RunPaths(run.path).confusion_plot(split, task)
    image = plot.relative_to(run.path).as_posix()
    if plot.is_file():
        embedded.add(image)
        lines += ["", f"![Confusion matrix {task} ({split})]({image})"]
    return lines


def _evaluation(run: RunFolder, embedded: set[str]) -> list[str]:
    lines = ["", "## Evaluation"]
    if not run.evals:
        return [*lines, "", "No evaluation results yet (no eval/<split>/metrics.json)."]
    for split, metrics in run.evals.items():
        primary = metrics.get("primary_task")
        lines += ["", f"### Split `{split}` (n = {metrics.get('n')}, primary task `{primary}`)"]
        for task, tm in (metrics.get("tasks") or {}).items():
            lines += _task_section(run, split, task, tm, embedded)
    return lines


def write_run_report(run_dir: Path) -> Path:
    """Write ``<run>/report.md`` from the files present and return its path; images are linked by
    relative path so the report renders wherever the folder is moved."""
    run = read_run_folder(run_dir)
    lines = _overview(run) + _modalities(run)
    embedded: set[str] = set()
    paths = RunPaths(run.path)
    curves = paths.training_curves
    if curves.is_file():
        image = curves.relative_to(run.path).as_posix()
        embedded.add(image)
        lines += ["", "## Training curves", "", f"![Training curves]({image})"]
    lines += _evaluation(run, embedded)
    lines += trust_markdown(run.path, embedded)  # data check, calibration, conformal, subgroups, ...
    others = [p.relative_to(run.path).as_posix() for p in sorted(paths.plots.glob("*.png"))]
    others = [image for image in others if image not in embedded]
    if others:
        lines += ["", "## Other plots"]
        for image in others:
            lines += ["", f"![{Path(image).stem}]({image})"]
    write_text(paths.report, "\n".join(lines) + "\n")
    return paths.report
