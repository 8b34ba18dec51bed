"""A small run's fixed costs: how much of ``affectfusion train`` is start-up and how much waits for plots.

    .venv/bin/python benchmarks/run_overhead.py [--config mosi] [--fusion low_rank] [--repeats 3] [--out FILE]

Each repeat is ``affectfusion train CONFIG --fusion FUSION`` in a fresh interpreter (one torch thread), as
a user would start it, once with the figures drawn by the helper process (the default,
:mod:`affectfusion.evaluation.figures`) and once drawn in the training process (``helper_enabled = False``),
alternating. Reported per repeat and as medians per mode: wall seconds from interpreter start to the end of
the command, seconds to import the CLI, seconds the command was blocked on figures (waiting for the
helper, or drawing them itself, matplotlib's import included) and that share of the wall time. Prints a
table and writes JSON (default ``benchmarks/results/run_overhead.json``).
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

MODES = ("helper", "inline")


def child(mode: str, args: list[str], started: float) -> dict[str, Any]:
    """Run one ``train`` in this interpreter, timing every wait for figures; the timings as a dict."""
    t0 = time.perf_counter()
    from affectfusion.cli.app import app
    from affectfusion.evaluation import figures

    imported = time.perf_counter() - t0
    figures.helper_enabled = mode == "helper"
    blocked = [0.0, 0]

    def timed(fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                blocked[0] += time.perf_counter() - t
                blocked[1] += 1

        return wrapper

    figures.Figures.wait = timed(figures.Figures.wait)
    try:
        app(["train", *args], standalone_mode=False)
    finally:
        wall = time.time() - started
    return {"mode": mode, "wall_s": wall, "import_s": imported, "figures_s": blocked[0], "waits": blocked[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mosi")
    parser.add_argument("--fusion", default="low_rank")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "run_overhead.json")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        mode, started = args.child[0], float(args.child[1])
        print("RESULT " + json.dumps(child(mode, args.child[2:], started)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode in MODES:
                run_dir = Path(tmp) / f"{mode}{i}"
                command = [sys.executable, __file__, "--child", mode, str(time.time()), args.config]
                command += ["--fusion", args.fusion, "--out", str(run_dir), "--set", "train.threads=1"]
                proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                if proc.returncode or not lines:
                    sys.exit(f"repeat {i} ({mode}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                row = json.loads(lines[-1][len("RESULT ") :])
                row["figures_share"] = row["figures_s"] / row["wall_s"]
                rows.append(row)

    keys = ("wall_s", "import_s", "figures_s", "figures_share")
    median = {m: {k: statistics.median(r[k] for r in rows if r["mode"] == m) for k in keys} for m in MODES}
    print(
        f"affectfusion train {args.config} --fusion {args.fusion}: {args.repeats} fresh processes per mode, one thread"
    )
    print(f"{'mode':>8} {'wall s':>8} {'import s':>9} {'figures s':>10} {'share':>7}")
    for r in rows:
        print(
            f"{r['mode']:>8} {r['wall_s']:8.2f} {r['import_s']:9.2f} {r['figures_s']:10.2f} {r['figures_share']:7.1%}"
        )
    for m in MODES:
        med = median[m]
        print(
            f"{'median ' + m:>15} {med['wall_s']:8.2f} {med['import_s']:9.2f} {med['figures_s']:10.2f} "
            f"{med['figures_share']:7.1%}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment(), "config": args.config, "fusion": args.fusion, "rows": rows}
    args.out.write_text(json.dumps({**result, "median": median}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
