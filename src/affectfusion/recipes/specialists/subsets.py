"""Scores per presence pattern (text-only, text+image, ...) for the fusion and each specialist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from affectfusion.evaluation.report import fmt_value, markdown_table
from affectfusion.evaluation.selection import default_monitor, metric_mode
from affectfusion.io import write_csv, write_json, write_text
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.specialists.config import SpecialistsConfig
from affectfusion.recipes.specialists.export import specialist_dataset
from affectfusion.rundir import SpecialistsPaths, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import Predictions, predict, score


def pattern_name(modalities: list[str]) -> str:
    """``text-only`` for one modality, else ``text+image`` (in the config's modality order)."""
    return f"{modalities[0]}-only" if len(modalities) == 1 else "+".join(modalities)


def take(preds: Predictions, idx: np.ndarray | list[int]) -> Predictions:
    """The rows ``idx`` of ``preds``, in that order."""
    idx = np.asarray(idx, dtype=np.int64)
    return Predictions(
        ids=[preds.ids[i] for i in idx],
        groups=[preds.groups[i] for i in idx],
        sources=[preds.sources[i] for i in idx],
        y_true={k: v[idx] for k, v in preds.y_true.items()},
        pred={k: v[idx] for k, v in preds.pred.items()},
        proba={k: v[idx] for k, v in preds.proba.items()},
        thresholds=dict(preds.thresholds),
    )


def score_subsets(cfg: SpecialistsConfig, out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """split -> subset -> model (``fusion`` or a specialist's modality) -> metrics.

    Subsets are ``all`` plus every presence pattern found in the split. A specialist is scored on a
    subset only if every sample of it has the specialist's modality.
    """
    fusion = read_run(SpecialistsPaths(out).fusion)
    fusion_model = load_model(fusion)
    specialists = {m: read_run(SpecialistsPaths(out).specialist(m)) for m in cfg.modalities}
    spec_models = {m: load_model(run) for m, run in specialists.items()}
    splits = [cfg.data.val_split] + ([cfg.data.test_split] if cfg.data.test_split else [])
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for split in splits:
        ds = load_dataset(fusion.config, split, modalities=fusion.modalities)
        fused = predict(fusion_model, ds, fusion.scalers)
        has = {m: np.array([m in s.features for s in ds.samples]) for m in cfg.modalities}
        own: dict[str, Predictions] = {}
        for m, run in specialists.items():
            raw = specialist_dataset(run, split)
            own[m] = predict(spec_models[m], raw, run.scalers)
        patterns = {tuple(m for m in cfg.modalities if has[m][i]) for i in range(len(ds))}
        ordered = sorted(patterns, key=lambda p: (len(p), [cfg.modalities.index(m) for m in p]))
        subsets: dict[str, tuple[tuple[str, ...], np.ndarray]] = {"all": ((), np.ones(len(ds), dtype=bool))}
        for p in ordered:
            mask = np.all([has[m] if m in p else ~has[m] for m in cfg.modalities], axis=0)
            subsets[pattern_name(list(p))] = (p, mask)
        results[split] = {}
        for name, (_, mask) in subsets.items():
            part = take(fused, np.flatnonzero(mask))
            entry = {"fusion": score(part, cfg.tasks, split)}
            for m in cfg.modalities:
                if has[m][mask].all():
                    row_of = {sid: i for i, sid in enumerate(own[m].ids)}
                    entry[m] = score(take(own[m], [row_of[sid] for sid in part.ids]), cfg.tasks, split)
            results[split][name] = entry
    return results


def _primary(cfg: SpecialistsConfig) -> tuple[str, str]:
    """(main metric, second metric) of the primary task, as the ablation reports them."""
    task = cfg.tasks[0]
    main = default_monitor(task)
    return main, "accuracy" if task.type != "regression" else "ccc"


def subsets_frames(cfg: SpecialistsConfig, results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table: one row per split, subset and model with every scalar metric; wide table:
    one row per split and subset, the main metric per model and the fusion's gain)."""
    main, second = _primary(cfg)
    better = metric_mode(main)
    long_rows, wide_rows = [], []
    for split, subsets in results.items():
        for subset, models in subsets.items():
            for model, metrics in models.items():
                scalars = {k: v for k, v in metrics.items() if k not in ("split", "n", "primary_task") and _scalar(v)}
                long_rows.append({"split": split, "subset": subset, "model": model, "n": metrics["n"], **scalars})
            fused = models["fusion"].get(main)
            row = {
                "split": split,
                "subset": subset,
                "n": models["fusion"]["n"],
                f"fusion {main}": fused,
                f"fusion {second}": models["fusion"].get(second),
            }
            spec_values = []
            for m in cfg.modalities:
                value = models[m].get(main) if m in models else None
                row[f"{m} {main}"] = value
                if value is not None:
                    spec_values.append(value)
            gain = None
            if spec_values and fused is not None:
                gain = fused - max(spec_values) if better == "max" else min(spec_values) - fused
            row["gain vs best specialist"] = gain
            wide_rows.append(row)
    return pd.DataFrame(long_rows), pd.DataFrame(wide_rows)


def _scalar(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def write_subsets(cfg: SpecialistsConfig, out: Path, results: dict) -> pd.DataFrame:
    paths = SpecialistsPaths(out)
    long, wide = subsets_frames(cfg, results)
    write_json(paths.subsets_json, results)
    write_csv(long, paths.subsets_csv)
    numeric = [pd.api.types.is_numeric_dtype(wide[c]) for c in wide.columns]
    table = markdown_table(list(wide.columns), wide.values.tolist(), numeric)
    main, _ = _primary(cfg)
    text = (
        f"# {cfg.name}: scores per modality subset\n\n"
        f"Primary task `{cfg.tasks[0].name}`. Each specialist is scored on the subsets whose samples all have "
        f"its modality; the gain is the fusion's {main} minus the best such specialist's (positive = fusion "
        "helps).\n\n" + table + "\n"
    )
    write_text(paths.subsets_report, text)
    return wide


def print_subsets(wide: pd.DataFrame, title: str, console: Console) -> None:
    table = Table(title=title)
    for col in wide.columns:
        numeric = pd.api.types.is_numeric_dtype(wide[col])
        table.add_column(col, justify="right" if numeric else "left")
    for row in wide.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) and np.isfinite(v) else fmt_value(v) for v in row))
    console.print(table)
