"""Robustness of a trained run: its score as one modality gets noisier or goes missing more often.

Two curves per modality, on one split:

* **noise**: Gaussian noise added to the modality's features, its level in units of the
  training split's per-feature std (the model's own input-normalisation statistics), so 1.0 means
  "noise as large as the feature's natural spread" on any dataset (not for token ids, which have
  no such scale: a fine-tuned text encoder gets only the missing curve);
* **missing**: the modality marked missing for a random fraction of samples.

Each point is the mean (and sample std) over ``repeats`` seeded draws. Repeat ``r`` uses seed
``r`` at every level, so the curves use common random numbers: at rate 0.5 the samples dropped
are a superset of those dropped at 0.25, and the noise at level 2 is the level-1 draw doubled.
That makes the curves smooth in the level instead of jittering between draws. Unperturbed points
(level 0, rate 0) and rate 1 are deterministic and evaluated once.

Metrics are the primary task's :func:`~affectfusion.analysis.ablation.primary_metrics` (macro F1
and accuracy, or RMSE and CCC); the first is plotted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from affectfusion.analysis.ablation import mean_std, primary_metrics
from affectfusion.analysis.perturb import Transform, drop_at_rate, gaussian_noise
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.html import write_report
from affectfusion.evaluation.metrics import metric_value
from affectfusion.evaluation.plots import save_figure
from affectfusion.io import write_csv, write_json
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import HTML_REPORT, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict, score

PERTURBATIONS = {
    "noise": "Gaussian noise (x train-split feature std)",
    "missing": "missing rate (fraction of samples)",
}


@dataclass
class RobustnessResult:
    table: pd.DataFrame  # one row per modality, perturbation and level
    metrics: list[str]  # first = plotted
    split: str
    out_dir: Path
    report: Path


def _check_levels(levels: Sequence[float], what: str, upper: float | None) -> list[float]:
    out = sorted({float(v) for v in levels})
    if not out:
        raise AffectFusionError(f"no {what} levels given")
    bad = [v for v in out if not math.isfinite(v) or v < 0 or (upper is not None and v > upper)]
    if bad:
        bound = f"between 0 and {upper:g}" if upper is not None else "finite and >= 0"
        raise AffectFusionError(f"{what} levels must be {bound}, got {', '.join(f'{v:g}' for v in bad)}")
    return out


def run_robustness(
    run_dir: Path,
    modalities: list[str] | None = None,
    noise_levels: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    missing_rates: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    split: str | None = None,
    repeats: int = 3,
) -> RobustnessResult:
    """Noise and missing-rate curves for each of ``modalities`` (default: all the run has) on
    ``split`` (default: data.test_split, else the validation split); writes robustness.csv/.json,
    robustness_noise.png, robustness_missing.png and report.html into
    ``<run>/analysis/robustness_<split>/``."""
    run = read_run(run_dir)
    valid = list(run.modalities)
    modalities = list(dict.fromkeys(modalities or valid))
    unknown = [m for m in modalities if m not in valid]
    if unknown:
        raise AffectFusionError(f"unknown modality {', '.join(unknown)}; the run has: {', '.join(valid)}")
    if repeats < 1:
        raise AffectFusionError(f"repeats must be at least 1, got {repeats}")
    levels = {
        "noise": _check_levels(noise_levels, "noise", None),
        "missing": _check_levels(missing_rates, "missing-rate", 1.0),
    }
    split = split or run.config.data.test_split or run.config.data.val_split
    metrics = primary_metrics(run.config.tasks[0])
    model = load_model(run)
    ds = load_dataset(run.config, split, modalities=run.modalities)

    def evaluate(transform: Transform | None) -> list[float]:
        scored = score(predict(model, ds, run.scalers, transform=transform), run.config.tasks, split)
        return [metric_value(scored, m) for m in metrics]

    clean = evaluate(None)
    rows = []
    for m in modalities:
        std = getattr(model, f"in_std_{m}")
        for kind, values in levels.items():
            if kind == "noise" and model.raw_input(m):
                continue  # token ids (hf_lora) have no feature scale: only the missing-rate curve applies
            for level in values:
                deterministic = level == 0 or (kind == "missing" and level == 1)
                if level == 0:
                    draws = [clean]
                elif deterministic:
                    draws = [evaluate(drop_at_rate(m, 1.0))]
                elif kind == "noise":
                    draws = [evaluate(gaussian_noise(m, level, std, seed=r)) for r in range(repeats)]
                else:
                    draws = [evaluate(drop_at_rate(m, level, seed=r)) for r in range(repeats)]
                row: dict[str, Any] = {"modality": m, "perturbation": kind, "level": level, "repeats": len(draws)}
                for i, metric in enumerate(metrics):
                    mean, sd = mean_std([d[i] for d in draws])
                    row[f"{metric}_mean"], row[f"{metric}_std"] = mean, 0.0 if deterministic else sd
                rows.append(row)
    table = pd.DataFrame(rows)

    out = run.paths.analysis_dir(f"robustness_{split}")
    write_csv(table, out / "robustness.csv")
    write_json(
        out / "robustness.json",
        {
            "run": str(run.paths.root),
            "split": split,
            "n": len(ds.samples),
            "primary_task": run.config.tasks[0].name,
            "metrics": metrics,
            "repeats": repeats,
            "clean": dict(zip(metrics, clean, strict=True)),
            "rows": table.to_dict(orient="records"),
        },
    )
    where = f"{run.config.name}, {split}"
    plots = {
        kind: _plot_curves(table, kind, metrics[0], out / f"robustness_{kind}.png", where) for kind in PERTURBATIONS
    }
    intro = [
        f"Run {run.paths.root} ({run.config.name}), split {split} (n = {len(ds.samples)}), primary task "
        f"{run.config.tasks[0].name}; clean {metrics[0]} = {clean[0]:.4f}.",
        f"Each point: mean over {repeats} seeded repeats (std shown as a band); noise in units of the "
        "train-split feature std; a missing modality is marked absent for that fraction of samples.",
    ]
    report = write_report(
        out / HTML_REPORT,
        f"Robustness: {run.config.name} ({split})",
        intro,
        [
            (f"{metrics[0]} vs noise", plots["noise"]),
            (f"{metrics[0]} vs missing rate", plots["missing"]),
            ("All points", table),
        ],
    )
    return RobustnessResult(table, metrics, split, out, report)


def _plot_curves(table: pd.DataFrame, kind: str, metric: str, path: Path, where: str) -> Path:
    """One line per modality with a mean +- std band; the title names the run and split."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (modality, df) in enumerate(table[table["perturbation"] == kind].groupby("modality", sort=False)):
        x, y, sd = df["level"].to_numpy(), df[f"{metric}_mean"].to_numpy(), df[f"{metric}_std"].to_numpy()
        ax.plot(x, y, marker="o", ms=4, color=f"C{i}", label=str(modality))
        ax.fill_between(x, y - np.nan_to_num(sd), y + np.nan_to_num(sd), color=f"C{i}", alpha=0.2)
    ax.set(xlabel=PERTURBATIONS[kind], ylabel=metric, title=f"{where}: {metric} vs {kind}")
    ax.grid(alpha=0.3)
    ax.legend(title="perturbed modality")
    fig.tight_layout()
    return save_figure(fig, path)
