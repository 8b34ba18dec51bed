"""Feature-extraction throughput: audio seconds extracted per wall-clock second, per extractor, 1 and 2 workers.

    .venv/bin/python benchmarks/extract_throughput.py [--files N] [--extractors a,b] [--workers 1,2] [--data PATH]

Audio part: every registered audio extractor (eGeMAPS functionals and LLDs, MFCC, log-mel, and
eGeMAPS with silero-vad trimming) runs through ``FeatureStore.run`` on the first N RAVDESS files
(16 kHz speech, ~3.7 s each) with an empty cache each time, so every file is computed. The wall
time includes what a user waits for: model setup and, with 2 workers, starting the worker
processes (spawn: a fresh interpreter imports torch and the extractor). Prints a table and writes
JSON (default ``benchmarks/results/extract_throughput_audio.json``).

Timings depend on other load on the machine; the load average at start is saved with the results.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf
from common import environment  # benchmarks/ is on sys.path when a script runs

# Imported at module level so that spawned workers (which re-import this script) register the extractors.
import affectfusion.extract.audio  # noqa: F401
from affectfusion.extract import FeatureStore, Item, build_extractor
from affectfusion.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess_speech_16k"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "extract_throughput_audio.json"
AUDIO_EXTRACTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "egemaps": ("egemaps", {}),
    "egemaps_lld": ("egemaps_lld", {}),
    "mfcc": ("mfcc", {"deltas": 2}),
    "logmel": ("logmel", {}),
    "egemaps+vad": ("egemaps", {"vad": True}),
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Audio feature-extraction throughput (audio s per wall s), 1 and 2 workers")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .wav files (searched recursively)")
    p.add_argument("--files", type=int, default=64, help="number of files (default 64, ~240 s of speech)")
    p.add_argument("--extractors", default=",".join(AUDIO_EXTRACTORS), help="comma-separated rows to run")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    unknown = [e for e in args.extractors.split(",") if e not in AUDIO_EXTRACTORS]
    if unknown:
        p.error(f"unknown extractor row(s) {unknown}; choose from {', '.join(AUDIO_EXTRACTORS)}")
    return args


def measure(row: str, files: list[Path], workers: int) -> dict[str, Any]:
    """One extractor over all files with a fresh cache; wall time covers setup and worker start-up."""
    name, options = AUDIO_EXTRACTORS[row]
    extractor = build_extractor(name, options, row)
    items = [Item(str(i), f, f.name) for i, f in enumerate(files)]
    with tempfile.TemporaryDirectory(prefix="throughput_") as cache:
        t0 = time.perf_counter()
        _, report = FeatureStore(cache).run(extractor, items, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    audio = sum(sf.info(f).duration for f in files)
    return {
        "extractor": row,
        "name": name,
        "options": options,
        "workers": workers,
        "files": len(files),
        "audio_seconds": audio,
        "wall_seconds": wall,
        "audio_s_per_wall_s": audio / wall,
        "files_per_second": len(files) / wall,
        "failed": len(report.failures),
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    files = sorted(args.data.expanduser().rglob("*.wav"))[: args.files]
    if not files:
        print(f"error: no .wav files under {args.data} (pass --data PATH)", file=sys.stderr)
        sys.exit(2)
    workers = [int(w) for w in args.workers.split(",")]
    env = environment()
    rows = []
    for row in args.extractors.split(","):
        for w in workers:
            r = measure(row, files, w)
            rows.append(r)
            print(
                f"  {row:<12} workers={w}: {r['wall_seconds']:6.1f}s, {r['audio_s_per_wall_s']:6.1f}x real time",
                file=sys.stderr,
            )

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"audio extraction throughput ({len(files)} files, {rows[0]['audio_seconds']:.0f} s of audio)")
    for col in ("extractor", "options", "workers", "wall s", "audio s / wall s", "files / s", "failed"):
        table.add_column(col, justify="left" if col in ("extractor", "options") else "right")
    for r in rows:
        table.add_row(
            r["extractor"],
            ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults",
            str(r["workers"]),
            f"{r['wall_seconds']:.1f}",
            f"{r['audio_s_per_wall_s']:.1f}",
            f"{r['files_per_second']:.2f}",
            str(r["failed"]),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    report = {
        "benchmark": "extract_throughput_audio",
        "environment": env,
        "settings": {
            "data": str(args.data),
            "files": [str(f) for f in files],
            "cache": "empty temporary feature store per row (every file computed)",
            "wall_time": "FeatureStore.run including extractor setup and, with workers > 1, worker start-up",
        },
        "rows": rows,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
