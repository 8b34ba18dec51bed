"""GPU check, under 5 minutes: train on CUDA in fp32 and bf16, compare with the CPU, predict a CUDA run on the CPU.

    python benchmarks/gpu_check.py [--epochs 3] [--quick] [--out FILE]

Two workloads: the demo config (synthetic 3-modality data, cross-attention fusion) and an ``hf_audio``
config on a tiny random WavLM built from its config (nothing is downloaded: the script writes the model
and 48 short synthetic clips itself), frames from all layers with the ``layer_weighted`` encoder.
Each is trained on the CPU (fp32, the reference) and, when torch sees a GPU, on CUDA in fp32 and bf16;
the table gives seconds per epoch and the speed-up over the CPU. Then the CUDA fp32 run is loaded on
the CPU and must predict the same test labels it predicted on the GPU (checkpoints are device-free).

On a machine without CUDA it says so, trains the CPU arms only and still runs the reload check (so the
script is tested everywhere). Needs only the package importable from ``src/`` and its dependencies
(pydantic, typer, rich, transformers, ...): no Whisper or MiniLM weights. Writes JSON (default
``benchmarks/results/gpu_check.json``); exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runs from a bare checkout, no install

from common import RESULTS, environment  # benchmarks/ is on sys.path when a script runs

CLASSES = ["low", "mid", "high"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run: small data, 1 epoch (what the tests run)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    args.out = args.out or RESULTS / ("gpu_check_quick.json" if args.quick else "gpu_check.json")
    return args


def make_speech_data(root: Path, n: int) -> Path:
    """``{train,dev,test}.csv`` + ``media/*.wav``: tones whose pitch gives the class, and a tiny random WavLM."""
    import numpy as np
    import pandas as pd
    import soundfile as sf
    import torch
    import transformers as t

    rng = np.random.default_rng(0)
    (root / "media").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("dev", n // 2), ("test", n // 2)):
        rows = []
        for i in range(count):
            label = i % 3
            seconds = rng.uniform(0.5, 1.2)
            time_axis = np.arange(int(seconds * 16000)) / 16000
            wave = 0.4 * np.sin(2 * np.pi * (200, 400, 800)[label] * time_axis) + 0.02 * rng.standard_normal(
                time_axis.size
            )
            sf.write(root / "media" / f"{split}{i}.wav", wave.astype(np.float32), 16000)
            rows.append({"id": f"{split}{i}", "audio": f"media/{split}{i}.wav", "level": CLASSES[label]})
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    torch.manual_seed(0)
    size = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128}
    config = t.WavLMConfig(
        **size,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    t.WavLMModel(config).save_pretrained(root / "wavlm")
    t.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(root / "wavlm")
    return root


def workloads(root: Path, epochs: int, quick: bool) -> dict[str, dict[str, Any]]:
    """Name -> raw config overrides / configs of the two workloads."""
    from affectfusion.config import load_config

    demo = load_config(
        "demo",
        {
            "model.fusion.name": "cross_attention",
            "train.epochs": epochs,
            "train.early_stopping": None,
            "train.progress": False,
            **({"data.options.n_train": 300, "data.options.n_eval": 90} if quick else {}),
        },
    )
    speech = {
        "name": "gpu_check_hf_audio",
        "data": {
            "adapter": "media_table",
            "root": str(root),
            "test_split": "test",
            "cache_dir": str(root / "cache"),
            "options": {"inputs": {"audio": "audio"}, "targets": {"level": "level"}},
            "extract": {"audio": {"name": "hf_audio", "options": {"model_path": str(root / "wavlm"), "layers": "all"}}},
        },
        "tasks": [{"name": "level", "type": "classification", "classes": CLASSES}],
        "model": {
            "hidden_dim": 64,
            "head_hidden": 64,
            "encoders": {"audio": {"name": "layer_weighted", "options": {"layers": 5}}},
        },
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.003, "progress": False, "early_stopping": None},
    }
    return {"demo": demo.to_dict(), "hf_audio": speech}


def train_arm(raw: dict[str, Any], device: str, precision: str, out: Path) -> dict[str, Any]:
    from rich.console import Console

    from affectfusion.config import apply_overrides, validate
    from affectfusion.io import read_jsonl
    from affectfusion.training.trainer import Trainer

    cfg = validate(apply_overrides(raw, {"train.device": device, "train.precision": precision}))
    t0 = time.perf_counter()
    metrics = Trainer(cfg, out, Console(stderr=True, quiet=True)).fit(overwrite=True)
    history = list(read_jsonl(out / "history.jsonl"))
    primary = metrics["test"]
    return {
        "device": device,
        "precision": precision,
        "wall_s": time.perf_counter() - t0,
        "s_per_epoch": sum(r["seconds"] for r in history) / len(history),
        "test_accuracy": primary.get("accuracy"),
        "run": str(out),
    }


def reload_on_cpu(run_dir: Path) -> dict[str, Any]:
    """Load a run on the CPU and compare its test predictions with those the run wrote where it trained."""
    import pandas as pd

    from affectfusion.pipeline import load_dataset
    from affectfusion.rundir import read_run
    from affectfusion.training.loading import load_model
    from affectfusion.training.predict import predict

    run = read_run(run_dir)
    model = load_model(run, device="cpu")
    preds = predict(model, load_dataset(run.config, "test", modalities=run.modalities), run.scalers)
    task = run.config.tasks[0]
    saved = pd.read_csv(run.paths.eval_dir("test") / "predictions.csv")
    labels = [task.classes[i] for i in preds.pred[task.name]]
    same = float((saved[f"{task.name}_pred"].astype(str).to_numpy() == labels).mean())
    return {"run": str(run_dir), "trained_on": run.meta.get("device"), "same_labels_on_cpu": same}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import torch
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json

    env = environment()
    cuda = torch.cuda.is_available()
    if cuda:
        print(f"CUDA: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
    else:
        print(f"CUDA is absent: torch {torch.__version__} sees no GPU; training the CPU arms only", file=sys.stderr)
    arms = [("cpu", "fp32")] + ([("cuda", "fp32"), ("cuda", "bf16")] if cuda else [])
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = make_speech_data(Path(tmp) / "speech", 24 if args.quick else 96)
        for name, raw in workloads(root, args.epochs, args.quick).items():
            results[name] = []
            for device, precision in arms:
                print(f"{name}: {device} {precision} ...", file=sys.stderr)
                results[name].append(train_arm(raw, device, precision, Path(tmp) / f"{name}_{device}_{precision}"))
        reference = "cuda" if cuda else "cpu"
        reloads = {
            name: reload_on_cpu(
                Path(next(r["run"] for r in rows if r["device"] == reference and r["precision"] == "fp32"))
            )
            for name, rows in results.items()
        }
    table = Table(title=f"gpu_check ({args.epochs} epochs): seconds per epoch, speed-up over this machine's CPU")
    for col in ("workload", "device", "precision", "s/epoch", "speed-up", "test acc"):
        table.add_column(col, justify="right")
    for name, rows in results.items():
        cpu_s = rows[0]["s_per_epoch"]
        for r in rows:
            r["speedup_over_cpu"] = cpu_s / r["s_per_epoch"]
            table.add_row(
                name,
                r["device"],
                r["precision"],
                f"{r['s_per_epoch']:.2f}",
                f"{r['speedup_over_cpu']:.1f}x",
                f"{r['test_accuracy']:.3f}",
            )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    ok = all(r["same_labels_on_cpu"] == 1.0 for r in reloads.values())
    for name, r in reloads.items():
        print(
            f"{name}: run trained on {r['trained_on']} predicts {100 * r['same_labels_on_cpu']:.1f}% "
            "of its test labels again on the CPU",
            file=sys.stderr,
        )
    write_json(
        args.out,
        {
            "benchmark": "gpu_check",
            "environment": env,
            "cuda_available": cuda,
            "epochs": args.epochs,
            "results": results,
            "reload_on_cpu": reloads,
            "ok": ok,
        },
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
