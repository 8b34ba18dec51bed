"""Checkpoints as safetensors (tensors) + JSON (everything else); never pickle.

A checkpoint ``<stem>`` is ``<stem>.safetensors`` (model weights), ``<stem>.json`` (epoch, metrics,
trainer state) and, for resumable ones, ``<stem>.optim.safetensors`` (optimizer tensors; its
non-tensor state lives in the JSON). Every file is written to a temp name and renamed, JSON last,
so a checkpoint whose JSON exists is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from affectfusion.errors import AffectFusionError
from affectfusion.io import atomic_file, write_json

# Trainer counters a resumable checkpoint must hold.
RESUME_KEYS = ("epoch", "best_epoch", "bad_epochs")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_file(path, "wb") as f:
        f.write(save(data))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (OSError, SafetensorError) as e:
        raise AffectFusionError(f"cannot read weights {path}: {e}") from None


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        plain[str(idx)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                plain[str(idx)][key] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["plain_state"].items()}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    info: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    info = dict(info)
    save_tensors(stem.with_suffix(".safetensors"), model.state_dict())
    if optimizer is not None:
        tensors, meta = _split_optimizer_state(optimizer.state_dict())
        save_tensors(stem.with_suffix(".optim.safetensors"), tensors)
        info["optimizer"] = meta
    write_json(stem.with_suffix(".json"), info)


def load_checkpoint(stem: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load weights (strictly) and optionally optimizer state; returns the JSON info.

    Every problem is a one-line error that says how to start over.
    """
    info_path = stem.with_suffix(".json")
    start_over = f"to start over, train again with --overwrite (or delete {stem}.*)"
    if not info_path.is_file():
        raise AffectFusionError(f"checkpoint {info_path} not found")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AffectFusionError(f"checkpoint {info_path} is damaged ({e}); {start_over}") from None
    if not isinstance(info, dict):
        raise AffectFusionError(f"checkpoint {info_path} is damaged (expected a JSON object); {start_over}")
    if optimizer is not None:  # resuming: the trainer's counters must be there and be numbers
        bad = [k for k in RESUME_KEYS if not isinstance(info.get(k), int) or isinstance(info.get(k), bool)]
        best = info.get("best_value", "missing")  # null: no finite value yet (JSON has no NaN)
        if best is not None and (not isinstance(best, int | float) or isinstance(best, bool)):
            bad.append("best_value")
        if bad:
            raise AffectFusionError(
                f"checkpoint {info_path} is damaged ({', '.join(bad)} missing or not a number); {start_over}"
            )
    try:
        state = load_tensors(stem.with_suffix(".safetensors"))
    except AffectFusionError as e:
        raise AffectFusionError(f"{e}; {start_over}") from None
    _check_tensors(stem, state, model.state_dict(), start_over)
    model.load_state_dict(state)
    if optimizer is not None and "optimizer" in info:
        try:
            tensors = load_tensors(stem.with_suffix(".optim.safetensors"))
            optimizer.load_state_dict(_join_optimizer_state(tensors, info["optimizer"]))
        except (AffectFusionError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise AffectFusionError(f"optimizer state of checkpoint {stem} is damaged ({e}); {start_over}") from None
    return info


def _check_tensors(stem: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], fix: str) -> None:
    """The saved tensors are the model's, shape for shape, and finite: a diverged or damaged checkpoint
    is named here rather than turning every later prediction into NaN."""
    where = f"checkpoint {stem}.safetensors"
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise AffectFusionError(
            f"{where} does not match the model in its config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    shapes = [
        f"{k} {list(v.shape)} (model: {list(expected[k].shape)})"
        for k, v in state.items()
        if v.shape != expected[k].shape
    ]
    if shapes:
        raise AffectFusionError(
            f"{where} does not match the model in its config: {len(shapes)} tensors of another shape, e.g. "
            f"{'; '.join(shapes[:3])}; {fix}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise AffectFusionError(
            f"{where} holds non-finite weights (NaN or infinity) in {len(bad)} tensors, e.g. {', '.join(bad[:3])}: "
            f"training diverged or the file is damaged; {fix}"
        )
