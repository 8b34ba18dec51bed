"""MELD 7-class text emotion: MiniLM + LoRA end to end (``meld_text_lora``) vs frozen MiniLM + logistic regression.

    .venv/bin/python benchmarks/meld_text.py [--run runs/meld_text_lora] [--threads N] [--out FILE]

Both systems see the shared MELD splits (train 9,407 utterances, dev 1,109, test_small 582) and
select on dev only. The LoRA model keeps its best epoch by dev weighted F1. The baseline is the
frozen all-MiniLM-L6-v2 sentence embedding of each utterance (the ``meld_text`` config's features,
from the same feature store) -> StandardScaler -> LogisticRegression, with C and class weights
(none or balanced) chosen on dev weighted F1.

Training the LoRA model takes ~6 minutes per epoch on one CPU thread; ``--run`` scores an already
trained run directory of the config instead of training again. Prints a table and writes JSON
(default ``benchmarks/results/meld_text.json``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (  # benchmarks/ is on sys.path when a script runs
    class_scores,
    environment,
    split_arrays,
    train_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "meld"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "meld_text.json"
LORA_CONFIG = "meld_text_lora"
FROZEN_CONFIG = "meld_text"
SPLITS = ("dev", "test_small")
LOGREG_C = (0.01, 0.1, 1.0, 10.0)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MELD text: MiniLM + LoRA vs frozen MiniLM + logistic regression")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="meld folder")
    p.add_argument("--run", type=Path, default=None, help="score this trained meld_text_lora run instead of training")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    return p.parse_args(argv)


def toolkit(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """The LoRA model's dev / test_small metrics: from ``--run``, or trained now."""
    from affectfusion.rundir import read_run
    from affectfusion.training.evaluation import evaluate_run

    if args.run is not None:
        run = read_run(args.run)
        t0 = time.perf_counter()
        metrics = {s: evaluate_run(run, s, root=args.data) for s in SPLITS}
        meta = run.meta
        return {"run": str(args.run), "seconds_eval": time.perf_counter() - t0, "metrics": metrics, **_size(meta)}
    from affectfusion.io import read_json

    with tempfile.TemporaryDirectory() as tmp:
        result = train_config(LORA_CONFIG, overrides, Path(tmp) / "run", args.threads)
        result.update(_size(read_json(Path(tmp) / "run" / "meta.json")))
    return result


def _size(meta: dict[str, Any]) -> dict[str, Any]:
    return {"n_parameters": meta["n_parameters"], "n_trainable_parameters": meta.get("n_trainable_parameters")}


def baseline(data: Path) -> dict[str, Any]:
    """Frozen MiniLM sentence embeddings -> logistic regression, C chosen on dev weighted F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from affectfusion.config import load_config

    cfg = load_config(FROZEN_CONFIG, {"data.root": str(data), "train.progress": False})
    x_train, y_train, _ = split_arrays(cfg, "train")
    y_train = y_train["emotion"]
    evals = {s: split_arrays(cfg, s) for s in SPLITS}
    t0 = time.perf_counter()
    best: tuple[float, dict[str, Any], Any] | None = None
    x_dev, y_dev, _ = evals["dev"]
    for c in LOGREG_C:
        for weights in (None, "balanced"):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight=weights, max_iter=2000))
            clf.fit(x_train, y_train)
            dev = class_scores(y_dev["emotion"], clf.predict(x_dev))["weighted_f1"]
            if best is None or dev > best[0]:
                best = (dev, {"C": c, "class_weight": weights}, clf)
    assert best is not None
    _, chosen, clf = best
    metrics = {s: class_scores(y["emotion"], clf.predict(x)) for s, (x, y, _) in evals.items()}
    return {**chosen, "seconds": time.perf_counter() - t0, "metrics": metrics}


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json

    args = _parse_args(argv)
    env = environment()
    lora = toolkit(args, {"data.root": str(args.data)})
    base = baseline(args.data)
    table = Table(title="MELD 7-class text emotion (dev selects; test_small reported)")
    for col in ("system", "split", "weighted F1", "macro F1", "accuracy"):
        table.add_column(col, justify="left" if col in ("system", "split") else "right")
    for name, result in (("MiniLM + LoRA (meld_text_lora)", lora), ("frozen MiniLM + LogReg", base)):
        for split in SPLITS:
            m = result["metrics"][split]
            table.add_row(name, split, f"{m['weighted_f1']:.3f}", f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}")
    Console().print(table)
    write_json(args.out, {"environment": env, "toolkit": lora, "baseline": base})
    Console(stderr=True).print(f"results: {args.out}")


if __name__ == "__main__":
    main()
