"""EmoBank sentence valence / arousal / dominance: the shipped ``emobank_text`` config vs frozen MiniLM + ridge.

    .venv/bin/python benchmarks/emobank.py [--seeds N] [--data PATH] [--threads N] [--out FILE] [--quick]

Split (shared/data/emobank): train 7,563 sentences, dev 1,000 (the official dev), test_small 499 (drawn
from the official train, stratified by genre). Both systems are fitted on train; neither sees test_small
before reporting it.

(a) toolkit: the shipped ``emobank_text`` config (all-MiniLM-L6-v2 fine-tuned with LoRA, three regression
    heads), trained through the toolkit's Trainer, best epoch by the config's monitor on dev; once per seed.
(b) baseline: frozen 384-d MiniLM sentence embeddings (the ``minilm`` extractor, same feature store, same
    samples) -> RidgeCV, one alpha per target from {1e-3 .. 1e3} chosen by leave-one-out error on train.

Pearson r and MAE per target on dev and test_small; prints a table and writes JSON (default
``benchmarks/results/emobank.json``). Ratings are 1-5 but cluster near the midpoint (std 0.35 / 0.26 /
0.21), so MAE differences are small in absolute terms; r is the usual headline metric.

``--quick``: one seed, 2 epochs, on a shrunk copy of the data (300 / 150 / 150 sentences) in a temp dir,
results to ``emobank_quick.json``: a smoke test of the whole script, not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import environment, mean_std, seeded_args, split_arrays, train_config  # benchmarks/ is on sys.path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "emobank"
CONFIG = "emobank_text"
SPLITS = ("dev", "test_small")
METRICS = ("pearson_r", "mae")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
QUICK_ROWS = {"train": 300, "dev": 150, "test_small": 150}
# The baseline's view of the config: frozen sentence embeddings, whatever the config fine-tunes.
FROZEN_MINILM = {"data.extract": {"text": {"name": "minilm"}}, "model.encoder": {"name": "mean"}, "model.encoders": {}}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    return seeded_args(
        argv,
        name="emobank",
        description="EmoBank V/A/D regression: shipped emobank_text config vs MiniLM + ridge",
        data=DEFAULT_DATA,
        data_help="emobank folder (train.csv, dev.csv, ...)",
        config=CONFIG,
        quick=True,
    )


def shrink_copy(data: Path, dest: Path) -> Path:
    """The first rows of each split file, for --quick (same layout, so the same adapter reads it)."""
    import pandas as pd

    dest.mkdir(parents=True, exist_ok=True)
    for split, n in QUICK_ROWS.items():
        pd.read_csv(data / f"{split}.csv", dtype=str, keep_default_na=False).head(n).to_csv(
            dest / f"{split}.csv", index=False
        )
    return dest


def ridge_baseline(cfg: Any) -> dict[str, Any]:
    """Frozen MiniLM embeddings -> RidgeCV (alpha per target by leave-one-out on train)."""
    from sklearn.linear_model import RidgeCV

    from affectfusion.evaluation.metrics import regression_metrics

    tasks = [t.name for t in cfg.tasks]
    x_train, y_train, _ = split_arrays(cfg, cfg.data.train_split)
    y = np.stack([y_train[t] for t in tasks], axis=1)
    keep = np.isfinite(y).all(axis=1)
    t0 = time.perf_counter()
    model = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True).fit(x_train[keep], y[keep])
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {}
    n = {cfg.data.train_split: int(keep.sum())}
    for split in SPLITS:
        x, ys, _ = split_arrays(cfg, split)
        n[split] = len(x)
        pred = model.predict(x)
        per_task = {}
        for j, task in enumerate(tasks):
            labelled = np.isfinite(ys[task])
            m = regression_metrics(ys[task][labelled], pred[labelled, j])
            per_task[task] = {**{k: m[k] for k in METRICS}, "n": m["n"]}
        metrics[split] = per_task
    return {
        "alphas": dict(zip(tasks, np.atleast_1d(model.alpha_).tolist(), strict=True)),
        "n": n,
        "fit_seconds": seconds,
        "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = args.data.expanduser().resolve()
    if not all((data / f"{s}.csv").is_file() for s in ("train", *SPLITS)):
        print(
            f"error: EmoBank folder not found or without train/dev/test_small.csv: {data} (pass --data)",
            file=sys.stderr,
        )
        sys.exit(2)

    from rich.console import Console
    from rich.table import Table

    from affectfusion.config import load_config
    from affectfusion.io import write_json

    env = environment()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emobank_bench_") as tmp:
        root = shrink_copy(data, Path(tmp) / "data") if args.quick else data
        overrides: dict[str, Any] = {"data.root": str(root), "train.progress": False}
        if args.quick:
            overrides["train.epochs"] = 2
        cfg = load_config(args.config, overrides)
        tasks = [t.name for t in cfg.tasks]
        print("MiniLM + RidgeCV baseline ...", file=sys.stderr)
        baseline = ridge_baseline(load_config(args.config, {**overrides, **FROZEN_MINILM}))
        print(f"toolkit config {cfg.name!r}, {args.seeds} seed(s) ...", file=sys.stderr)
        runs_dir = (args.runs_dir or Path(tmp) / "runs").resolve()
        runs = []
        for seed in range(cfg.train.seed, cfg.train.seed + args.seeds):
            run = train_config(args.config, {**overrides, "train.seed": seed}, runs_dir / f"seed{seed}", args.threads)
            run["metrics"] = {
                s: {t: {k: run["metrics"][s]["tasks"][t][k] for k in (*METRICS, "n")} for t in tasks} for s in SPLITS
            }
            runs.append(run)
            dev = run["metrics"]["dev"]
            print(
                f"  seed {seed}: dev r "
                + " / ".join(f"{dev[t]['pearson_r']:.3f}" for t in tasks)
                + f" ({run['seconds']:.0f}s, {run['epochs_run']} epochs, best {run['best_epoch']})",
                file=sys.stderr,
            )
    toolkit = {
        s: {t: {k: mean_std([r["metrics"][s][t][k] for r in runs]) for k in METRICS} for t in tasks} for s in SPLITS
    }

    table = Table(
        title="EmoBank sentence V/A/D regression ("
        + "; ".join(f"{split} {n:,}" for split, n in baseline["n"].items())
        + (") [QUICK]" if args.quick else ")"),
        caption=f"Pearson r and MAE (1-5 scale); toolkit: mean ± std over {args.seeds} seed(s)",
    )
    table.add_column("system")
    table.add_column("split")
    for t in tasks:
        table.add_column(f"{t} r", justify="right")
        table.add_column(f"{t} MAE", justify="right")

    def cell(stat: dict[str, float | None]) -> str:
        return f"{stat['mean']:.3f}" + (f" ± {stat['std']:.3f}" if stat["std"] is not None else "")

    for s in SPLITS:
        table.add_row(f"toolkit: {cfg.name}", s, *(cell(toolkit[s][t][k]) for t in tasks for k in METRICS))
        table.add_row("MiniLM + RidgeCV", s, *(f"{baseline['metrics'][s][t][k]:.3f}" for t in tasks for k in METRICS))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    beats = {
        s: {t: toolkit[s][t]["pearson_r"]["mean"] > baseline["metrics"][s][t]["pearson_r"] for t in tasks}
        for s in SPLITS
    }
    print(
        "toolkit mean r beats ridge: "
        + "; ".join(f"{s} " + ", ".join(f"{t} {'yes' if b else 'no'}" for t, b in v.items()) for s, v in beats.items()),
        file=sys.stderr,
    )
    report = {
        "benchmark": "emobank",
        "quick": args.quick,
        "environment": {**env, "torch_threads": args.threads},
        "settings": {
            "data": str(data),
            "config": cfg.to_dict(),
            "seeds": [r["seed"] for r in runs],
            "selection": "toolkit: best epoch by the config's early-stopping monitor on dev; "
            "ridge: alpha per target by leave-one-out on train",
            "baseline": {
                "features": "frozen minilm sentence embeddings",
                "model": "RidgeCV",
                "alphas": list(RIDGE_ALPHAS),
            },
        },
        "toolkit": {"summary": toolkit, "runs": runs},
        "ridge_baseline": baseline,
        "toolkit_beats_baseline_r": beats,
        "total_seconds": time.perf_counter() - t_start,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
