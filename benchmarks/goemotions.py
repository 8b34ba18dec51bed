"""GoEmotions Ekman-7 multi-label: the shipped ``goemotions_ekman`` config vs frozen MiniLM + one-vs-rest LR.

    .venv/bin/python benchmarks/goemotions.py [--seeds N] [--data PATH] [--threads N] [--out FILE] [--quick]

Split (shared/data/goemotions, ``ekman/``): train 41,410 Reddit comments, dev 5,426 (the official dev),
test_small 2,000 (drawn from the official train). Labels: anger, disgust, fear, joy, neutral, sadness,
surprise; a comment has one or more (about 9% more than one). Both systems are fitted on train and
select on dev only; test_small is only reported.

(a) toolkit: the shipped ``goemotions_ekman`` config (all-MiniLM-L6-v2 sentence embedding and
    VADER/NRC lexicon scores -> MLP -> 7 sigmoid outputs, BCE), trained through the toolkit's
    Trainer, best epoch by dev loss, then
    decision thresholds tuned on dev (the config's ``threshold_tuning``); once per seed.
(b) baseline: the same frozen 384-d MiniLM embeddings (same feature store, same samples) ->
    StandardScaler -> one-vs-rest LogisticRegression; C from {0.01, 0.1, 1, 10} and the decision
    thresholds chosen on dev exactly as the toolkit does (``tune_thresholds`` with the config's mode,
    then the C with the best tuned dev macro F1).

Macro F1 (mean over the 7 labels; the headline metric) and micro F1 on dev and test_small; prints a
table and writes JSON (default ``benchmarks/results/goemotions.json``). Dev scores are optimistic for
both systems: their thresholds were tuned on dev.

``--quick``: one seed, 2 epochs, two C values, on a shrunk copy of the data (1,500 / 500 / 500 comments)
in a temp dir, results to ``goemotions_quick.json``: a smoke test of the whole script, not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import environment, mean_std, seeded_args, split_arrays, train_config  # benchmarks/ is on sys.path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "goemotions"
CONFIG = "goemotions_ekman"
SPLITS = ("dev", "test_small")
METRICS = ("macro_f1", "micro_f1")
LR_C = (0.01, 0.1, 1.0, 10.0)
QUICK_LR_C = (0.1, 1.0)
QUICK_ROWS = {"train": 1500, "dev": 500, "test_small": 500}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    return seeded_args(
        argv,
        name="goemotions",
        description="GoEmotions Ekman-7 multi-label: shipped goemotions_ekman config vs MiniLM + one-vs-rest LR",
        data=DEFAULT_DATA,
        data_help="goemotions folder (with ekman/)",
        config=CONFIG,
        quick=True,
    )


def shrink_copy(data: Path, labels: str, dest: Path) -> Path:
    """The first lines of each split file and labels.txt, for --quick (same layout, same adapter)."""
    folder = dest / labels
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_bytes((data / labels / "labels.txt").read_bytes())
    for split, n in QUICK_ROWS.items():
        lines = (data / labels / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
        (folder / f"{split}.tsv").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return dest


def _labelled(y: np.ndarray) -> np.ndarray:
    return np.isfinite(y).all(axis=1)


def logreg_baseline(cfg: Any, c_grid: tuple[float, ...]) -> dict[str, Any]:
    """Frozen MiniLM -> StandardScaler -> one-vs-rest LR; C and thresholds tuned on dev like the toolkit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from affectfusion.evaluation.metrics import multilabel_metrics, tune_thresholds

    task = cfg.tasks[0]
    classes = task.classes or []
    xy = {}
    for split in (cfg.data.train_split, *SPLITS):
        x, targets, _ = split_arrays(cfg, split)
        y = targets[task.name]
        keep = _labelled(y)
        xy[split] = (x[keep], y[keep].astype(np.int64))
    x_train, y_train = xy[cfg.data.train_split]
    present = y_train.any(axis=0)
    if not present.all():  # LogisticRegression cannot fit a column with one class (possible in --quick)
        missing = [c for c, p in zip(classes, present, strict=True) if not p]
        raise SystemExit(f"error: no train sample has label(s) {missing}; the baseline needs every label on train")
    per_c = []
    for c in c_grid:
        t0 = time.perf_counter()
        model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000))).fit(
            x_train, y_train
        )
        seconds = time.perf_counter() - t0
        proba = {split: model.predict_proba(xy[split][0]) for split in SPLITS}
        thresholds = tune_thresholds(xy["dev"][1], proba["dev"], task.threshold_tuning or "global", task.threshold)
        row: dict[str, Any] = {
            "C": c,
            "fit_seconds": seconds,
            "thresholds": dict(zip(classes, thresholds.tolist(), strict=True)),
        }
        for split in SPLITS:
            m = multilabel_metrics(xy[split][1], (proba[split] >= thresholds).astype(np.int64), classes)
            row[split] = {k: m[k] for k in (*METRICS, "n")}
            row[split]["per_class_f1"] = {k: v["f1"] for k, v in m["per_class"].items()}
        per_c.append(row)
        print(f"  C={c:g}: dev macro F1 {row['dev']['macro_f1']:.3f} ({seconds:.0f}s)", file=sys.stderr)
    best = max(per_c, key=lambda r: r["dev"]["macro_f1"])  # max() keeps the first (smallest C) of ties
    return {
        "n": {split: len(y) for split, (_, y) in xy.items()},
        "chosen_C": best["C"],
        "thresholds": best["thresholds"],
        "metrics": {split: best[split] for split in SPLITS},
        "per_C": per_c,
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = args.data.expanduser().resolve()

    from rich.console import Console
    from rich.table import Table

    from affectfusion.config import load_config
    from affectfusion.io import write_json

    labels = load_config(args.config).data.options.get("labels", "original")
    if not all((data / labels / f"{s}.tsv").is_file() for s in ("train", *SPLITS)):
        print(f"error: no {labels}/train|dev|test_small.tsv in {data} (pass --data PATH)", file=sys.stderr)
        sys.exit(2)
    env = environment()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="goemotions_bench_") as tmp:
        root = shrink_copy(data, labels, Path(tmp) / "data") if args.quick else data
        overrides: dict[str, Any] = {"data.root": str(root), "train.progress": False}
        if args.quick:
            overrides["train.epochs"] = 2
        cfg = load_config(args.config, overrides)
        task = cfg.tasks[0]
        print("MiniLM + one-vs-rest logistic regression baseline ...", file=sys.stderr)
        frozen = load_config(args.config, {**overrides, "model.modalities": ["text"]})  # the MiniLM embedding only
        baseline = logreg_baseline(frozen, QUICK_LR_C if args.quick else LR_C)
        print(f"toolkit config {cfg.name!r}, {args.seeds} seed(s) ...", file=sys.stderr)
        runs_dir = (args.runs_dir or Path(tmp) / "runs").resolve()
        runs = []
        for seed in range(cfg.train.seed, cfg.train.seed + args.seeds):
            run = train_config(args.config, {**overrides, "train.seed": seed}, runs_dir / f"seed{seed}", args.threads)
            per_split = {s: run["metrics"][s]["tasks"][task.name] for s in SPLITS}
            run["thresholds"] = per_split["dev"]["thresholds"]
            run["metrics"] = {
                s: {
                    **{k: m[k] for k in (*METRICS, "n")},
                    "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()},
                }
                for s, m in per_split.items()
            }
            runs.append(run)
            m = run["metrics"]
            print(
                f"  seed {seed}: dev macro F1 {m['dev']['macro_f1']:.3f}, test_small {m['test_small']['macro_f1']:.3f}"
                f" ({run['seconds']:.0f}s, {run['epochs_run']} epochs, best {run['best_epoch']})",
                file=sys.stderr,
            )
    toolkit = {s: {k: mean_std([r["metrics"][s][k] for r in runs]) for k in METRICS} for s in SPLITS}

    table = Table(
        title="GoEmotions Ekman-7 multi-label ("
        + "; ".join(f"{split} {n:,}" for split, n in baseline["n"].items())
        + (") [QUICK]" if args.quick else ")"),
        caption=f"%, thresholds tuned on dev ({task.threshold_tuning}); toolkit: mean ± std over {args.seeds} seed(s)",
    )
    table.add_column("system")
    for s in SPLITS:
        table.add_column(f"{s} macro F1", justify="right")
        table.add_column(f"{s} micro F1", justify="right")

    def cell(stat: dict[str, float | None]) -> str:
        return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else "")

    table.add_row(f"toolkit: {cfg.name}", *(cell(toolkit[s][k]) for s in SPLITS for k in METRICS))
    table.add_row(
        f"MiniLM + one-vs-rest LR (C={baseline['chosen_C']:g} by dev)",
        *(f"{100 * baseline['metrics'][s][k]:.1f}" for s in SPLITS for k in METRICS),
    )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    beats = {s: toolkit[s]["macro_f1"]["mean"] > baseline["metrics"][s]["macro_f1"] for s in SPLITS}
    print(
        "toolkit mean macro F1 beats the LR: " + ", ".join(f"{s} {'yes' if b else 'no'}" for s, b in beats.items()),
        file=sys.stderr,
    )
    report = {
        "benchmark": "goemotions",
        "quick": args.quick,
        "environment": {**env, "torch_threads": args.threads},
        "settings": {
            "data": str(data),
            "config": cfg.to_dict(),
            "seeds": [r["seed"] for r in runs],
            "selection": "dev only: best epoch (model) and C (LR) by dev macro F1; decision thresholds tuned on dev "
            f"({task.threshold_tuning}) for both",
            "baseline": {
                "features": "frozen minilm (the config's extractor)",
                "model": "StandardScaler + OneVsRestClassifier(LogisticRegression)",
                "C_grid": list(QUICK_LR_C if args.quick else LR_C),
            },
        },
        "toolkit": {"summary": toolkit, "runs": runs},
        "logreg_baseline": baseline,
        "toolkit_beats_baseline": beats,
        "total_seconds": time.perf_counter() - t_start,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
