"""Benchmark every registered fusion strategy on CMU-MOSI: accuracy, weighted F1, parameters, speed, memory.

    .venv/bin/python benchmarks/mosi_fusion.py [--epochs N] [--seeds N] [--fusions a,b] [--threads N] [--data PATH]

Trains the shipped ``mosi`` config once per fusion strategy (and seed) with ``model.fusion.name``
overridden, then prints a table and writes JSON (default ``benchmarks/results/mosi_fusion.json``).

CAVEAT — read before quoting any number from this benchmark. The 50-d text/audio/video MOSI features in
``shared/data/cmu_mosi_unimodal`` are outputs of per-modality LSTMs that were trained, with labels, on every
utterance of the videos that make up train/dev/test_small (see PROVENANCE.md). They encode the label, so
dev and test_small scores are near 100% for every strategy and say nothing about generalisation or about
which fusion is better. Use this benchmark to check that the pipeline runs end to end and to compare
speed, parameter count and memory. Accuracy on the held-out official test split is measured elsewhere:
logistic regression on the three modalities reaches ~78% there; published fusion models report 80-82%.

Memory: each run trains in a fresh interpreter (``multiprocessing`` spawn context), so the process's
``ru_maxrss`` high-water mark belongs to that run alone. The child reports the mark (a) after importing
torch/affectfusion and one tiny warm-up step of torch, before training ("baseline"), (b) at the end of the
training loop, before the final evaluation and plots ("train peak"), and (c) at exit (whole run). The table
shows the train peak and its increase over the baseline (the strategy's own footprint: data, model,
activations, optimizer state).

Speed: seconds per epoch is the mean of ``history.jsonl`` "seconds" (one training pass plus validation).
Each run uses one torch thread by default (``--threads``): the models are tiny, one thread is faster
than two here, and two threads slow down by one to two orders of magnitude when another process holds
a core (OpenMP threads wait on each other). Timings are still sensitive to other load on the machine;
the load average at start is saved with the results.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from common import environment  # benchmarks/ is on sys.path when a script runs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "cmu_mosi_unimodal"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "mosi_fusion.json"
CONFIG = "mosi"
SPLITS = ("dev", "test_small")
METRICS = ("accuracy", "weighted_f1")
MEMORY_METHOD = (
    "peak RSS (resource.getrusage(RUSAGE_SELF).ru_maxrss) of a fresh spawned interpreter per run; "
    "'train peak' = high-water mark at the end of the training loop (before final evaluation/plots), "
    "'own' = train peak minus the mark after importing torch/affectfusion and a tiny warm-up step (before training)"
)


# -- child process: one training run ------------------------------------------------------------


def _max_rss_mib() -> float:
    """High-water mark of this process's resident set size, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _warm_up_torch() -> None:
    """One tiny forward/backward/AdamW step, so torch's one-off start-up memory (~80 MiB: kernels,
    allocator pools) lands in the baseline instead of being charged to the first strategy's training."""
    import torch

    layer = torch.nn.Linear(8, 2)
    opt = torch.optim.AdamW(layer.parameters())
    loss = torch.nn.functional.cross_entropy(layer(torch.randn(4, 8)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(layer.parameters(), 1.0)
    opt.step()


def _train_one(job: dict[str, Any], result_path: str) -> None:
    """Train one (fusion, seed) in this fresh process and write its measurements to ``result_path``."""
    from affectfusion.io import write_json

    result: dict[str, Any] = {"fusion": job["fusion"], "seed": job["seed"]}
    try:
        import torch
        from rich.console import Console

        from affectfusion.config import load_config
        from affectfusion.io import read_json, read_jsonl
        from affectfusion.training.trainer import Trainer

        if job["threads"]:
            torch.set_num_threads(job["threads"])

        class MeasuredTrainer(Trainer):
            """Records the RSS high-water mark when training ends, before final evaluation and plots."""

            train_peak_mib: float | None = None

            def _final_metrics(self) -> dict[str, Any]:
                self.train_peak_mib = _max_rss_mib()
                return super()._final_metrics()

        _warm_up_torch()
        cfg = load_config(CONFIG, job["overrides"])
        run_dir = Path(job["run_dir"])
        console = Console(stderr=True, quiet=not job["verbose"])
        result["baseline_rss_mib"] = _max_rss_mib()
        t0 = time.perf_counter()
        trainer = MeasuredTrainer(cfg, run_dir, console)
        metrics = trainer.fit(overwrite=True)
        result["wall_seconds"] = time.perf_counter() - t0
        result["train_peak_rss_mib"] = trainer.train_peak_mib
        result["run_peak_rss_mib"] = _max_rss_mib()
        history = read_jsonl(run_dir / "history.jsonl")
        meta = read_json(run_dir / "meta.json")
        result.update(
            n_parameters=meta["n_parameters"],
            n_train=meta.get("n_train"),
            n_val=meta.get("n_val"),
            epochs_run=len(history),
            epoch_seconds=[r["seconds"] for r in history],
            torch_threads=torch.get_num_threads(),
            metrics={split: {k: metrics[split].get(k) for k in (*METRICS, "macro_f1", "n")} for split in metrics},
        )
    except BaseException as e:  # reported in the table, the benchmark goes on with the next run
        result["error"] = f"{type(e).__name__}: {e}"
        if type(e).__name__ != "AffectFusionError":  # user-input errors are one line; anything else is a bug
            traceback.print_exc()
    write_json(Path(result_path), result)


# -- parent process ------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train every registered fusion strategy on CMU-MOSI and compare accuracy, weighted F1, "
        "parameters, seconds per epoch and peak memory. MOSI features are label-informed: dev/test_small "
        "scores are ~100% and do not measure generalisation (see the module docstring)."
    )
    p.add_argument("--data", type=Path, default=None, help=f"MOSI folder (default {DEFAULT_DATA.resolve()})")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the mosi config's)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (train.seed, +1, ...); >1 reports mean ± std")
    p.add_argument("--fusions", default=None, help="comma-separated fusion names (default: all registered)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument("--runs-dir", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads in each run; 0 = torch's default (one per core). Default 1: these models are "
        "tiny, and with 2 threads an epoch took ~5 s instead of ~0.07 s whenever another process held a core",
    )
    p.add_argument("--verbose", action="store_true", help="show the trainer's per-epoch log")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be >= 1")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    return args


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _aggregate(fusion: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    row: dict[str, Any] = {"fusion": fusion, "n_runs": len(runs), "n_ok": len(ok)}
    if len(ok) < len(runs):
        row["errors"] = [r["error"] for r in runs if "error" in r]
    if not ok:
        return row
    row["n_parameters"] = ok[0]["n_parameters"]
    for split in SPLITS:
        for m in METRICS:
            mean, std = _mean_std([r["metrics"].get(split, {}).get(m) for r in ok])
            row[f"{split}_{m}"] = {"mean": mean, "std": std}
    per_run_epoch_s = [statistics.fmean(r["epoch_seconds"]) for r in ok if r["epoch_seconds"]]
    mean, std = _mean_std(per_run_epoch_s)
    row["seconds_per_epoch"] = {"mean": mean, "std": std}
    row["epochs_run"] = [r["epochs_run"] for r in ok]
    for key in ("wall_seconds", "baseline_rss_mib", "train_peak_rss_mib", "run_peak_rss_mib"):
        mean, std = _mean_std([r.get(key) for r in ok])
        row[key] = {"mean": mean, "std": std}
    own = [r["train_peak_rss_mib"] - r["baseline_rss_mib"] for r in ok if r.get("train_peak_rss_mib") is not None]
    mean, std = _mean_std(own)
    row["own_peak_rss_mib"] = {"mean": mean, "std": std}
    return row


def _fmt(stat: dict[str, Any] | None, digits: int, scale: float = 1.0, suffix: str = "") -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + suffix


def _print_table(rows: list[dict[str, Any]], n_seeds: int, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption="scores in %; " + ("mean ± std over seeds" if n_seeds > 1 else "one seed"))
    table.add_column("fusion")
    for split in SPLITS:
        table.add_column(f"{split} acc", justify="right")
        table.add_column(f"{split} wF1", justify="right")
    for col in ("params", "epochs", "s/epoch", "train peak RSS MiB", "own MiB"):
        table.add_column(col, justify="right")
    for row in rows:
        if "n_parameters" not in row:
            table.add_row(row["fusion"], f"[red]failed: {row['errors'][0]}[/]")
            continue
        cells = [row["fusion"]]
        for split in SPLITS:
            cells += [_fmt(row[f"{split}_{m}"], 1, 100) for m in METRICS]
        cells += [
            f"{row['n_parameters']:,}",
            "/".join(str(e) for e in row["epochs_run"]),
            _fmt(row["seconds_per_epoch"], 2),
            _fmt(row["train_peak_rss_mib"], 0),
            _fmt(row["own_peak_rss_mib"], 0),
        ]
        if row["n_ok"] < row["n_runs"]:
            cells[0] += f" [red]({row['n_runs'] - row['n_ok']} failed)[/]"
        table.add_row(*cells)
    # Not a terminal (redirected, CI): rich would wrap the table at 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = (args.data if args.data is not None else DEFAULT_DATA).expanduser().resolve()
    if not data.is_dir():
        _fail(f"MOSI data folder not found: {data} (pass --data PATH)")
    missing = [f"{s}.npz" for s in ("train", *SPLITS) if not (data / f"{s}.npz").is_file()]
    if missing:
        _fail(f"MOSI data folder {data} lacks {', '.join(missing)}")

    from affectfusion.config import load_config
    from affectfusion.errors import AffectFusionError
    from affectfusion.io import read_json, write_json
    from affectfusion.models import FUSIONS

    fusions = FUSIONS.names() if args.fusions is None else [f.strip() for f in args.fusions.split(",") if f.strip()]
    unknown = [f for f in fusions if f not in FUSIONS]
    if unknown or not fusions:
        _fail(f"unknown fusion(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(FUSIONS.names())}")
    base = {"data.root": str(data), "train.progress": False}
    if args.epochs is not None:
        base["train.epochs"] = args.epochs
    try:
        cfg = load_config(CONFIG, base)
    except AffectFusionError as e:
        _fail(str(e))
    seeds = [cfg.train.seed + i for i in range(args.seeds)]
    env = environment()

    tmp = None if args.runs_dir else tempfile.TemporaryDirectory(prefix="mosi_fusion_")
    runs_dir = (args.runs_dir or Path(tmp.name)).resolve()
    ctx = mp.get_context("spawn")
    per_fusion: dict[str, list[dict[str, Any]]] = {f: [] for f in fusions}
    t_start = time.perf_counter()
    print(
        f"MOSI fusion benchmark: {len(fusions)} strategies x {len(seeds)} seed(s), {cfg.train.epochs} epochs max "
        f"(early stopping patience {cfg.train.early_stopping.patience if cfg.train.early_stopping else '-'}), "
        f"data {data}, runs in {runs_dir}",
        file=sys.stderr,
    )
    try:
        for fusion in fusions:
            for seed in seeds:
                run_dir = runs_dir / fusion / f"seed{seed}"
                result_path = run_dir.parent / f"seed{seed}.result.json"
                result_path.unlink(missing_ok=True)
                job = {
                    "fusion": fusion,
                    "seed": seed,
                    "run_dir": str(run_dir),
                    "overrides": {**base, "model.fusion.name": fusion, "train.seed": seed},
                    "threads": args.threads,
                    "verbose": args.verbose,
                }
                t0 = time.perf_counter()
                proc = ctx.Process(target=_train_one, args=(job, str(result_path)), name=f"mosi-{fusion}-{seed}")
                proc.start()
                proc.join()
                if result_path.is_file():
                    result = read_json(result_path)
                else:
                    result = {"fusion": fusion, "seed": seed, "error": f"child exited with code {proc.exitcode}"}
                per_fusion[fusion].append(result)
                status = result.get("error") or (
                    f"dev acc {result['metrics']['dev']['accuracy']:.3f}, {result['epochs_run']} epochs, "
                    f"train peak {result['train_peak_rss_mib'] or float('nan'):.0f} MiB"
                )
                print(f"  {fusion:<16} seed {seed}: {time.perf_counter() - t0:6.1f}s  {status}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if tmp is not None:
            tmp.cleanup()
    total = time.perf_counter() - t_start

    rows = [_aggregate(f, runs) for f, runs in per_fusion.items()]
    report = {
        "benchmark": "mosi_fusion",
        "caveat": (
            "The 50-d MOSI features were learned (with labels) on every utterance of train/dev/test_small, so "
            "dev/test_small scores are near 100% and say nothing about generalisation; use this benchmark for "
            "pipeline checks and speed/memory. Held-out official test split is measured elsewhere "
            "(logistic regression ~78%, published fusion models 80-82%)."
        ),
        "environment": env,
        "settings": {
            "config": CONFIG,
            "data": str(data),
            "epochs": cfg.train.epochs,
            "early_stopping": cfg.train.early_stopping.model_dump() if cfg.train.early_stopping else None,
            "batch_size": cfg.train.batch_size,
            "seeds": seeds,
            "fusions": fusions,
            "torch_threads": args.threads or env["torch_default_threads"],
            "runs_dir": str(runs_dir) if args.runs_dir else None,
            "memory_method": MEMORY_METHOD,
            "seconds_per_epoch": "mean of history.jsonl 'seconds' (train + validation) per run, then over seeds",
            "std": "sample standard deviation over seeds (null with one seed)",
        },
        "total_seconds": total,
        "rows": rows,
        "runs": [r for runs in per_fusion.values() for r in runs],
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    threads = f"{args.threads} torch thread(s)" if args.threads else f"{env['torch_default_threads']} torch threads"
    _print_table(
        rows,
        len(seeds),
        f"CMU-MOSI fusion strategies ({cfg.train.epochs} epochs max with early stopping, {threads}) — "
        "label-informed features: scores do not measure generalisation",
    )
    print(
        "Caveat: the 50-d MOSI features were learned on these utterances, so ~100% here says nothing about "
        "generalisation.\nMemory: " + MEMORY_METHOD + f".\nTotal {total:.0f}s; wrote {out}",
        file=sys.stderr,
    )
    if any(r["n_ok"] < r["n_runs"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
