"""Cross-validation's fixed costs: per fold, the time outside epochs, with folds run in one process or in
reused worker processes.

    .venv/bin/python benchmarks/cv_overhead.py [--config mosi] [--k 4] [--workers 1,2] [--set KEY=VALUE ...]

Each setting is ``affectfusion cv CONFIG --k K --workers W`` in a fresh interpreter (``--overwrite``, so every
fold trains). Reported per setting, from its ``cv.json``: wall seconds of the whole command, and per fold the
wall seconds, seconds in epochs, seconds outside epochs (data check, evaluation, calibration, report) and the
start-up its worker paid once before its first fold (imports, the figure helper, torch._dynamo). Prints a
table and writes JSON (default ``benchmarks/results/cv_overhead.json``).
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


def run(config: str, k: int, workers: int, sets: list[str], out: Path) -> dict[str, Any]:
    """One ``affectfusion cv`` in a fresh interpreter; its timings."""
    cmd = [sys.executable, "-m", "affectfusion.cli", "cv", config, "--k", str(k), "--workers", str(workers)]
    cmd += ["--out", str(out), "--overwrite", "--set", "train.progress=false", *[f"--set={s}" for s in sets]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "cv.json").read_text())
    folds = summary["timings"]
    startup = {t["worker"]: t["worker_startup_s"] for t in folds if t.get("worker_startup_s") is not None}
    return {
        "workers": workers,
        "wall_s": wall,
        "folds": folds,
        "median_overhead_s": statistics.median(t["overhead_s"] for t in folds),
        "worker_startup_s": list(startup.values()),
        "primary_mean": {n: m["mean"] for n, m in summary["metrics"].items() if n.endswith(("accuracy", "mae"))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mosi")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS / "cv_overhead.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in (int(x) for x in args.workers.split(",")):
            rows.append(run(args.config, args.k, w, args.sets, Path(tmp) / f"w{w}"))
    header = ("workers", 7), ("wall s", 8), ("fold", 4), ("fold wall s", 11), ("epochs s", 9), ("outside s", 9)
    print(" ".join(f"{h:>{w}}" for h, w in header), f"{'start-up s':>10}")
    for r in rows:
        for t in r["folds"]:
            startup = "-" if t.get("worker_startup_s") is None else f"{t['worker_startup_s']:.1f}"
            print(
                f"{r['workers']:>7} {r['wall_s']:>8.1f} {t['fold']:>4} {t['wall_s']:>11.1f} {t['epochs_s']:>9.1f} "
                f"{t['overhead_s']:>9.1f} {startup:>10}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
