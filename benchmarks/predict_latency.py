"""How long a user waits for one command-line answer: ``predict`` on a features run and on text runs, and
``train`` on a run that is already finished.

    .venv/bin/python benchmarks/predict_latency.py [--repeats 5] [--src DIR ...] [--work DIR] [--out FILE]

Builds its runs once in ``--work`` (default: a temporary folder): ``features`` (the shipped ``demo``
config, 2 epochs, 200 training samples: text [32], audio [20, 24], video [12, 12] feature arrays) and
``text`` (60 labelled sentences through ``affectfusion init``, whose text extractor is MiniLM via
transformers) plus ``text_lexicon`` (the same table with the VADER/NRC ``lexicon`` extractor). Then each
command runs ``--repeats`` times in a fresh interpreter, as a user starts it, one torch thread. Several
``--src`` trees (e.g. a checkout of an earlier commit's ``src``) are timed alternately on the same runs,
for before/after numbers from one session.

Reported per command and tree: median and best wall seconds, median CPU seconds (user + system of the
child) and which heavy libraries the command imported (``sys.modules`` after it, in a separate run). On a
shared machine the wall time mostly measures the other processes; the CPU seconds are what the command
costs and what an idle machine's wall time comes close to. Prints a table and writes JSON (default
``benchmarks/results/predict_latency.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, environment

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "scipy", "sklearn", "matplotlib", "transformers", "streamlit", "fastapi", "torch._dynamo")
PROBE = (
    "import sys\nfrom affectfusion.cli import main\nsys.argv = ['affectfusion', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    f"print('MODULES', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)
WORDS = {
    "pos": ["I love this", "what a great day", "so happy now", "this is wonderful", "amazing news"],
    "neg": ["I hate this", "what a terrible day", "so sad now", "this is awful", "horrible news"],
}


def cli(src: Path, args: list[str], probe: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-c", PROBE, *args] if probe else [sys.executable, "-m", "affectfusion.cli", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"affectfusion {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def build_runs(src: Path, work: Path) -> dict[str, list[str]]:
    """The runs (trained unless already there) and the command lines to time on them."""
    features, text = work / "features", work / "text_data"
    demo = ["train", "demo", "--set", "train.epochs=2", "--set", "data.options.n_train=200", "--out", str(features)]
    cli(src, demo)
    np.save(work / "text.npy", np.ones(32, dtype=np.float32))
    np.save(work / "audio.npy", np.ones((20, 24), dtype=np.float32))
    if not (text / "affectfusion.yaml").is_file():
        text.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        with open(text / "table.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for i in range(60):
                label = ("pos", "neg")[i % 2]
                writer.writerow([f"{rng.choice(WORDS[label])} number {i}", label])
        cli(src, ["init", str(text), "--table", str(text / "table.csv")])
    config = str(text / "affectfusion.yaml")
    cli(src, ["train", config, "--set", "train.epochs=3", "--out", str(work / "text")])
    lexicon = ["--set", "data.extract.text.name=lexicon", "--set", "train.epochs=3"]
    cli(src, ["train", config, *lexicon, "--out", str(work / "text_lexicon")])
    features_args = ["--features", f"text={work / 'text.npy'}", "--features", f"audio={work / 'audio.npy'}"]
    return {
        "predict features run": ["predict", str(features), *features_args],
        "predict text run (minilm)": ["predict", str(work / "text"), "--text", "what a great day"],
        "predict text run (lexicon)": ["predict", str(work / "text_lexicon"), "--text", "what a great day"],
        "train on a finished run": demo,
    }


def timed(src: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cli(src, args)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--src", type=Path, action="append", help="package tree(s) to time (default: this repo's src)")
    parser.add_argument("--work", type=Path, default=None, help="where the runs are built (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=RESULTS / "predict_latency.json")
    args = parser.parse_args()
    trees = [p.resolve() for p in (args.src or [REPO / "src"])]
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        commands = build_runs(trees[0], work)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                for src in trees:  # alternating, so a burst of load hits every tree alike
                    samples.setdefault((name, str(src)), []).append(timed(src, command))
        loaded = {
            (name, str(src)): cli(src, command, probe=True).stdout.rsplit("MODULES", 1)[-1].strip()
            for name, command in commands.items()
            for src in trees
        }
    rows: list[dict[str, Any]] = []
    for (name, src), values in samples.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        rows.append(
            {
                "command": name,
                "src": src,
                "wall_median_s": statistics.median(walls),
                "wall_best_s": min(walls),
                "cpu_median_s": statistics.median(cpus),
                "heavy_imports": [m for m in loaded[(name, src)].split(",") if m],
                "wall_s": walls,
                "cpu_s": cpus,
            }
        )
    print(f"fresh processes, one torch thread, {args.repeats} repeats; load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<28} {'src':<32} {'wall med':>9} {'wall best':>10} {'cpu med':>8}  heavy imports")
    for r in rows:
        print(
            f"{r['command']:<28} {r['src'][-32:]:<32} {r['wall_median_s']:9.2f} {r['wall_best_s']:10.2f} "
            f"{r['cpu_median_s']:8.2f}  {', '.join(r['heavy_imports']) or '-'}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment(), "repeats": args.repeats, "commands": commands, "rows": rows}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
