"""Extraction at scale: the feature cache with loose entries vs pack files, and the local vs Ray engines.

    .venv/bin/python benchmarks/extract_scale.py [--items 100000] [--clips 200] [--parts cache,engines]

cache: ``--items`` synthetic entries (float32 [88], eGeMAPS-sized) stored under the keys the store gives
texts "item <i>" for the ``lexicon`` extractor, first as one ``.npy`` per entry (as ``extract`` leaves them),
then after ``FeatureStore.pack``. For each layout: listing every key (``FeatureStore.listing``) and a
``FeatureStore.run`` over every item with all of them cached (content hashing, lookup, read and checks:
what ``train`` does before its first epoch). Both with the page cache warm (the entries were just written).

engines: the first ``--clips`` RAVDESS clips through ``egemaps`` with an empty cache, by the local engine
(1 and 2 processes) and by the Ray engine (2 actors on a new local Ray with 2 CPUs); Ray's start-up is
timed on its own. Prints tables and writes JSON (default ``benchmarks/results/extract_scale.json``).
Timings depend on other load on the machine; the load average at start is saved with the results.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import environment  # benchmarks/ is on sys.path when a script runs
from rich.console import Console
from rich.table import Table

from affectfusion.extract import FeatureStore, Item, LocalEngine, build_extractor
from affectfusion.extract.base import content_hash
from affectfusion.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess_speech_16k"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "extract_scale.json"
DIM = 88


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Feature cache at 10^5 entries; local vs Ray extraction engines")
    p.add_argument("--items", type=int, default=100_000, help="synthetic cache entries (default 100000)")
    p.add_argument("--clips", type=int, default=200, help="RAVDESS clips for the engines (default 200)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="RAVDESS folder (searched for .wav)")
    p.add_argument("--parts", default="cache,engines", help="comma-separated: cache, engines")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def timed(step: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = step()
    return result, time.perf_counter() - t0


def fill_cache(store: FeatureStore, n: int) -> list[Item]:
    """``n`` loose entries where the store looks for the features of texts "item <i>" (not timed: np.save,
    no fsync)."""
    extractor = build_extractor("lexicon", {"nrc": False}, "benchmark")
    folder = store.folder(extractor)
    fp = extractor.fingerprint()
    rng = np.random.default_rng(0)
    items = [Item(str(i), f"item {i}") for i in range(n)]
    for it in items:
        key = hashlib.sha256(f"{fp}:{content_hash(it.input)}".encode()).hexdigest()
        path = folder / "items" / key[:2] / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, rng.standard_normal(DIM).astype(np.float32))
        path.write_bytes(buf.getvalue())
    return items


def cache_part(n: int) -> list[dict[str, Any]]:
    extractor = build_extractor("lexicon", {"nrc": False}, "benchmark")
    rows = []
    with tempfile.TemporaryDirectory(prefix="extract_scale_") as root:
        store = FeatureStore(root)
        items, fill = timed(lambda: fill_cache(store, n))
        print(f"  wrote {n} loose entries in {fill:.1f}s", file=sys.stderr)
        for layout in ("loose files", "packed"):
            if layout == "packed":
                moved, pack_s = timed(lambda: store.pack(extractor))
                assert moved == n
            listed, list_s = timed(lambda: store.listing(extractor))
            (features, report), read_s = timed(lambda: store.run(extractor, items, progress=False))
            assert len(listed) == n and len(features) == n and report.cached == n and report.computed == 0
            rows.append(
                {
                    "layout": layout,
                    "items": n,
                    "list_s": list_s,
                    "read_all_s": read_s,
                    "items_per_s_read": n / read_s,
                    "pack_s": pack_s if layout == "packed" else None,
                }
            )
            print(f"  {layout}: list {list_s:.2f}s, read all {read_s:.2f}s", file=sys.stderr)
    return rows


def engines_part(clips: list[Path]) -> list[dict[str, Any]]:
    from affectfusion.extract.ray_engine import RayEngine

    items = [Item(c.stem, c, str(c)) for c in clips]
    extractor = build_extractor("egemaps", {}, "benchmark")
    ray = RayEngine(actors=2)
    _, ray_start = timed(ray.start)
    runs: list[tuple[str, Any, float | None]] = [
        ("local, 1 process", LocalEngine(1), None),
        ("local, 2 processes", LocalEngine(2), None),
        ("ray, 2 actors (local Ray, 2 CPUs)", ray, ray_start),
    ]
    rows = []
    reference: dict[str, np.ndarray] | None = None
    for label, engine, startup in runs:
        with tempfile.TemporaryDirectory(prefix="extract_scale_") as cache:
            (features, report), wall = timed(
                lambda engine=engine, cache=cache: FeatureStore(cache).run(
                    extractor, items, progress=False, engine=engine
                )
            )
        reference = reference or features
        same = features.keys() == reference.keys() and all(np.array_equal(features[k], reference[k]) for k in features)
        rows.append(
            {
                "engine": label,
                "clips": len(clips),
                "wall_s": wall,
                "clips_per_s": len(clips) / wall,
                "startup_s": startup,
                "computed": report.computed,
                "failed": len(report.failures),
                "identical_to_local": same,
            }
        )
        print(f"  {label}: {wall:.1f}s ({len(clips) / wall:.1f} clips/s)", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    parts = args.parts.split(",")
    report: dict[str, Any] = {"benchmark": "extract_scale", "environment": environment(), "settings": vars(args)}
    report["settings"] = {k: str(v) for k, v in report["settings"].items()}
    console = Console(width=None if sys.stdout.isatty() else 200)
    if "cache" in parts:
        rows = cache_part(args.items)
        report["cache"] = rows
        table = Table(title=f"feature cache, {args.items} entries of float32 [{DIM}] (page cache warm)")
        for col in ("layout", "list all keys s", "read all (store.run) s", "entries / s read", "pack s"):
            table.add_column(col, justify="left" if col == "layout" else "right")
        for r in rows:
            pack = "" if r["pack_s"] is None else f"{r['pack_s']:.1f}"
            read = f"{r['items_per_s_read']:,.0f}"
            table.add_row(r["layout"], f"{r['list_s']:.2f}", f"{r['read_all_s']:.2f}", read, pack)
        console.print(table)
    if "engines" in parts:
        clips = sorted(args.data.expanduser().rglob("*.wav"))[: args.clips]
        if not clips:
            print(f"error: no .wav files under {args.data} (pass --data PATH)", file=sys.stderr)
            sys.exit(2)
        rows = engines_part(clips)
        report["engines"] = rows
        table = Table(title=f"egemaps extraction, {len(clips)} RAVDESS clips, empty cache")
        for col in ("engine", "wall s", "clips / s", "Ray start-up s", "identical to local"):
            table.add_column(col, justify="left" if col == "engine" else "right")
        for r in rows:
            startup = "" if r["startup_s"] is None else f"{r['startup_s']:.1f} (not in wall)"
            table.add_row(
                r["engine"], f"{r['wall_s']:.1f}", f"{r['clips_per_s']:.2f}", startup, str(r["identical_to_local"])
            )
        console.print(table)
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
