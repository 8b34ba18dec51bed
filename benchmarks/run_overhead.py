"""A small run's fixed costs: how much of ``affectfusion train`` is start-up and how much is plotting.

    .venv/bin/python benchmarks/run_overhead.py [--config mosi] [--fusion low_rank] [--repeats 3] [--out FILE]

Each repeat is ``affectfusion train CONFIG --fusion FUSION`` in a fresh interpreter (one torch thread), as
a user would start it, with the figure writers of a run (training curves, confusion matrices, reliability
diagrams) timed where they are called. Reported per repeat and as the median: wall seconds from interpreter
start to the end of the command, seconds to import the CLI and the trainer, seconds spent drawing and
writing figures, and plotting's share of the wall time. Prints a table and writes JSON (default
``benchmarks/results/run_overhead.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, environment

PLOTTERS = (
    ("affectfusion.evaluation.report", "plot_training_curves"),
    ("affectfusion.evaluation.report", "plot_confusion_matrix"),
    ("affectfusion.evaluation.calibration", "plot_reliability"),
)


def child(args: list[str], started: float) -> dict[str, Any]:
    """Run one ``train`` in this interpreter with the figure writers timed; the timings as a dict."""
    import importlib

    t0 = time.perf_counter()
    from affectfusion.cli.app import app

    for module, _ in PLOTTERS:
        importlib.import_module(module)
    imported = time.perf_counter() - t0
    plotting = [0.0, 0]

    def timed(fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                plotting[0] += time.perf_counter() - t
                plotting[1] += 1

        return wrapper

    for module, name in PLOTTERS:
        mod = sys.modules[module]
        setattr(mod, name, timed(getattr(mod, name)))
    try:
        app(["train", *args], standalone_mode=False)
    finally:
        wall = time.time() - started
    return {"wall_s": wall, "import_s": imported, "plot_s": plotting[0], "figures": plotting[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mosi")
    parser.add_argument("--fusion", default="low_rank")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "run_overhead.json")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        started = float(args.child[0])
        print("RESULT " + json.dumps(child(args.child[1:], started)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            run_dir = Path(tmp) / f"run{i}"
            command = [sys.executable, __file__, "--child", str(time.time()), args.config]
            command += ["--fusion", args.fusion, "--out", str(run_dir), "--set", "train.threads=1"]
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"repeat {i} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            row = json.loads(lines[-1][len("RESULT ") :])
            row["plot_share"] = row["plot_s"] / row["wall_s"]
            rows.append(row)

    median = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "import_s", "plot_s", "plot_share")}
    print(f"affectfusion train {args.config} --fusion {args.fusion}: {args.repeats} fresh processes, one thread")
    print(f"{'repeat':>8} {'wall s':>8} {'import s':>9} {'plots s':>8} {'figures':>8} {'plot share':>11}")
    for i, r in enumerate(rows):
        timings = f"{r['wall_s']:8.2f} {r['import_s']:9.2f} {r['plot_s']:8.2f}"
        print(f"{i:>8} {timings} {r['figures']:8d} {r['plot_share']:10.1%}")
    print(
        f"{'median':>8} {median['wall_s']:8.2f} {median['import_s']:9.2f} {median['plot_s']:8.2f} "
        f"{'':8} {median['plot_share']:10.1%}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment(), "config": args.config, "fusion": args.fusion, "rows": rows}
    args.out.write_text(json.dumps({**result, "median": median}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
