"""Seconds per epoch of ``meld_context`` (LoRA MiniLM under a dialogue GRU) against ``meld_text_lora``
(LoRA MiniLM per utterance, previous utterance glued on), over the same MELD dialogues.

    .venv/bin/python benchmarks/meld_context.py [--dialogues 200] [--val-dialogues 20] [--threads 1]
                                                [--arms "buckets,one call"] [--profile] [--out FILE]

Both configs train one epoch through the toolkit's own Trainer (``affectfusion train``'s code path) on
a copy of the first ``--dialogues`` train dialogues and ``--val-dialogues`` dev / test_small dialogues
of ``--data`` (so both read exactly the same utterances), with ``--threads`` torch threads. A hook on
the LoRA text encoder's transformer counts, for the training pass and for validation separately, its
calls, the rows it encodes, the real tokens and the padded tokens it runs (rows x the call's length). The
table gives s/epoch as ``history.jsonl`` records it (training pass + validation) and its ratio to
``meld_text_lora``'s with the same ``--arms`` entry; the target is ``meld_context`` at most 1.3x.
``--arms "buckets,one call"`` also runs both configs with every batch in one encoder call padded to its
longest row (what the encoder did before length buckets), for a before/after in one run. ``--profile``
also writes each run's top cProfile entries next to the JSON (default ``benchmarks/results/meld_context.json``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import RESULTS, environment, train_config  # benchmarks/ is on sys.path when a script runs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "meld"
CONFIGS = ("meld_text_lora", "meld_context")
SPLITS = {"train": "dialogues", "dev": "val_dialogues", "test_small": "val_dialogues"}
TARGET_RATIO = 1.3
# How the LoRA encoder runs a batch: in length buckets (the default), or all rows in one call padded to
# the batch's longest (what it did before buckets; the same numbers, more padding).
ARMS: dict[str, dict[str, Any]] = {
    "buckets": {},
    "one call": {"model.encoder.options.call_cost_tokens": 10_000_000},
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="meld folder (train/dev/test_small.csv)")
    p.add_argument("--dialogues", type=int, default=200, help="train dialogues (the first N of train.csv)")
    p.add_argument("--val-dialogues", type=int, default=20, help="dev and test_small dialogues (the first N)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated; the first is the ratio's base")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--arms",
        default="buckets",
        help=f"comma-separated, each a row per config: {', '.join(ARMS)}, or a number (the call_cost_tokens option)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile each run; top entries written beside --out")
    p.add_argument("--out", type=Path, default=RESULTS / "meld_context.json")
    args = p.parse_args(argv)
    if args.dialogues < 1 or args.val_dialogues < 1:
        p.error("--dialogues and --val-dialogues must be >= 1")
    unknown = [a for a in args.arms.split(",") if a not in ARMS and not a.isdigit()]
    if unknown:
        p.error(f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    return args


def write_subset(data: Path, out: Path, counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """The first ``counts[split]`` dialogues of each split's CSV, written to ``out``; their sizes."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split, n in counts.items():
        table = pd.read_csv(data / f"{split}.csv", dtype=str, keep_default_na=False, encoding="utf-8")
        keep = list(dict.fromkeys(table["Dialogue_ID"]))[:n]
        part = table[table["Dialogue_ID"].isin(keep)]
        part.to_csv(out / f"{split}.csv", index=False, encoding="utf-8")
        sizes[split] = {"dialogues": len(keep), "utterances": len(part)}
    return sizes


class EncoderCount:
    """Counts what the LoRA text encoder's transformer runs, per phase (``train`` = training mode): its
    calls, rows, real tokens and padded tokens (rows x the call's length)."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, int]] = {}
        self.watched: set[int] = set()

    def __call__(self, module: Any, _args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs["attention_mask"]
        row = self.phases.setdefault(
            "train" if module.training else "eval", {"calls": 0, "rows": 0, "tokens": 0, "padded_tokens": 0}
        )
        row["calls"] += 1
        row["rows"] += int(mask.shape[0])
        row["tokens"] += int(mask.sum())
        row["padded_tokens"] += int(mask.numel())

    @contextmanager
    def attached(self) -> Iterator[None]:
        """Watches the transformer inside every LoRA text encoder that runs while this is open."""
        from torch.nn.modules.module import register_module_forward_pre_hook

        from affectfusion.models.hf_text import HFLoRAEncoder

        handles = []

        def find(module: Any, _args: tuple[Any, ...]) -> None:
            if isinstance(module, HFLoRAEncoder) and id(module) not in self.watched:
                self.watched.add(id(module))
                handles.append(module.base.register_forward_pre_hook(self, with_kwargs=True))

        handles.append(register_module_forward_pre_hook(find))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


@contextmanager
def timed_training_pass(seconds: list[float]) -> Iterator[None]:
    """Records the wall time of each training pass (``train_epoch``), validation excluded."""
    from affectfusion.training import trainer

    original = trainer.train_epoch

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - t0)

    trainer.train_epoch = wrapped
    try:
        yield
    finally:
        trainer.train_epoch = original


def run_config(config: str, arm: str, root: Path, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One epoch of ``config`` (as ``arm`` runs its encoder) on the subset in ``root``: timings and what
    its encoder ran."""
    from affectfusion.io import read_jsonl

    overrides = {
        **ARMS.get(arm, {"model.encoder.options.call_cost_tokens": int(arm) if arm.isdigit() else None}),
        "data.root": str(root),
        "data.allow_leakage": True,  # short phrases shared across splits; only speed is measured here
        "train.epochs": 1,
        "train.threads": args.threads,
        "train.early_stopping": None,
    }
    count, passes = EncoderCount(), list[float]()
    profiler = cProfile.Profile() if args.profile else None
    with count.attached(), timed_training_pass(passes):
        if profiler is not None:
            profiler.enable()
        result = train_config(config, overrides, run_dir, args.threads)
        if profiler is not None:
            profiler.disable()
    history = list(read_jsonl(run_dir / "history.jsonl"))
    row = {
        "config": config,
        "arm": arm,
        "seconds_per_epoch": history[0]["seconds"],
        "seconds_training_pass": passes[0],
        "seconds_validation": history[0]["seconds"] - passes[0],
        "encoder": count.phases,
        "dev_weighted_f1": result["metrics"]["dev"]["weighted_f1"],
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        path = args.out.with_name(f"{args.out.stem}_{config}_{arm.replace(' ', '_')}.prof.txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.getvalue(), encoding="utf-8")
        row["profile"] = str(path)
    return row


def print_table(rows: list[dict[str, Any]], sizes: dict[str, dict[str, int]]) -> None:
    train, dev = sizes["train"], sizes["dev"]
    print(f"validation on dev: {dev['dialogues']} dialogues, {dev['utterances']} utterances")
    print(
        "| config | encoder | dialogues | utterances | transformer calls | rows encoded | tokens encoded | "
        "padded tokens | training pass s | validation s | s/epoch | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["encoder"].get("train", {})
        print(
            f"| {r['config']} | {r['arm']} | {train['dialogues']:,} | {train['utterances']:,} | "
            f"{e.get('calls', 0):,} | {e.get('rows', 0):,} | {e.get('tokens', 0):,} | "
            f"{e.get('padded_tokens', 0):,} | {r['seconds_training_pass']:.1f} | {r['seconds_validation']:.1f} | "
            f"{r['seconds_per_epoch']:.1f} | {r['ratio']:.2f} |"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse_args(argv)
    configs = args.configs.split(",")
    results: dict[str, Any] = {"environment": environment(), "threads": args.threads, "target_ratio": TARGET_RATIO}
    with tempfile.TemporaryDirectory() as tmp:
        counts = {split: getattr(args, attr) for split, attr in SPLITS.items()}
        results["subset"] = sizes = write_subset(args.data, Path(tmp) / "meld", counts)
        rows = []
        for arm in args.arms.split(","):
            for config in configs:
                run_dir = Path(tmp) / "runs" / f"{config}_{arm.replace(' ', '_')}"
                rows.append(run_config(config, arm, Path(tmp) / "meld", run_dir, args))
                print(f"{config} ({arm}): {rows[-1]['seconds_per_epoch']:.1f} s/epoch", flush=True)
    for r in rows:  # against the first config's epoch with the same encoder arm
        base = next(b for b in rows if b["arm"] == r["arm"])
        r["ratio"] = r["seconds_per_epoch"] / base["seconds_per_epoch"]
    results["rows"] = rows
    print_table(rows, sizes)
    from affectfusion.io import write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
