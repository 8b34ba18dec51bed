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
        if bad:
            raise AffectFusionError(
                f"checkpoint {info_path} is damaged ({', '.join(bad)} missing or not an integer); {start_over}"
            )
    try:
        state = load_tensors(stem.with_suffix(".safetensors"))
    except AffectFusionError as e:
        raise AffectFusionError(f"{e}; {start_over}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise AffectFusionError(
            f"checkpoint {stem}.safetensors does not match the model in its config "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        )
    if optimizer is not None and "optimizer" in info:
        try:
            tensors = load_tensors(stem.with_suffix(".optim.safetensors"))
            optimizer.load_state_dict(_join_optimizer_state(tensors, info["optimizer"]))
        except (AffectFusionError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise AffectFusionError(f"optimizer state of checkpoint {stem} is damaged ({e}); {start_over}") from None
    return info
