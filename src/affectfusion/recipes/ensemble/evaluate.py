"""An ensemble scored on a split, with the evaluation code of a single run, and set beside its members.

The split is loaded once (the members share their data); each member's best checkpoint is loaded in
turn, run over it (:func:`affectfusion.training.predict.predict`), its temperature applied, and freed
before the next, so memory holds one model at a time. The mean (:func:`combine`) is scored by
:func:`affectfusion.training.predict.score` and written where a run's scores live
(``eval/<split>/metrics.json`` and ``predictions.csv``), with each member's own scores on the same
samples; :func:`ensemble_vs_members` sets them side by side: what the ensemble buys over one member.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectfusion.analysis.significance import mean_std
from affectfusion.evaluation.calibration import apply_temperature, served_temperatures
from affectfusion.evaluation.metrics import SCALAR_ORDER, metric_value
from affectfusion.evaluation.report import markdown_table
from affectfusion.io import read_json, write_csv, write_json, write_text
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.ensemble.combine import combine
from affectfusion.recipes.ensemble.members import read_manifest, read_members, scoring_config
from affectfusion.rundir import LoadedRun, RunPaths
from affectfusion.training.loading import load_model
from affectfusion.training.predict import Predictions, predict, predictions_frame, score


def member_outputs(run: LoadedRun, preds: Predictions) -> dict[str, np.ndarray]:
    """Task -> what the member contributes: calibrated probabilities (its temperature applied), or values."""
    temperatures, _ = served_temperatures(run.paths, run.config.tasks)
    out = {}
    for t in run.config.tasks:
        if t.type == "regression":
            out[t.name] = preds.pred[t.name]
        elif t.name in temperatures:
            out[t.name] = apply_temperature(preds.proba[t.name], temperatures[t.name])
        else:
            out[t.name] = preds.proba[t.name]
    return out


def evaluate_ensemble(root: Path, split: str, data_root: str | Path | None = None) -> dict[str, Any]:
    """Score the ensemble at ``root`` on ``split`` (default data: its scoring config's ``data.root``), and each
    member on the same samples (under ``members``: ``task.metric`` -> value); writes
    ``eval/<split>/metrics.json`` and ``predictions.csv`` in the ensemble folder. Returns the metrics."""
    manifest, runs = read_members(root)
    first = runs[0]
    config = scoring_config(root, manifest, first)
    dataset = load_dataset(config, split, root=data_root, modalities=first.modalities)
    outputs: dict[str, list[np.ndarray]] = {}
    thresholds: dict[str, list[np.ndarray]] = {}
    members: dict[str, dict[str, float]] = {}
    base: Predictions | None = None
    for name, run in zip(manifest.members, runs, strict=True):
        model = load_model(run)
        preds = predict(model, dataset, run.scalers)
        del model  # one model in memory at a time
        own = score(preds, config.tasks, split)
        members[name] = {m: metric_value(own, m) for m in _metric_names(own)}
        for task, array in member_outputs(run, preds).items():
            outputs.setdefault(task, []).append(array)
        for task, chosen in preds.thresholds.items():
            thresholds.setdefault(task, []).append(chosen)
        base = base or preds
    assert base is not None  # a manifest lists at least one member
    mean = Predictions(base.ids, base.groups, base.sources, base.y_true, pred={}, metadata=base.metadata)
    for t in config.tasks:
        th = np.stack(thresholds[t.name]) if t.name in thresholds else None
        pred, proba = combine(t, np.stack(outputs[t.name]), th)
        mean.pred[t.name] = pred
        if proba is not None:
            mean.proba[t.name] = proba
        if th is not None:
            mean.thresholds[t.name] = th.mean(axis=0)
    metrics = score(mean, config.tasks, split)
    data = data_root if data_root is not None else config.data.root
    metrics["provenance"] = {
        "data_root": None if data is None else str(data),
        "checkpoint": "best",
        "ensemble": {"members": manifest.members, "combine": "mean of calibrated probabilities / of values"},
    }
    metrics["members"] = members
    paths = RunPaths(Path(root))
    write_json(paths.metrics(split), metrics)
    write_csv(predictions_frame(mean, config.tasks, list(first.modalities)), paths.predictions(split))
    return metrics


def _metric_names(metrics: dict[str, Any]) -> list[str]:
    """``task.metric`` for every scalar of every scored task, in the toolkit's usual order."""
    tasks = metrics.get("tasks", {})
    return [f"{t}.{m}" for t, tm in tasks.items() for m in SCALAR_ORDER if isinstance(tm.get(m), int | float)]


def _spread(values: list[float]) -> tuple[float, float, str]:
    """(mean, sample std, ``mean ± std``) of the members' values (NaN where undefined)."""
    mean = statistics.fmean(values) if values else float("nan")
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, std, mean_std(mean, std)


def ensemble_vs_members(root: Path) -> pd.DataFrame:
    """Per split the ensemble was scored on and per metric: its members' mean ± std on the same samples
    and the ensemble's score."""
    rows = []
    for split in RunPaths(Path(root)).evaluated_splits():
        ensemble = read_json(RunPaths(Path(root)).metrics(split))
        members = list(ensemble.get("members", {}).values())
        for name in _metric_names(ensemble):
            mean, _, shown = _spread([m[name] for m in members if name in m])
            value = metric_value(ensemble, name)
            rows.append(
                {"split": split, "metric": name, "members": len(members), "member mean ± std": shown}
                | {"ensemble": value, "gain": value - mean}
            )
    return pd.DataFrame(rows)


def side_by_side(root: Path, split: str) -> pd.DataFrame:
    """Two rows for a terminal table: the members' mean ± std and the ensemble, on the primary task's
    scores (``run``, ``split`` and one column per metric, as the CLI's tables show them)."""
    ensemble = read_json(RunPaths(Path(root)).metrics(split))
    members = list(ensemble.get("members", {}).values())
    primary = ensemble.get("primary_task")
    names = [m for m in SCALAR_ORDER if isinstance(ensemble.get(m), int | float)]
    spread = {m: _spread([x[f"{primary}.{m}"] for x in members if f"{primary}.{m}" in x])[2] for m in names}
    rows = [
        {"run": f"members, mean ± std ({len(members)})", "split": split, **spread},
        {"run": "ensemble", "split": split, **{m: float(ensemble[m]) for m in names}},
    ]
    return pd.DataFrame(rows)


def write_report(root: Path, table: pd.DataFrame) -> Path:
    """The ensemble's ``report.md``: its members, and its scores beside theirs."""
    manifest = read_manifest(root)
    lines = [
        f"# Ensemble {manifest.name}",
        "",
        f"{len(manifest.members)} members ({', '.join(manifest.members)}), written by {manifest.source or 'hand'}. "
        "Prediction: the mean of the members' calibrated class probabilities (each member's validation-fitted "
        "temperature applied first), or of their values (regression).",
        "",
        "## Single run vs ensemble",
        "",
        "`member mean ± std`: the members' own scores on the same samples, scored in the same pass (mean ± "
        "sample std over `members` runs); `gain`: the ensemble's score minus that mean.",
        "",
        markdown_table(list(table.columns), table.values.tolist(), [False, False, True, True, True, True])
        if len(table)
        else "Not scored yet: `affectfusion test ENSEMBLE --split SPLIT`.",
    ]
    path = RunPaths(Path(root)).report
    write_text(path, "\n".join(lines) + "\n")
    return path
