"""CMU-MOSI in video context: the shipped ``mosi`` (no context), ``mosi_context`` (fused vector -> GRU)
and ``mosi_mmmu_ba`` (per-modality GRUs -> bi-modal attention) configs, several seeds each.

    .venv/bin/python benchmarks/mosi_context.py [--configs mosi,mosi_context,mosi_mmmu_ba] [--seeds 3]
                                                [--data PATH] [--threads 1] [--out FILE] [--runs-dir DIR]

Each config trains through the toolkit's own Trainer (``affectfusion train``'s code path) once per seed
(``train.seed`` = 0, 1, ...); its best checkpoint (the config's own rule) is scored on dev and test_small.
Prints accuracy and weighted F1 (mean ± std over seeds), the kept epochs, seconds per epoch and
parameters, and writes JSON (default ``benchmarks/results/mosi_context.json``).

**Saturated splits:** the 50-d features were learned with labels on every utterance of train, dev and
test_small (all from the official train videos), so both splits sit near 1.0 and cannot rank the
configs: this checks the pipeline, speed and size. The comparison that matters is on the official
test videos, which the team does not hold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import RESULTS, environment, mean_std, train_config  # benchmarks/ is on sys.path when a script runs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "cmu_mosi_unimodal"
CONFIGS = ("mosi", "mosi_context", "mosi_mmmu_ba")
SPLITS = ("dev", "test_small")
METRICS = ("accuracy", "weighted_f1")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cmu_mosi_unimodal folder (train/dev/test_small)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names or YAML paths")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config (train.seed 0, 1, ...)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=RESULTS / "mosi_context.json")
    p.add_argument("--runs-dir", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    return args


def run_config(config: str, args: argparse.Namespace, runs_dir: Path) -> dict[str, Any]:
    """Every seed of one config: per-seed scores, then mean ± std per split and metric."""
    from affectfusion.io import read_jsonl

    runs = []
    for seed in range(args.seeds):
        run_dir = runs_dir / f"{Path(config).stem}_s{seed}"
        overrides = {"data.root": str(args.data), "train.seed": seed}
        run = train_config(config, overrides, run_dir, args.threads)
        history = list(read_jsonl(run_dir / "history.jsonl"))
        run["seconds_per_epoch"] = statistics.fmean(h["seconds"] for h in history)
        run["metrics"] = {s: {k: run["metrics"][s][k] for k in (*METRICS, "n")} for s in SPLITS}
        print(
            f"  {config} seed {seed}: dev acc {run['metrics']['dev']['accuracy']:.3f}, best epoch "
            f"{run['best_epoch']} of {run['epochs_run']} ({run['seconds']:.0f}s)",
            file=sys.stderr,
        )
        runs.append(run)
    return {
        "config": config,
        "runs": runs,
        "summary": {s: {k: mean_std([r["metrics"][s][k] for r in runs]) for k in METRICS} for s in SPLITS},
        "best_epochs": [r["best_epoch"] for r in runs],
        "seconds_per_epoch": statistics.fmean(r["seconds_per_epoch"] for r in runs),
        "n_parameters": runs[0]["n_parameters"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json

    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mosi_context_") as tmp:
        runs_dir = (args.runs_dir or Path(tmp)).resolve()
        results = [run_config(c.strip(), args, runs_dir) for c in args.configs.split(",") if c.strip()]

    table = Table(
        title="CMU-MOSI binary sentiment, shipped configs (dev and test_small are SATURATED: pipeline check only)",
        caption=f"mean ± std over {args.seeds} seed(s); one torch thread",
    )
    for col in ("config", *(f"{s} {k}" for s in SPLITS for k in METRICS), "kept epochs", "s/epoch", "params"):
        table.add_column(col, justify="left" if col == "config" else "right")

    def cell(stat: dict[str, float | None]) -> str:
        return f"{stat['mean']:.3f}" + (f" ± {stat['std']:.3f}" if stat["std"] is not None else "")

    for r in results:
        table.add_row(
            r["config"],
            *(cell(r["summary"][s][k]) for s in SPLITS for k in METRICS),
            ", ".join(str(e) for e in r["best_epochs"]),
            f"{r['seconds_per_epoch']:.2f}",
            f"{r['n_parameters']:,}",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    report = {"environment": environment(), "seeds": args.seeds, "threads": args.threads, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
