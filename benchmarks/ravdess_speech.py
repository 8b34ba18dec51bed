"""RAVDESS 8-class speaker-independent speech emotion: the shipped ``ravdess_speech`` config vs eGeMAPS + SVM.

    .venv/bin/python benchmarks/ravdess_speech.py [--seeds N] [--data PATH] [--threads N] [--out FILE]

Split (shared/data/ravdess_speech_16k): train = actors 1-4 (240 files), dev = actors 5-6 (120),
test_small = actors 7-8 (120); no actor is in two splits. Both systems are fitted on train and
select on dev only (the model: best epoch by dev macro F1; the SVM: C by dev macro F1), then
report dev and test_small. The toolkit model is trained once per seed (mean ± std); the SVM is
deterministic.

Baseline: eGeMAPSv02 functionals (88-d, openSMILE) -> StandardScaler -> SVC (RBF, gamma "scale"),
C in {0.01, 0.1, 1, 10, 100}. Features come from the same feature store the config uses, so a
second run extracts nothing.

Dev has 120 files: one file is 0.8 points of accuracy, and a seed moves macro F1 by ~2 points.
Prints a table and writes JSON (default ``benchmarks/results/ravdess_speech.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import class_scores, environment, seeded_args  # benchmarks/ is on sys.path when a script runs

# Registration of the speech adapters and audio extractors (also for spawned extraction workers).
import affectfusion.data.speech
import affectfusion.extract.audio  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess_speech_16k"
CONFIG = "ravdess_speech"
SPLITS = ("dev", "test_small")
SVM_C = (0.01, 0.1, 1.0, 10.0, 100.0)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    return seeded_args(
        argv,
        name="ravdess_speech",
        description="RAVDESS speaker-independent 8-class: shipped ravdess_speech config vs eGeMAPS + SVM",
        data=DEFAULT_DATA,
        data_help="ravdess_speech_16k folder",
        config=CONFIG,
        quick=False,
    )


def svm_baseline(cfg: Any, data: Path) -> dict[str, Any]:
    """eGeMAPS functionals + StandardScaler + RBF SVC, C chosen by dev macro F1 (ties: smaller C)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from affectfusion.data import build_adapter
    from affectfusion.extract import FeatureStore, Item, build_extractor

    adapter = build_adapter(cfg.data)
    extractor = build_extractor("egemaps", {}, "baseline")
    store = FeatureStore(cfg.data.cache_dir)
    xy: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", *SPLITS):
        samples = adapter.load(data, split)
        feats, report = store.run(
            extractor, [Item(s.id, next(iter(s.raw.values())), s.source) for s in samples], progress=False
        )
        if report.failures:
            raise RuntimeError(f"eGeMAPS failed on {len(report.failures)} {split} files: {report.failures[0]}")
        xy[split] = (np.stack([feats[s.id] for s in samples]), np.array([s.targets["emotion"] for s in samples]))
    per_c = []
    for c in SVM_C:
        model = make_pipeline(StandardScaler(), SVC(C=c, kernel="rbf", gamma="scale")).fit(*xy["train"])
        per_c.append({"C": c, **{split: class_scores(xy[split][1], model.predict(xy[split][0])) for split in SPLITS}})
    best = max(per_c, key=lambda r: r["dev"]["macro_f1"])  # max() keeps the first (smallest C) of ties
    return {"chosen_C": best["C"], "metrics": {split: best[split] for split in SPLITS}, "per_C": per_c}


def toolkit_runs(args: argparse.Namespace, data: Path, runs_dir: Path) -> list[dict[str, Any]]:
    """Train the config once per seed; dev and test_small scores of the best (dev) checkpoint."""
    import torch
    from rich.console import Console

    from affectfusion.config import load_config
    from affectfusion.io import read_json
    from affectfusion.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    base = load_config(args.config, {"data.root": str(data)})
    runs = []
    for seed in range(base.train.seed, base.train.seed + args.seeds):
        cfg = load_config(args.config, {"data.root": str(data), "train.seed": seed, "train.progress": False})
        run_dir = runs_dir / f"seed{seed}"
        t0 = time.perf_counter()
        metrics = Trainer(cfg, run_dir, Console(stderr=True, quiet=True)).fit(overwrite=True)
        meta = read_json(run_dir / "meta.json")
        run = {
            "seed": seed,
            "seconds": time.perf_counter() - t0,
            "n_parameters": meta["n_parameters"],
            "metrics": {s: {k: metrics[s]["tasks"]["emotion"][k] for k in ("accuracy", "macro_f1")} for s in SPLITS},
        }
        runs.append(run)
        m = run["metrics"]
        print(
            f"  {cfg.name} seed {seed}: dev macro F1 {m['dev']['macro_f1']:.3f}, "
            f"test_small {m['test_small']['macro_f1']:.3f} ({run['seconds']:.0f}s)",
            file=sys.stderr,
        )
    return runs


def _mean_std(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = args.data.expanduser().resolve()
    if not (data / "labels.csv").is_file():
        print(f"error: RAVDESS folder not found or without labels.csv: {data} (pass --data PATH)", file=sys.stderr)
        sys.exit(2)

    from rich.console import Console
    from rich.table import Table

    from affectfusion.config import load_config
    from affectfusion.io import write_json

    cfg = load_config(args.config, {"data.root": str(data)})
    env = environment()
    t0 = time.perf_counter()
    print("eGeMAPS + SVM baseline ...", file=sys.stderr)
    baseline = svm_baseline(cfg, data)
    print(f"toolkit config {cfg.name!r}, {args.seeds} seed(s) ...", file=sys.stderr)
    tmp = None if args.runs_dir else tempfile.TemporaryDirectory(prefix="ravdess_speech_")
    try:
        runs = toolkit_runs(args, data, (args.runs_dir or Path(tmp.name)).resolve())
    finally:
        if tmp is not None:
            tmp.cleanup()
    toolkit = {
        f"{split}_{k}": _mean_std([r["metrics"][split][k] for r in runs])
        for split in SPLITS
        for k in ("accuracy", "macro_f1")
    }

    table = Table(title="RAVDESS speech, 8 classes, speaker-independent (train actors 1-4, dev 5-6, test_small 7-8)")
    table.add_column("system")
    for split in SPLITS:
        table.add_column(f"{split} acc", justify="right")
        table.add_column(f"{split} macro F1", justify="right")

    def cell(stat: dict[str, float | None]) -> str:
        return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else "")

    table.add_row(
        f"toolkit: {cfg.name} ({args.seeds} seeds)",
        *(cell(toolkit[f"{s}_{k}"]) for s in SPLITS for k in ("accuracy", "macro_f1")),
    )
    table.add_row(
        f"eGeMAPS + SVM (C={baseline['chosen_C']:g} by dev)",
        *(f"{100 * baseline['metrics'][s][k]:.1f}" for s in SPLITS for k in ("accuracy", "macro_f1")),
    )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    beats = {s: toolkit[f"{s}_macro_f1"]["mean"] > baseline["metrics"][s]["macro_f1"] for s in SPLITS}
    print(
        "toolkit mean macro F1 beats the SVM: " + ", ".join(f"{s} {'yes' if b else 'no'}" for s, b in beats.items()),
        file=sys.stderr,
    )
    report = {
        "benchmark": "ravdess_speech",
        "environment": {**env, "torch_threads": args.threads},
        "settings": {
            "data": str(data),
            "config": cfg.to_dict(),
            "seeds": [r["seed"] for r in runs],
            "selection": "dev only: best epoch (model) and C (SVM) by dev macro F1",
            "svm": {
                "features": "egemaps (eGeMAPSv02 functionals, 88-d)",
                "scaler": "StandardScaler",
                "kernel": "rbf",
                "C_grid": list(SVM_C),
            },
        },
        "toolkit": {"summary": toolkit, "runs": runs},
        "svm_baseline": baseline,
        "toolkit_beats_baseline": beats,
        "total_seconds": time.perf_counter() - t0,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
