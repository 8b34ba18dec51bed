"""The labelled face images of a VLM run: loading, capping and face preparation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectfusion.config import DataConfig
from affectfusion.data import build_adapter
from affectfusion.errors import AffectFusionError
from affectfusion.extract.face import load_image
from affectfusion.recipes.vlm.config import VLMConfig
from affectfusion.recipes.vlm.predictor import FacePreparer

NO_LABEL = "<none>"  # the predicted class when the answer names no usable emotion


@dataclass(frozen=True)
class FaceItem:
    """One labelled image of a split."""

    id: str
    source: str | None
    path: Path
    label: str


def load_items(cfg: VLMConfig, split: str) -> list[FaceItem]:
    """All labelled images of a split, from the configured dataset adapter."""

    data = cfg.data
    adapter = build_adapter(DataConfig(adapter=data.adapter, root=data.root, options=data.options))
    root = Path(data.root).expanduser() if data.root is not None else None
    if adapter.needs_root and root is None:
        raise AffectFusionError(f"data.root is not set; the {data.adapter!r} adapter reads a folder")
    if root is not None and not root.exists():
        raise AffectFusionError(f"data.root {str(root)!r} does not exist")
    items = []
    for s in adapter.load(root, split):
        path = s.raw.get("image")
        if path is None:
            raise AffectFusionError(f"data.adapter {data.adapter!r} gives no raw image for sample {s.id!r}")
        labels = [v for v in s.targets.values() if v is not None]
        if len(labels) != 1:
            raise AffectFusionError(f"{data.adapter} split {split!r}: sample {s.id!r} needs exactly one class label")
        items.append(FaceItem(s.id, s.source, Path(path), str(labels[0])))
    if not items:
        raise AffectFusionError(f"{data.adapter} split {split!r}: no samples")
    return items


def cap_items(items: list[FaceItem], cap: int | None, seed: int) -> list[FaceItem]:
    """At most ``cap`` items, a seeded random subset kept in its original order."""
    if cap is None or cap >= len(items):
        return items
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=cap, replace=False))
    return [items[i] for i in keep]


def prepare_faces(
    items: Sequence[FaceItem], preparer: FacePreparer
) -> tuple[list[tuple[np.ndarray | None, bool]], list[str]]:
    """Face crops per item; unreadable images yield ``(None, False)`` and a one-line reason each."""

    prepared, failures = [], []
    for item in items:
        try:
            prepared.append(preparer(load_image(item.path)))
        except AffectFusionError as e:
            prepared.append((None, False))
            failures.append(f"{item.source or item.path}: {e}")
    return prepared, failures
