"""Training at research scale: a CMU-MOSEI-shaped synthetic set at growing sizes, memory and speed.

    .venv/bin/python benchmarks/scale.py [--sizes 2000,8000,32000] [--eval 1000] [--out FILE] [--work DIR]

The data are shaped like MOSEI's unaligned features: text 768-d x <= 50 steps, audio 74-d x <= 400
frames, video 35-d x <= 400 frames (lengths drawn in [T/2, T]), a sentiment value in [-3, 3]; the
model is ``mean`` encoders (``--real-frames``, ``--pool-before``: its options) and ``concat`` fusion
(hidden 128, the defaults), one epoch, batch 64,
one torch thread. Each size is ``affectfusion train`` in a fresh interpreter with an empty feature
cache, so the split shards are written in the measured run. Reported per size: the feature bytes
of all splits (train + dev + test), the training process's peak RSS, the seconds spent loading
(data check, splits, input statistics; wall and CPU), the epoch's seconds (training and validation,
``history.jsonl``), the CPU seconds and samples per CPU second of its training part, the samples per
CPU second of the batches alone (one pass of the train loader without a model) and the command's
wall time. With one thread, CPU seconds are what an idle core would take: on a shared machine the
wall times grow with the other processes' load. Prints a table and writes JSON (default
``benchmarks/results/scale.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from common import RESULTS, environment

HERE = Path(__file__).resolve().parent


def mosei_like(n_train: int, n_eval: int, cache: Path, encoder_options: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"mosei_like_{n_train}",
        "data": {
            "adapter": "synthetic",
            "val_split": "dev",
            "test_split": "test",
            "cache_dir": str(cache),
            "options": {
                "modalities": {
                    "text": {"dim": 768, "seq_len": 50, "noise": 0.3},
                    "audio": {"dim": 74, "seq_len": 400},
                    "video": {"dim": 35, "seq_len": 400},
                },
                "task": "regression",
                "target_range": [-3.0, 3.0],
                "n_train": n_train,
                "n_eval": n_eval,
                "groups": 1000,
                "target_name": "sentiment",
            },
        },
        "tasks": [{"name": "sentiment", "type": "regression"}],
        "model": {
            "encoder": {"name": "mean", "options": encoder_options},
            "fusion": {"name": "concat"},
        },
        "train": {"epochs": 1, "batch_size": 64, "threads": 1, "progress": False, "seed": 0},
    }


def child(config: Path, out: Path, report: Path) -> None:
    """``affectfusion train`` in this interpreter, timing its stages; peak RSS and timings to ``report``."""
    started = time.perf_counter()
    from affectfusion.cli.app import app
    from affectfusion.data.tasks import collator_for
    from affectfusion.models import model as model_mod
    from affectfusion.training import trainer

    timings: dict[str, float] = {"load_s": 0.0, "load_cpu_s": 0.0, "epoch_train_s": 0.0, "epoch_train_cpu_s": 0.0}

    def timed(fn: Any, key: str) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                timings[key] += time.perf_counter() - t
                timings[key.replace("_s", "_cpu_s")] += time.process_time() - c

        return wrapper

    trainer.guard_leakage = timed(trainer.guard_leakage, "load_s")
    trainer.Trainer._prepare_data = timed(trainer.Trainer._prepare_data, "load_s")  # type: ignore[method-assign]
    model_mod.MultimodalModel.fit_input_norm = timed(model_mod.MultimodalModel.fit_input_norm, "load_s")  # type: ignore[method-assign]
    trainer.train_epoch = timed(trainer.train_epoch, "epoch_train_s")
    app(["train", str(config), "--out", str(out), "--overwrite"], standalone_mode=False)
    timings["wall_s"] = time.perf_counter() - started

    from torch.utils.data import DataLoader

    from affectfusion.config import load_config
    from affectfusion.pipeline import load_dataset

    cfg = load_config(config)
    ds = load_dataset(cfg, "train")
    loader = DataLoader(ds, batch_size=64, shuffle=True, collate_fn=collator_for(ds.modalities, cfg.tasks))
    c = time.process_time()
    for _ in loader:
        pass
    timings["batches_only_cpu_s"] = time.process_time() - c
    timings["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report.write_text(json.dumps(timings))


def measure(n: int, n_eval: int, work: Path, encoder_options: dict[str, Any]) -> dict[str, Any]:
    cache, run = work / f"cache_{n}", work / f"run_{n}"
    shutil.rmtree(cache, ignore_errors=True)
    config, report = work / f"mosei_like_{n}.yaml", work / f"report_{n}.json"
    config.write_text(yaml.safe_dump(mosei_like(n, n_eval, cache, encoder_options), sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__)), "--child", str(config), str(run), str(report)]
    subprocess.run(cmd, check=True, env=env, cwd=HERE)
    r = json.loads(report.read_text())
    array_bytes = sum(f.stat().st_size for f in (cache / "splits").glob("*/*.f32"))
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    shutil.rmtree(cache, ignore_errors=True)  # the next size needs the disk
    return {
        "n_train": n,
        "n_eval": n_eval,
        "encoder_options": encoder_options,
        "array_gb": array_bytes / 1e9,
        "peak_rss_gb": r["peak_rss_gb"],
        "load_s": r["load_s"],
        "load_cpu_s": r["load_cpu_s"],
        "epoch_s": history[0]["seconds"],
        "train_s": r["epoch_train_s"],
        "train_cpu_s": r["epoch_train_cpu_s"],
        "samples_per_s": n / r["epoch_train_s"],
        "samples_per_cpu_s": n / r["epoch_train_cpu_s"],
        "batches_samples_per_cpu_s": n / r["batches_only_cpu_s"],
        "wall_s": r["wall_s"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000,8000,32000", help="train sizes, comma-separated")
    p.add_argument("--eval", type=int, default=1000, help="samples in dev and in test")
    p.add_argument("--work", default="/tmp/affectfusion_scale", help="configs, runs and caches (deleted per size)")
    p.add_argument("--real-frames", action="store_true", help="the mean encoder's real_frames option")
    p.add_argument("--pool-before", action="store_true", help="the mean encoder's pool: before (average, then project)")
    p.add_argument("--out", default=str(RESULTS / "scale.json"))
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    env = environment()
    options = {**({"real_frames": True} if a.real_frames else {}), **({"pool": "before"} if a.pool_before else {})}
    rows = []
    head = f"{'train':>7} {'array GB':>8} {'peak RSS GB':>11} {'load s (cpu)':>13} {'epoch s':>8} "
    print(head + f"{'train cpu s':>11} {'samples/cpu-s':>13} {'batches only':>12} {'wall s':>7}")
    for n in (int(s) for s in a.sizes.split(",")):
        r = measure(n, a.eval, work, options)
        rows.append(r)
        print(
            f"{n:>7} {r['array_gb']:>8.2f} {r['peak_rss_gb']:>11.2f} {r['load_s']:>6.1f} ({r['load_cpu_s']:>4.1f}) "
            f"{r['epoch_s']:>8.1f} {r['train_cpu_s']:>11.1f} {r['samples_per_cpu_s']:>13.0f} "
            f"{r['batches_samples_per_cpu_s']:>12.0f} {r['wall_s']:>7.1f}",
            flush=True,
        )
    print("samples/cpu-s: training samples per CPU second of the epoch's training part (one thread, so")
    print("the speed on an idle core); batches only: the same for one pass of the train loader, no model")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
