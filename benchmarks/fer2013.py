"""FER2013 facial expression: the shipped fer CNN as is vs the toolkit's trained model, on dev and test_small.

    .venv/bin/python benchmarks/fer2013.py [--data PATH] [--cache DIR] [--seeds N] [--out FILE]

(a) ``cnn``: the fer package's mini-Xception (``fer_cnn``), argmax of its 7 probabilities, its class
    order (angry, disgust, fear, happy, sad, surprise, neutral) mapped to the dataset's by name;
    ``cnn_flip``: the same averaged with the mirror image (``flip_average``).
(b) ``toolkit``: the shipped ``fer2013_face`` config trained on ``train`` (model selection on ``dev``),
    one run per seed.

Accuracy and macro F1 on ``dev`` and ``test_small``; prints a table and writes JSON (default
``benchmarks/results/fer2013.json``). Features are cached in ``--cache`` (the config's feature store),
so a second run does no extraction.

CAVEAT: the CNN's training data is FER2013 (its accuracy on our ``train`` split, 250 Training images per
class, is ~61% vs ~53% on ``dev``), so it has most likely seen the ``train`` images, while ``dev`` and
``test_small`` (PublicTest images) are probably unseen. All 7 classes are near balanced here (disgust
has 28 images in each evaluation split), so accuracy is lower than the usual figure on the imbalanced
official test set (~66% for this architecture).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import class_scores  # benchmarks/ is on sys.path when a script runs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "fer2013_subset"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "fer2013.json"
CONFIG = "fer2013_face"
SPLITS = ("dev", "test_small")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FER2013: shipped CNN vs the toolkit's trained model")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="fer2013_subset folder")
    p.add_argument("--cache", type=Path, default=None, help="feature store (default: the config's cache_dir)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds for the toolkit model (mean ± std)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    return args


def shipped_cnn(data: Path, cache: Path, flip: bool) -> dict[str, dict[str, float]]:
    """Argmax of the CNN's own probabilities, class names mapped to the dataset's folders."""
    import numpy as np

    from affectfusion.data.images import ImageFolderAdapter
    from affectfusion.extract.face import FER_CLASSES, FerCnnExtractor
    from affectfusion.extract.store import FeatureStore, Item

    ex = FerCnnExtractor("fer_cnn", FerCnnExtractor.Options(detector="none", output="probs", flip_average=flip))
    adapter = ImageFolderAdapter(ImageFolderAdapter.Options())
    out = {}
    for split in SPLITS:
        samples = adapter.load(data, split)
        feats, report = FeatureStore(cache).run(ex, [Item(s.id, s.raw["image"], s.source) for s in samples])
        if report.failures:
            raise SystemExit(f"error: {len(report.failures)} {split} images failed: {report.failures[0]}")
        preds = [FER_CLASSES[int(np.argmax(feats[s.id]))] for s in samples]
        out[split] = {**class_scores([s.targets["emotion"] for s in samples], preds), "n": len(samples)}
    return out


def toolkit_model(data: Path, cache: Path, seed: int, run_dir: Path) -> dict[str, Any]:
    from rich.console import Console

    from affectfusion.config import load_config
    from affectfusion.io import read_json
    from affectfusion.training.trainer import Trainer

    cfg = load_config(
        CONFIG, {"data.root": str(data), "data.cache_dir": str(cache), "train.seed": seed, "train.progress": False}
    )
    t0 = time.perf_counter()
    metrics = Trainer(cfg, run_dir, Console(stderr=True, quiet=True)).fit(overwrite=True)
    meta = read_json(run_dir / "meta.json")
    return {
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "n_parameters": meta["n_parameters"],
        "metrics": {s: {k: metrics[s][k] for k in ("accuracy", "macro_f1", "n")} for s in SPLITS},
    }


def _mean_std(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = args.data.expanduser().resolve()
    missing = [s for s in ("train", *SPLITS) if not (data / s).is_dir()]
    if missing:
        print(f"error: {data} lacks {', '.join(missing)} (pass --data PATH)", file=sys.stderr)
        sys.exit(2)

    from affectfusion.config import load_config
    from affectfusion.io import write_json

    cache = (args.cache or Path(load_config(CONFIG).data.cache_dir)).expanduser()
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name, flip in (("cnn", False), ("cnn_flip", True)):
        print(f"{name}: extracting / scoring ...", file=sys.stderr)
        row: dict[str, Any] = {
            "model": name,
            "description": "shipped CNN, argmax" + (", mirror-averaged" if flip else ""),
        }
        for split, scores in shipped_cnn(data, cache, flip).items():
            row[f"{split}_n"] = scores["n"]
            for k in ("accuracy", "macro_f1"):
                row[f"{split}_{k}"] = {"mean": scores[k], "std": None}
        rows.append(row)
    runs = []
    with tempfile.TemporaryDirectory(prefix="fer2013_") as tmp:
        for seed in range(args.seeds):
            print(f"toolkit: training {CONFIG} seed {seed} ...", file=sys.stderr)
            runs.append(toolkit_model(data, cache, seed, Path(tmp) / f"seed{seed}"))
    toolkit: dict[str, Any] = {
        "model": "toolkit",
        "description": f"config {CONFIG}: fer_cnn probs (mirror-averaged) -> MLP, trained on train, selected on dev",
        "n_parameters": runs[0]["n_parameters"],
    }
    for split in SPLITS:
        toolkit[f"{split}_n"] = runs[0]["metrics"][split]["n"]
        for k in ("accuracy", "macro_f1"):
            toolkit[f"{split}_{k}"] = _mean_std([r["metrics"][split][k] for r in runs])
    rows.append(toolkit)

    report = {
        "benchmark": "fer2013",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(data),
        "config": CONFIG,
        "seeds": list(range(args.seeds)),
        "caveat": "the CNN was trained on FER2013 and has most likely seen the train split; dev/test_small are "
        "PublicTest images; classes near balanced (disgust 28 per split)",
        "total_seconds": time.perf_counter() - t_start,
        "rows": rows,
        "toolkit_runs": runs,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    _print_table(rows, args.seeds)
    print(f"wrote {out}", file=sys.stderr)


def _print_table(rows: list[dict[str, Any]], seeds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="FER2013 (fer2013_subset), 7 classes", caption=f"%, toolkit: mean ± std over {seeds} seed(s)")
    table.add_column("model")
    for s in SPLITS:
        table.add_column(f"{s} acc", justify="right")
        table.add_column(f"{s} macro F1", justify="right")
    for row in rows:
        cells = [row["model"]]
        for s in SPLITS:
            for k in ("accuracy", "macro_f1"):
                stat = row[f"{s}_{k}"]
                text = f"{100 * stat['mean']:.1f}"
                cells.append(text + (f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else ""))
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


if __name__ == "__main__":
    main()
