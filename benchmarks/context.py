"""Conversation context on MELD and EmoryNLP: utterance-only vs context models, over seeds.

    .venv/bin/python benchmarks/context.py [--datasets meld,emorynlp] [--seeds 3] [--lora] [--out FILE]

Per dataset, the same frozen all-MiniLM-L6-v2 sentence embedding of each utterance (cached in the
feature store) feeds three models that differ only in ``model.context``: ``none`` (each utterance
alone), ``gru`` (bidirectional, bc-LSTM style) and ``transformer``, both with per-dialogue speaker
embeddings. ``--lora`` adds the shipped LoRA configs: the utterance-level ``meld_text_lora`` (previous
utterance glued to the text) against ``meld_context`` / ``emorynlp_context`` with the context stage
switched off and on; those take minutes per epoch on a CPU thread.

Every model selects its epoch on dev weighted F1; the table gives dev and test_small weighted and
macro F1 as mean ± std over seeds, and seconds per epoch. Prints a table and writes JSON (default
``benchmarks/results/context.json``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from common import RESULTS, environment, mean_std, train_config  # benchmarks/ is on sys.path

SPLITS = ("dev", "test_small")
METRICS = ("weighted_f1", "macro_f1")
FROZEN = {
    "data.extract": {"text": {"name": "minilm"}},
    "model.encoder": {"name": "mean"},
    "model.hidden_dim": 128,
    "model.dropout": 0.5,
    "train.epochs": 30,
    "train.batch_size": 8,
    "train.lr": 0.0005,
    "train.scheduler": "plateau",
    "train.warmup_epochs": 0,
    "train.early_stopping": {"monitor": "weighted_f1", "patience": 6},
}
CONTEXTS = {
    "none": {"model.context": {"name": "none"}},
    "gru": {"model.context": {"name": "gru", "speakers": 8}},
    "transformer": {"model.context": {"name": "transformer", "speakers": 8}},
}


def systems(dataset: str, contexts: list[str], lora: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """System name -> (config, overrides)."""
    config = f"{dataset}_context"
    out = {f"minilm+{ctx}": (config, {**FROZEN, **CONTEXTS[ctx]}) for ctx in contexts}
    if lora:
        if dataset == "meld":
            out["lora utterance+previous (meld_text_lora)"] = ("meld_text_lora", {})
        else:
            out["lora+none"] = (config, CONTEXTS["none"])
        out[f"lora+gru ({config})"] = (config, {})
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="utterance-only vs conversation-context models on MELD and EmoryNLP")
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--datasets", default="meld,emorynlp", help="comma-separated: meld, emorynlp")
    p.add_argument("--seeds", type=int, default=3, help="train.seed 0, 1, ...")
    p.add_argument("--contexts", default="none,gru,transformer", help=f"frozen-MiniLM systems: {', '.join(CONTEXTS)}")
    p.add_argument("--lora", action="store_true", help="also the LoRA configs (minutes per epoch on a CPU)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "context.json")
    p.add_argument("--runs-dir", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    return p.parse_args(argv)


def _seconds_per_epoch(run_dir: Path) -> float:
    from affectfusion.io import read_jsonl

    rows = list(read_jsonl(run_dir / "history.jsonl"))
    return sum(r["seconds"] for r in rows) / len(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse_args(argv)
    results: dict[str, Any] = {"environment": environment(), "seeds": args.seeds, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs_dir or Path(tmp)
        for dataset in args.datasets.split(","):
            per_system = {}
            for name, (config, overrides) in systems(dataset, args.contexts.split(","), args.lora).items():
                seeds = []
                for seed in range(args.seeds):
                    run_dir = runs / dataset / name.split(" ")[0] / f"seed{seed}"
                    over = {**overrides, "data.root": str(args.data / dataset), "train.seed": seed}
                    r = train_config(config, over, run_dir, args.threads)
                    r["seconds_per_epoch"] = _seconds_per_epoch(run_dir)
                    seeds.append(r)
                    dev = r["metrics"]["dev"]["weighted_f1"]
                    print(f"{dataset} {name} seed {seed}: dev weighted F1 {dev:.4f}", flush=True)
                summary = {
                    f"{split}_{m}": mean_std([s["metrics"][split][m] for s in seeds])
                    for split in SPLITS
                    for m in METRICS
                }
                summary["seconds_per_epoch"] = mean_std([s["seconds_per_epoch"] for s in seeds])
                per_system[name] = {"config": config, "overrides": overrides, "summary": summary, "seeds": seeds}
            results["datasets"][dataset] = per_system
    _print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from affectfusion.io import write_json

    write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


def _print_table(results: dict[str, Any]) -> None:
    def cell(ms: dict[str, float | None]) -> str:
        return f"{ms['mean']:.3f}" + (f" ± {ms['std']:.3f}" if ms["std"] is not None else "")

    cols = [f"{s}_{m}" for s in SPLITS for m in METRICS]
    print("| dataset | system | " + " | ".join(cols) + " | s/epoch |")
    print("|---|---|" + "---|" * (len(cols) + 1))
    for dataset, per_system in results["datasets"].items():
        for name, r in per_system.items():
            s = r["summary"]
            print(
                f"| {dataset} | {name} | "
                + " | ".join(cell(s[c]) for c in cols)
                + f" | {s['seconds_per_epoch']['mean']:.1f} |"
            )


if __name__ == "__main__":
    main()
