"""``affectfusion train <config>`` for ``kind: vlm``: LoRA fine-tuning of a local BLIP-2 on face images.

Each labelled image is aligned and cropped by the face pipeline, paired with the prompt and the
answer built from its label (:mod:`affectfusion.recipes.vlm.targets`), and the LoRA weights (only those)
are trained with AdamW on the answer tokens' cross-entropy. After training the adapter is saved
(safetensors + JSON) and the model answers every validation (and test) image; the parsed answers
are scored against the labels.

Run directory::

    runs/<name>/
      config.yaml            resolved config (kind: vlm; model.path made absolute)
      meta.json              classes and label map, base model summary, parameter counts, timings, versions
      history.jsonl          mean training loss every train.log_every steps
      adapter/               adapter_config.json + adapter_model.safetensors (LoRA weights only)
      eval/<split>/          metrics.json, predictions.csv (generated text and parsed fields per image)
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

import affectfusion
from affectfusion.device import describe, resolve_device
from affectfusion.errors import AffectFusionError
from affectfusion.io import append_jsonl, write_json, write_text
from affectfusion.recipes.vlm.config import VLMConfig, require_model_path, validate_vlm
from affectfusion.recipes.vlm.evaluate import evaluate_items
from affectfusion.recipes.vlm.items import cap_items, load_items, prepare_faces
from affectfusion.recipes.vlm.model import ADAPTER_DIR, add_lora, load_blip2, trainable_parameters, training_batch
from affectfusion.recipes.vlm.predictor import FacePreparer, VLMPredictor, base_model_summary
from affectfusion.recipes.vlm.targets import resolve_label_map, target_text
from affectfusion.rundir import RunPaths, default_run_dir
from affectfusion.runkinds import TrainRequest
from affectfusion.threads import apply_threads


def _check_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing folder unless ``overwrite`` (and then only a run directory): before any work."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise AffectFusionError(f"{out} already exists; pass --overwrite to replace it or --out to train elsewhere")
        if not RunPaths(out).config.is_file():
            raise AffectFusionError(f"{out} is not empty and is not a run directory; refusing to delete it")


def _prepare_run_dir(out: Path, overwrite: bool) -> None:
    _check_run_dir(out, overwrite)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def fit_lora(
    model: Any,
    processor: Any,
    cfg: VLMConfig,
    crops: Sequence[np.ndarray],
    answers: Sequence[str],
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> list[float]:
    """Train the model's trainable (LoRA) parameters; returns the loss of every step.

    Batches are drawn from a seeded permutation of the examples, one pass after another.
    """
    t = cfg.train
    n = len(crops)
    steps_per_epoch = math.ceil(n / t.batch_size)
    total = t.steps if t.steps is not None else (t.epochs or 1) * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    rng = np.random.default_rng(t.seed)
    order: list[int] = []
    losses: list[float] = []
    window: list[float] = []
    started = time.perf_counter()
    model.train()
    for step in range(1, total + 1):
        if len(order) < t.batch_size:  # refill with the next pass (a short tail joins the next pass)
            order.extend(rng.permutation(n).tolist())
        batch, order = order[: t.batch_size], order[t.batch_size :]
        inputs = training_batch(processor, model, [crops[i] for i in batch], cfg.prompt, [answers[i] for i in batch])
        loss = model(**inputs).loss
        if not torch.isfinite(loss):
            raise AffectFusionError(f"training loss is {loss.item()} at step {step}; lower train.lr")
        loss.backward()
        if t.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.item()))
        window.append(losses[-1])
        if on_log is not None and (step % t.log_every == 0 or step == total):
            on_log(
                {
                    "step": step,
                    "epoch": (step - 1) // steps_per_epoch + 1,
                    "loss": float(np.mean(window)),
                    "lr": t.lr,
                    "seconds": time.perf_counter() - started,
                }
            )
            window = []
    model.eval()
    return losses


def _versions() -> dict[str, str]:

    out = {"affectfusion": affectfusion.__version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "opencv-python-headless"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def save_adapter(model: Any, out: Path) -> Path:
    """LoRA weights only, as safetensors + JSON, written to a temp folder and renamed into place."""
    final = out / ADAPTER_DIR
    tmp = out / f".{ADAPTER_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "README.md").unlink(missing_ok=True)  # peft's model-card template; says nothing about this run
    pickled = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    if pickled or not (tmp / "adapter_model.safetensors").is_file():
        raise AffectFusionError(f"adapter was not saved as safetensors (found {pickled or 'no weights'})")
    umask = os.umask(0)
    os.umask(umask)
    for f in tmp.iterdir():  # safetensors writes 0600; results should be as readable as any file
        f.chmod(0o666 & ~umask)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def train_kind(request: TrainRequest) -> Path:
    """``affectfusion train`` for a ``kind: vlm`` config (read once, by the request)."""
    cfg = validate_vlm(request.merged, request.where, request.overrides)
    return fit_vlm(cfg, request.config, request.out, request.overwrite)


def fit_vlm(cfg: VLMConfig, source: str, out: Path | None, overwrite: bool) -> Path:
    """Train LoRA adapters for a validated VLM config; returns the run directory (default ``runs/<name>``)."""
    model_dir = require_model_path(cfg, str(source))
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(model_dir.resolve())})})
    out = Path(out) if out is not None else default_run_dir(cfg.name)
    console = Console(stderr=True)
    log = console.print if cfg.train.progress else (lambda *a, **k: None)
    t = cfg.train

    # Run folder and data first: a wrong --out or data.root fails before a multi-GB model loads.
    _check_run_dir(out, overwrite)
    splits = [cfg.data.train_split, cfg.data.val_split] + ([cfg.data.test_split] if cfg.data.test_split else [])
    all_items = {s: load_items(cfg, s) for s in dict.fromkeys(splits)}
    classes = sorted({i.label for items in all_items.values() for i in items})
    label_map = resolve_label_map(classes, cfg.targets.label_map)
    items = {s: cap_items(v, t.cap(s), t.seed) for s, v in all_items.items()}

    _prepare_run_dir(out, overwrite)
    torch.manual_seed(t.seed)
    started = time.perf_counter()
    model, processor = load_blip2(model_dir, cfg.model.dtype)
    base = base_model_summary(model)
    model = add_lora(model, cfg.lora)
    counts = trainable_parameters(model)
    device = resolve_device(t.device, "train.device")
    if device.type == "cpu":
        apply_threads(t.threads, counts["n_parameters"])
    model.to(device)  # safetensors stores tensors without their device: a GPU-trained run loads anywhere
    meta: dict[str, Any] = {
        "kind": "vlm",
        "base_model_path": cfg.model.path,
        "base_model": base,
        "classes": classes,
        "label_map": label_map,
        "prompt": cfg.prompt,
        "n_samples": {s: len(v) for s, v in items.items()},
        **counts,
        "load_seconds": time.perf_counter() - started,
        "device": describe(device),
        "versions": _versions(),
        "finished": False,
    }
    write_text(RunPaths(out).config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_json(RunPaths(out).meta, meta)
    log(
        f"[bold]{cfg.name}[/]: BLIP-2 ({base['language_model']}) + LoRA r={cfg.lora.r} on "
        f"{', '.join(cfg.lora.target_modules)}: {counts['n_trainable']:,} of {counts['n_parameters']:,} "
        f"parameters train; {len(items[cfg.data.train_split])} train images"
    )

    preparer = FacePreparer(cfg.face, cfg.image_size)
    train_items = items[cfg.data.train_split]
    log(f"aligning faces in {len(train_items)} train images ({cfg.face.detector}, {cfg.image_size}x{cfg.image_size})")
    prepared, failures = prepare_faces(train_items, preparer)
    keep = [(item, crop, found) for item, (crop, found) in zip(train_items, prepared, strict=True) if crop is not None]
    if not keep:
        raise AffectFusionError(f"train split {cfg.data.train_split!r}: no usable image ({'; '.join(failures[:3])})")
    crops = [crop for _, crop, _ in keep]
    answers = [target_text(label_map[item.label]) for item, _, _ in keep]
    meta["train_faces_found"] = sum(found for _, _, found in keep)
    meta["train_images_left_out"] = len(train_items) - len(keep)
    meta["train_unreadable"] = failures[:20]

    history = RunPaths(out).history

    def on_log(record: dict[str, Any]) -> None:
        append_jsonl(history, record)
        log(f"  step {record['step']}: loss {record['loss']:.4f} ({record['seconds']:.0f} s)", highlight=False)

    train_started = time.perf_counter()
    losses = fit_lora(model, processor, cfg, crops, answers, on_log)
    meta["train_seconds"] = time.perf_counter() - train_started
    meta["steps"] = len(losses)
    meta["seconds_per_step"] = meta["train_seconds"] / max(1, len(losses))
    meta["first_loss"], meta["last_loss"] = losses[0], losses[-1]
    adapter = save_adapter(model, out)
    meta["adapter_bytes"] = sum(f.stat().st_size for f in adapter.iterdir())
    write_json(RunPaths(out).meta, meta)

    predictor = VLMPredictor(cfg, model, processor, label_map)
    meta["eval"] = {}
    for split in dict.fromkeys(s for s in (cfg.data.val_split, cfg.data.test_split) if s):
        log(f"generating answers for {len(items[split])} {split!r} images")
        metrics = evaluate_items(
            predictor, items[split], RunPaths(out).eval_dir(split), split, console if t.progress else None
        )
        meta["eval"][split] = {k: metrics.get(k) for k in ("n", "accuracy", "macro_f1", "parse_rate")}
        log(
            f"  {split}: accuracy {metrics.get('accuracy', float('nan')):.3f}, macro F1 "
            f"{metrics.get('macro_f1', float('nan')):.3f}, parse rate {metrics.get('parse_rate', float('nan')):.3f} "
            f"(n={metrics['n']})",
            highlight=False,
        )
    meta["finished"] = True
    meta["total_seconds"] = time.perf_counter() - started
    write_json(RunPaths(out).meta, meta)
    return out
