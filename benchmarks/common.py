"""Shared by the benchmarks: what each records about the machine it ran on (timings mean little without it),
and the steps several of them take (train a config, turn a config's features into arrays for a baseline)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    """Versions, CPUs and the load average, taken when the benchmark starts."""
    import torch

    import affectfusion

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "affectfusion_version": affectfusion.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def split_arrays(cfg: Any, split: str) -> tuple[Any, dict[str, Any], list[str]]:
    """One split as a classic baseline sees it: ``X [N, D]``, targets per task, sample ids.

    Goes through ``load_dataset`` with the config's own adapter, extractors and feature store, so a
    baseline is fitted on exactly the features (and the same kept samples) the toolkit model trains
    on, and reuses the cache instead of extracting again. Each modality is mean-pooled over time and
    the modalities are concatenated in sorted order; a sample lacking one is an error (a baseline has
    no notion of a missing modality). Targets are encoded as for training: class indices, floats
    (NaN = unlabelled) or multi-hot rows (NaN rows = unlabelled).
    """
    import numpy as np

    from affectfusion.errors import AffectFusionError
    from affectfusion.pipeline import load_dataset

    ds = load_dataset(cfg, split)
    names = sorted(ds.modalities)
    rows = []
    for s in ds.samples:
        absent = [m for m in names if m not in s.features]
        if absent:
            raise AffectFusionError(f"{ds.name}: sample {s.id!r} lacks modality {absent[0]!r}; a baseline needs all")
        rows.append(np.concatenate([s.features[m].mean(axis=0) for m in names]))
    targets: dict[str, Any] = {}
    for task in cfg.tasks:
        values = [s.targets.get(task.name) for s in ds.samples]
        if task.type == "multilabel":
            k = len(task.classes or [])
            targets[task.name] = np.stack([np.full(k, np.nan) if v is None else v for v in values]).astype(np.float64)
        elif task.type == "regression":
            targets[task.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            targets[task.name] = np.array([-1 if v is None else v for v in values], dtype=np.int64)
    return np.stack(rows).astype(np.float64), targets, [s.id for s in ds.samples]


def train_config(config: str, overrides: dict[str, Any], run_dir: Path, threads: int) -> dict[str, Any]:
    """Train a config through the toolkit's own Trainer (what ``affectfusion train`` runs) into ``run_dir``.

    Returns the metrics ``fit`` computed for the validation and test splits with the best (by dev)
    checkpoint, plus wall time, parameter count, epochs run and the best epoch.
    """
    import torch
    from rich.console import Console

    from affectfusion.config import load_config
    from affectfusion.io import read_json, read_jsonl
    from affectfusion.training.trainer import Trainer

    torch.set_num_threads(threads)
    cfg = load_config(config, {"train.progress": False, **overrides})
    t0 = time.perf_counter()
    metrics = Trainer(cfg, run_dir, Console(stderr=True, quiet=True)).fit(overwrite=True)
    history = list(read_jsonl(run_dir / "history.jsonl"))
    return {
        "seed": cfg.train.seed,
        "seconds": time.perf_counter() - t0,
        "n_parameters": read_json(run_dir / "meta.json")["n_parameters"],
        "epochs_run": len(history),
        "best_epoch": read_json(run_dir / "checkpoints" / "best.json").get("best_epoch"),
        "metrics": metrics,
    }


def mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample std (None for a single value) of one metric over seeds."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


RESULTS = Path(__file__).resolve().parent / "results"


def seeded_args(
    argv: list[str] | None, *, name: str, description: str, data: Path, data_help: str, config: str, quick: bool
) -> argparse.Namespace:
    """The flags every "shipped config (seeds) vs classic baseline" benchmark takes.

    ``--out`` defaults to ``results/<name>.json`` (``<name>_quick.json`` with ``--quick``, which
    also means one seed), so a smoke run never overwrites measured results.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=data, help=data_help)
    p.add_argument("--config", default=config, help=f"config name or YAML path (default: the shipped {config})")
    p.add_argument("--seeds", type=int, default=3, help="seeds for the toolkit model (train.seed, +1, ...)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: small models, shared cores)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON results file (default {RESULTS.name}/{name}.json)")
    p.add_argument("--runs-dir", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    if quick:
        p.add_argument("--quick", action="store_true", help="smoke run: shrunk data copy, 1 seed, 2 epochs")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    args.quick = getattr(args, "quick", False)
    if args.quick:
        args.seeds = 1
    args.out = args.out or RESULTS / (f"{name}_quick.json" if args.quick else f"{name}.json")
    return args


def class_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy, macro and weighted F1 of single-label predictions (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted")),
    }
