"""CPU contention: three demo trainings side by side with the toolkit's thread choice vs one thread forced.

    .venv/bin/python benchmarks/contention.py [--epochs 2] [--fusion cross_attention] [--out FILE]

Each training is ``affectfusion train demo`` (cross-attention fusion, ``--epochs`` epochs) in its own
process, as a user would start them. Three arms:

- ``auto``: ``train.threads: auto`` with ``OMP_NUM_THREADS`` unset (the toolkit chooses, see
  ``affectfusion.threads``);
- ``one``: ``train.threads: 1`` (one thread forced);
- ``all cores`` (with ``--all-cores``): ``train.threads`` = every usable core, what torch does by default
  (the collapse this benchmark guards against; on a busy machine it can take many minutes).

Each arm runs one training alone, then three at once. Reported: wall seconds per process (mean of the
three) and the training seconds summed from ``history.jsonl``. The targets: three ``auto`` trainings
side by side within 1.3x of three ``one`` trainings, and one ``auto`` training alone no slower than
one ``one`` training. Prints a table and writes JSON (default ``benchmarks/results/contention.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, environment  # benchmarks/ is on sys.path when a script runs

SRC = Path(__file__).resolve().parents[1] / "src"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--fusion", default="cross_attention")
    p.add_argument("--out", type=Path, default=RESULTS / "contention.json")
    p.add_argument("--all-cores", action="store_true", help="also run the all-cores (torch default) arm")
    return p.parse_args(argv)


def _train_many(n: int, threads: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start ``n`` demo trainings at once; wall and training seconds of each."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    procs = []
    for i in range(n):
        out = work / f"{threads}_{n}_{i}"
        cmd = [
            sys.executable,
            "-m",
            "affectfusion.cli",
            "train",
            "demo",
            "--out",
            str(out),
            "--overwrite",
            "--set",
            f"train.epochs={args.epochs}",
            "--set",
            f"model.fusion.name={args.fusion}",
            "--set",
            "train.early_stopping=null",
            "--set",
            "train.progress=false",
            "--set",
            f"train.threads={threads}",
        ]
        procs.append(
            (
                out,
                time.perf_counter(),
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            )
        )
    rows = []
    for out, t0, proc in procs:
        _, err = proc.communicate()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"training failed ({proc.returncode}): {err.decode()[-2000:]}")
        history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
        meta = json.loads((out / "meta.json").read_text())
        rows.append({"wall_s": wall, "train_s": sum(r["seconds"] for r in history), "threads": meta["threads"]})
    return {
        "processes": n,
        "wall_s": sum(r["wall_s"] for r in rows) / n,
        "train_s": sum(r["train_s"] for r in rows) / n,
        "threads_chosen": [r["threads"] for r in rows],
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json
    from affectfusion.threads import cpu_budget

    env = environment()
    cores = cpu_budget()
    arms = {"auto": "auto", "one": "1", **({"all cores": str(cores)} if args.all_cores else {})}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="contention_") as tmp:
        for name, threads in arms.items():
            for n in (1, 3):
                print(f"{name}: {n} training(s) at once ...", file=sys.stderr)
                results[f"{name}/{n}"] = _train_many(n, threads, args, Path(tmp))
    table = Table(title=f"demo ({args.fusion}, {args.epochs} epochs): seconds per training, {cores} usable cores")
    for col in ("threads", "alone wall", "alone train", "3 at once wall", "3 at once train", "slowdown x3"):
        table.add_column(col, justify="right")
    for name in arms:
        one, three = results[f"{name}/1"], results[f"{name}/3"]
        table.add_row(
            f"{name} ({','.join(map(str, one['threads_chosen'] + three['threads_chosen']))})",
            f"{one['wall_s']:.1f}",
            f"{one['train_s']:.1f}",
            f"{three['wall_s']:.1f}",
            f"{three['train_s']:.1f}",
            f"{three['train_s'] / one['train_s']:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    ratios = {
        "three_auto_over_three_one_train": results["auto/3"]["train_s"] / results["one/3"]["train_s"],
        "three_auto_over_three_one_wall": results["auto/3"]["wall_s"] / results["one/3"]["wall_s"],
        "alone_auto_over_alone_one_train": results["auto/1"]["train_s"] / results["one/1"]["train_s"],
    }
    if args.all_cores:
        ratios["three_all_cores_over_three_one_train"] = results["all cores/3"]["train_s"] / results["one/3"]["train_s"]
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}", file=sys.stderr)
    targets = {
        "three_side_by_side_within_1.3x": ratios["three_auto_over_three_one_train"] <= 1.3,
        "alone_no_slower_than_one_thread": ratios["alone_auto_over_alone_one_train"] <= 1.05,
    }
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in targets.items()), file=sys.stderr)
    report = {
        "benchmark": "contention",
        "environment": env,
        "settings": {"epochs": args.epochs, "fusion": args.fusion, "arms": arms, "usable_cores": cores},
        "results": results,
        "ratios": ratios,
        "targets": targets,
        "note": "alone: 5% tolerance for timing noise on a shared machine",
    }
    write_json(args.out, report)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
