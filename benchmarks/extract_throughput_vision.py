"""Throughput of the vision extractors through the feature store, with 1 and 2 worker processes.

    .venv/bin/python benchmarks/extract_throughput_vision.py [--data PATH] [--images N] [--videos N]
        [--seconds S] [--workers 1,2] [--out FILE]

Workloads (each on distinct files: the store computes identical content once):
- ``fer_cnn`` on muxspace photos (350x350, MediaPipe detection + eye alignment + crop + CNN),
- ``fer_cnn`` with the Haar face + eye cascades (P4's pipeline) on the same photos,
- ``fer_cnn`` on FER2013 48x48 crops with ``detector: none`` (CNN only),
- ``face_mesh`` on the muxspace photos,
- ``video_faces`` (2 fps) on synthetic 640x480 H.264 clips of a muxspace face at 25 fps.

Each measurement is one ``FeatureStore.run(..., workers=N)`` into an empty store. Its wall time
includes model loading and, for N > 1, spawning the worker processes and importing the libraries in
them (seconds), so a one-file run is timed first and "steady" rates exclude it. Files/s = files / wall
seconds; for video, frames/s = sampled frames processed / wall seconds (and video seconds decoded per
wall second). The machine's load average is recorded: other processes on a 2-core machine change these
numbers a lot.
Prints a table and writes JSON (default ``benchmarks/results/extract_throughput_vision.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.examples.media import write_clip
from affectfusion.extract import EXTRACTORS, FeatureStore, Item

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "extract_throughput_vision.json"
VIDEO_FPS, VIDEO_SIZE = 25, (640, 480)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Vision extractor throughput (images/s, frames/s) with 1 and 2 workers")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (fer2013_subset, muxspace)")
    p.add_argument("--images", type=int, default=500, help="images per image workload")
    p.add_argument(
        "--videos", type=int, default=32, help="synthetic clips for video_faces (the store sends 16 per chunk)"
    )
    p.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.images < 1 or args.videos < 1 or args.seconds <= 0 or not args.workers or min(args.workers) < 1:
        p.error("--images, --videos, --seconds and --workers must be positive")
    return args


def write_face_clip(path: Path, face: np.ndarray, seconds: float) -> None:
    """An H.264 clip of ``face`` pasted on a grey 640x480 frame, drifting a few pixels per frame."""
    import cv2

    w, h = VIDEO_SIZE
    face = cv2.resize(face, (300, 300))
    frames = []
    for i in range(round(seconds * VIDEO_FPS)):
        frame = np.full((h, w, 3), 110, np.uint8)
        x, y = 170 + round(20 * np.sin(i / 10)), 90 + round(10 * np.cos(i / 7))
        frame[y : y + 300, x : x + 300] = face
        frames.append(frame)
    write_clip(path, frames, VIDEO_FPS)


def _run(
    name: str, options: dict[str, Any], inputs: list[Path], workers: int
) -> tuple[float, dict[str, np.ndarray], int]:
    """Wall seconds, features and failure count of one store run into an empty store."""
    cls = EXTRACTORS.get(name)
    extractor = cls(name, cls.Options(**options))
    items = [Item(str(i), p) for i, p in enumerate(inputs)]
    with tempfile.TemporaryDirectory(prefix="throughput_") as tmp:
        t0 = time.perf_counter()
        feats, report = FeatureStore(tmp).run(extractor, items, workers=workers, progress=False)
        return time.perf_counter() - t0, feats, len(report.failures)


def measure(name: str, options: dict[str, Any], inputs: list[Path], workers: int) -> dict[str, Any]:
    """Throughput with and without start-up: a one-file run first measures the fixed cost (model
    loading, worker spawning) and is subtracted from the full run's wall time."""
    startup, _, _ = _run(name, options, inputs[:1], workers)
    seconds, feats, failed = _run(name, options, inputs, workers)
    work = max(seconds - startup, 1e-9)
    row = {
        "items": len(inputs),
        "failed": failed,
        "seconds": seconds,
        "startup_seconds": startup,
        "items_per_s": len(inputs) / seconds,
        "items_per_s_steady": (len(inputs) - 1) / work,
    }
    if name == "video_faces":  # a video's features are [frames, D]; an image's are one vector
        frames = int(sum(f.shape[0] for f in feats.values()))
        row["frames"] = frames
        row["frames_per_s"] = frames / seconds
        row["frames_per_s_steady"] = frames * (len(inputs) - 1) / len(inputs) / work
    return row


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    from affectfusion.extract.face import load_image
    from affectfusion.io import write_json

    mux = sorted((args.data / "muxspace_faces_subset").glob("*/*/*.jpg"))
    fer = sorted((args.data / "fer2013_subset").glob("*/*/*.jpg"))
    if not mux or not fer:
        print(f"error: {args.data} lacks muxspace_faces_subset or fer2013_subset (pass --data PATH)", file=sys.stderr)
        sys.exit(2)
    photos, crops = mux[: args.images], fer[: args.images]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="clips_") as tmp:
        clips = []
        for i in range(args.videos):
            clips.append(Path(tmp) / f"clip{i}.mp4")
            write_face_clip(clips[-1], load_image(mux[i * 7 % len(mux)]), args.seconds)
        workloads = [
            ("fer_cnn", "fer_cnn, MediaPipe detect + align, muxspace 350x350", {"detector": "mediapipe"}, photos),
            ("fer_cnn", "fer_cnn, Haar face + eyes (P4), muxspace 350x350", {"detector": "haar"}, photos),
            ("fer_cnn", "fer_cnn, no detection, FER2013 48x48", {"detector": "none"}, crops),
            ("face_mesh", "face_mesh, muxspace 350x350", {}, photos),
            (
                "video_faces",
                f"video_faces 2 fps, {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} H.264 25 fps clips",
                {"fps": 2},
                clips,
            ),
        ]
        rows = []
        for name, label, options, inputs in workloads:
            for workers in args.workers:
                print(f"{label}: {len(inputs)} files, {workers} worker(s) ...", file=sys.stderr)
                row = {"extractor": name, "workload": label, "options": options, "workers": workers}
                row |= measure(name, options, inputs, workers)
                if name == "video_faces":
                    row["video_seconds_per_s"] = len(inputs) * args.seconds / row["seconds"]
                rows.append(row)
    report = {
        "benchmark": "extract_throughput_vision",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "settings": {"images": args.images, "videos": args.videos, "seconds": args.seconds, "workers": args.workers},
        "timing": "FeatureStore.run into an empty store; *_steady excludes the wall time of a one-file run "
        "(model loading, worker start-up)",
        "rows": rows,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    _print_table(rows, report["load_average_start"])
    print(f"wrote {out}", file=sys.stderr)


def _print_table(rows: list[dict[str, Any]], load: list[float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="Vision extraction throughput (FeatureStore.run, empty store)",
        caption="steady = excluding the time of a one-file run (model loading, worker spawn); "
        f"load average at start {load[0]:.1f} on {os.cpu_count()} CPUs",
    )
    columns = ("workload", "workers", "files", "failed", "seconds", "start-up s", "files/s", "steady files/s")
    for col in (*columns, "frames/s", "steady frames/s"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for r in rows:
        video = r["extractor"] == "video_faces"
        table.add_row(
            r["workload"],
            str(r["workers"]),
            str(r["items"]),
            str(r["failed"]),
            f"{r['seconds']:.1f}",
            f"{r['startup_seconds']:.1f}",
            f"{r['items_per_s']:.1f}",
            f"{r['items_per_s_steady']:.1f}",
            f"{r['frames_per_s']:.1f}" if video else "—",
            f"{r['frames_per_s_steady']:.1f}" if video else "—",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


if __name__ == "__main__":
    main()
