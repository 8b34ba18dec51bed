"""Ensembles of seeds and of folds, served as one run, against the single runs they are made of.

    .venv/bin/python benchmarks/ensemble.py [--config ravdess_whisper] [--seeds 3] [--folds 7]
                                            [--group group] [--runs-dir DIR] [--out FILE]

(a) seeds: ``affectfusion train CONFIG --seeds 0,..,N-1``; the output folder is an ensemble run (the mean
    of the seeds' calibrated probabilities), scored on the config's validation and test splits.
(b) folds (``--folds K``, 0 = skip): ``affectfusion cv CONFIG --splits <train split> --group G --k K``;
    the K fold models (each trained on K-1 parts of the training speakers) are one ensemble, scored on the
    same validation and test splits, which no fold saw.

Nothing is selected here: every member and the ensemble are scored once, on the same samples, in the
same pass (``eval/<split>/metrics.json``, ``members``). Prints per split and system the members' mean ±
std next to the ensemble and writes JSON (default ``benchmarks/results/ensemble.json``). Run folders are
kept (``--runs-dir``, default ``runs/ensemble_benchmark``), so a second call only re-reads them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS, environment  # benchmarks/ is on sys.path

METRICS = ("accuracy", "macro_f1")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="seed and fold ensembles vs their single runs")
    p.add_argument("--config", default="ravdess_whisper", help="a fusion config (name or YAML path)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (train.seed)")
    p.add_argument("--folds", type=int, default=7, help="group k-fold over the training split (0: no fold ensemble)")
    p.add_argument("--group", default="group", help="the cv group column (default: the adapter's groups)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/ensemble_benchmark"))
    p.add_argument("--out", type=Path, default=RESULTS / "ensemble.json")
    return p.parse_args(argv)


def summarise(root: Path) -> dict[str, Any]:
    """Per scored split: n, and per primary-task metric the members' values and the ensemble's score."""
    from affectfusion.io import read_json
    from affectfusion.rundir import RunPaths

    out: dict[str, Any] = {}
    for split in RunPaths(root).evaluated_splits():
        metrics = read_json(RunPaths(root).metrics(split))
        task = metrics["primary_task"]
        members = metrics["members"]
        out[split] = {
            "n": metrics["n"],
            **{
                m: {"members": [v[f"{task}.{m}"] for v in members.values()], "ensemble": metrics[m]}
                for m in METRICS
                if m in metrics
            },
        }
    return out


def _cells(entry: dict[str, Any]) -> list[str]:
    """``members mean ± std`` and ``ensemble`` for one metric."""
    values = entry["members"]
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return [f"{statistics.fmean(values):.3f}{spread}", f"{entry['ensemble']:.3f}"]


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    from affectfusion.config import load_config
    from affectfusion.data.fold_plan import Protocol
    from affectfusion.recipes.cv import run_cv
    from affectfusion.runkinds import TrainRequest

    env = environment()
    results: dict[str, Any] = {"config": args.config, "environment": env, "systems": {}}
    start = time.perf_counter()
    seeds_dir = args.runs_dir / "seeds"
    request = TrainRequest.read(args.config, out=seeds_dir, seeds=list(range(args.seeds)))
    request.kind.train_run(request)
    results["systems"][f"{args.seeds} seeds"] = summarise(seeds_dir)
    if args.folds:
        cfg = load_config(args.config)
        folds_dir = args.runs_dir / "folds"
        run_cv(cfg, folds_dir, Protocol(group=args.group, k=args.folds), splits=[cfg.data.train_split], workers=1)
        results["systems"][f"{args.folds} folds of {cfg.data.train_split}"] = summarise(folds_dir)
    results["seconds"] = time.perf_counter() - start
    header = ["system", "split", "n", *(f"{m} {who}" for m in METRICS for who in ("members", "ensemble"))]
    print(f"\n{args.config}: members (mean ± std over them) vs their ensemble, on the same samples")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for system, splits in results["systems"].items():
        for split, entry in splits.items():
            cells = [c for m in METRICS for c in (_cells(entry[m]) if m in entry else ["-", "-"])]
            print("| " + " | ".join([system, split, str(entry["n"]), *cells]) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
