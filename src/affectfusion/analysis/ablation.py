"""Modality ablation (P3): how well does every non-empty subset of a config's modalities do?

Two modes answer two questions:

* ``retrain`` trains one model per subset (``model.modalities`` = the subset): what the data in
  those modalities can reach on its own.
* ``mask`` trains the full model once and evaluates it with the other modalities marked missing
  (:func:`~affectfusion.analysis.perturb.keep_only`): what a deployed model does when modalities
  go missing. It is much cheaper, but a model trained without modality dropout may never have
  learnt to cope with a missing modality.

Each (subset, seed) run is an ordinary run directory under ``<out>/``, so an interrupted ablation
resumes where it stopped and finished runs are reused. Scores are on ``data.test_split`` (else
the validation split) for the primary task's metrics, see :func:`primary_metrics`.

The *effect* of a modality is the mean over subsets S without it of metric(S + m) - metric(S),
a paired difference (same seed, same other modalities), averaged over seeds for its mean and std.
For a metric where lower is better (rmse) a helpful modality has a negative effect.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from affectfusion.analysis.perturb import keep_only
from affectfusion.config import RunConfig, TaskConfig, apply_overrides, validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import format_table
from affectfusion.evaluation.html import write_report
from affectfusion.evaluation.metrics import metric_value
from affectfusion.evaluation.plots import save_figure
from affectfusion.evaluation.selection import default_monitor, metric_mode
from affectfusion.io import write_csv, write_json, write_text
from affectfusion.pipeline import config_modalities, load_dataset
from affectfusion.recipes.fusion.recipe import train_config
from affectfusion.rundir import AblationPaths, read_metrics, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict, score

MODES = ("retrain", "mask")


def primary_metrics(task: TaskConfig) -> list[str]:
    """Metrics the analyses report for the primary task; the first is the one plotted and sorted by.

    It is the trainer's default monitor (macro F1 / RMSE), so an analysis ranks models the way
    model selection does; accuracy / micro F1 / CCC are kept alongside as the familiar second view.
    """
    main = default_monitor(task)
    return [main, {"classification": "accuracy", "multilabel": "micro_f1"}.get(task.type, "ccc")]


def subset_name(subset: tuple[str, ...]) -> str:
    return "+".join(subset)


def modality_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, each in the config's modality order."""
    return [c for k in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, k)]


def derived_config(cfg: RunConfig, name: str, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` without its variants (the ablation is of the config's own fusion), with ``overrides``."""
    raw = apply_overrides({**cfg.to_dict(), "variants": None, "name": name}, overrides)
    return validate(raw, f"ablation config {name!r}")


def _train(cfg: RunConfig, run_dir: Path, overwrite: bool) -> None:
    train_config(cfg, run_dir, overwrite)


def _scores_retrain(
    cfg: RunConfig, out: Path, subsets: list[tuple[str, ...]], seeds: list[int], split: str, overwrite: bool
) -> dict[str, list[dict]]:
    """One trained model per subset and seed; its own evaluation on ``split`` (written by the trainer)."""
    scores: dict[str, list[dict]] = {}
    for subset in subsets:
        name = subset_name(subset)
        for seed in seeds:
            run_dir = AblationPaths(out).run(name, seed)
            overrides = {"model.modalities": list(subset), "train.seed": seed}
            _train(derived_config(cfg, f"{cfg.name}/{name}/seed{seed}", overrides), run_dir, overwrite)
            scores.setdefault(name, []).append(read_metrics(run_dir, split))
    return scores


def _scores_mask(
    cfg: RunConfig, out: Path, subsets: list[tuple[str, ...]], seeds: list[int], split: str, overwrite: bool
) -> dict[str, list[dict]]:
    """One full model per seed, scored with all but each subset's modalities marked missing."""
    scores: dict[str, list[dict]] = {}
    for seed in seeds:
        run_dir = AblationPaths(out).run("full", seed)
        _train(derived_config(cfg, f"{cfg.name}/full/seed{seed}", {"train.seed": seed}), run_dir, overwrite)
        run = read_run(run_dir)
        model = load_model(run)
        ds = load_dataset(run.config, split, modalities=run.modalities)
        for subset in subsets:
            preds = predict(model, ds, run.scalers, transform=keep_only(subset))
            scores.setdefault(subset_name(subset), []).append(score(preds, run.config.tasks, split))
    return scores


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (NaN for a single value: one seed says nothing about spread)."""
    arr = np.asarray(values, dtype=float)
    return float(np.mean(arr)), float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan


def modality_effects(
    values: dict[tuple[str, ...], dict[str, list[float]]], modalities: list[str], metrics: list[str]
) -> pd.DataFrame:
    """Per modality and metric: mean over subsets S without it of metric(S + m) - metric(S), per seed,
    then mean and std over seeds. NaN when there is no such pair (a single modality)."""
    rows = []
    for m in modalities:
        pairs = [(with_m, s) for s in values if m not in s for with_m in values if set(with_m) == set(s) | {m}]
        row: dict[str, Any] = {"modality": m, "n_pairs": len(pairs)}
        for metric in metrics:
            per_seed = (
                np.mean([np.subtract(values[w][metric], values[s][metric]) for w, s in pairs], axis=0)
                if pairs
                else [math.nan]
            )
            row[f"{metric}_effect_mean"], row[f"{metric}_effect_std"] = mean_std(list(per_seed))
        rows.append(row)
    return pd.DataFrame(rows)


def _plot_bars(labels: list[str], means: list[float], stds: list[float], path: Path, xlabel: str, title: str) -> Path:
    """Horizontal bars, first label on top, sample-std error bars (none for one seed)."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5))
    y = np.arange(len(labels))[::-1]
    xerr = None if all(math.isnan(s) for s in stds) else np.nan_to_num(stds)
    ax.barh(y, means, xerr=xerr, capsize=3, color="C0", alpha=0.85)
    for yi, v, sd in zip(y, means, stds, strict=True):
        if not math.isfinite(v):
            continue
        # The label sits beyond the bar's end and its error bar, on the side the bar points to.
        reach = abs(v) + (sd if xerr is not None and math.isfinite(sd) else 0.0)
        side = 1 if v >= 0 else -1
        ax.annotate(
            f"{v:.3f}",
            (side * reach, yi),
            xytext=(6 * side, 0),
            textcoords="offset points",
            ha="left" if side > 0 else "right",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, labels)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel=xlabel, title=title)
    ax.margins(x=0.15)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


@dataclass
class AblationResult:
    table: pd.DataFrame  # one row per subset, best main metric first
    effects: pd.DataFrame  # one row per modality
    metrics: list[str]  # first = main
    split: str
    out_dir: Path
    report: Path


def run_ablation(
    cfg: RunConfig, out: Path, mode: str = "retrain", seeds: list[int] | None = None, overwrite: bool = False
) -> AblationResult:
    """Score every non-empty modality subset of ``cfg`` (see the module docstring) and write
    ablation.csv/.json/.md/.png, ablation_effect.png and report.html into ``out``."""
    if mode not in MODES:
        raise AffectFusionError(f"unknown ablation mode {mode!r}; choose one of {', '.join(MODES)}")
    seeds = list(dict.fromkeys(seeds if seeds else [cfg.train.seed]))
    modalities = config_modalities(cfg)
    subsets = modality_subsets(modalities)
    split = cfg.data.test_split or cfg.data.val_split
    metrics = primary_metrics(cfg.tasks[0])
    main = metrics[0]
    out = Path(out)
    collect = _scores_retrain if mode == "retrain" else _scores_mask
    scores = collect(cfg, out, subsets, seeds, split, overwrite)

    values = {s: {m: [metric_value(r, m) for r in scores[subset_name(s)]] for m in metrics} for s in subsets}
    rows = []
    for s in subsets:
        row: dict[str, Any] = {"subset": subset_name(s), "n_modalities": len(s), "mode": mode, "split": split}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std(values[s][m])
        for m in metrics:
            row.update({f"{m}_seed{k}": v for k, v in zip(seeds, values[s][m], strict=True)})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(f"{main}_mean", ascending=metric_mode(main) == "min", kind="stable")
    table = table.reset_index(drop=True)
    effects = modality_effects(values, modalities, metrics)
    effects = effects.sort_values(
        f"{main}_effect_mean", ascending=metric_mode(main) == "min", kind="stable", na_position="last"
    ).reset_index(drop=True)

    paths = AblationPaths(out)
    write_csv(table, paths.table)
    write_json(
        paths.summary,
        {
            "config": cfg.name,
            "mode": mode,
            "split": split,
            "primary_task": cfg.tasks[0].name,
            "metrics": metrics,
            "main_metric": main,
            "seeds": seeds,
            "modalities": modalities,
            "subsets": [
                {
                    "subset": subset_name(s),
                    "modalities": list(s),
                    "n_modalities": len(s),
                    "values": {m: dict(zip(map(str, seeds), values[s][m], strict=True)) for m in metrics},
                    "mean": {m: mean_std(values[s][m])[0] for m in metrics},
                    "std": {m: mean_std(values[s][m])[1] for m in metrics},
                }
                for s in subsets
            ],
            "effects": effects.to_dict(orient="records"),
        },
    )
    std_note = "std over seeds" if len(seeds) > 1 else "one seed, no error bars"
    bars = _plot_bars(
        list(table["subset"]),
        list(table[f"{main}_mean"]),
        list(table[f"{main}_std"]),
        paths.plot,
        f"{main} ({split})",
        f"{cfg.name}: modality ablation, {mode} ({std_note})",
    )
    effect_plot = _plot_bars(
        list(effects["modality"]),
        list(effects[f"{main}_effect_mean"]),
        list(effects[f"{main}_effect_std"]),
        paths.effect_plot,
        f"mean change of {main} when the modality is added",
        f"{cfg.name}: modality effect, {mode}",
    )
    summary_cols = ["subset", "n_modalities"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    effect_cols = ["modality", "n_pairs"] + [f"{m}_effect_{s}" for m in metrics for s in ("mean", "std")]
    intro = [
        f"Config {cfg.name}, mode {mode}, split {split}, primary task {cfg.tasks[0].name}, "
        f"seeds {', '.join(map(str, seeds))}; modalities {', '.join(modalities)}.",
        f"Sorted by {main} ({metric_mode(main)} is better). Effect of a modality: mean over subsets S without it "
        f"of {main}(S + modality) - {main}(S), paired per seed.",
    ]
    md = [
        f"# Modality ablation: {cfg.name}",
        "",
        *intro,
        "",
        format_table(table, summary_cols),
        "",
        f"![ablation]({paths.plot.name})",
        "",
        "## Modality effect",
        "",
        format_table(effects, effect_cols),
        "",
        f"![modality effect]({paths.effect_plot.name})",
    ]
    write_text(paths.markdown, "\n".join(md) + "\n")
    report = write_report(
        paths.report,
        f"Modality ablation: {cfg.name} ({mode})",
        intro,
        [
            ("Subsets", table),
            (f"{main} per subset", bars),
            ("Modality effect", effects[effect_cols]),
            (f"Effect on {main}", effect_plot),
        ],
    )
    return AblationResult(table, effects, metrics, split, out, report)
