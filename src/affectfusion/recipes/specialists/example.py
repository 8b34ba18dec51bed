"""A tiny specialists run: the shipped ``emocare_specialists`` config on small splits and 16-d
synthetic features, one epoch per stage (about 3 s on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectfusion.runkinds import KindExample

MODALITIES = ("text", "image", "video")
DIM = 16


def example(folder: Path) -> KindExample:
    """No file to write: the shipped config with overrides; the input is one text feature vector."""
    stages = [f"specialists.{m}" for m in MODALITIES] + ["fusion"]
    overrides: dict[str, object] = {
        **{f"{s}.train.epochs": 1 for s in stages},
        **{f"{s}.train.progress": False for s in stages},
        "data.options.n_train": 120,
        "data.options.n_eval": 60,
        **{f"data.options.modalities.{m}.dim": DIM for m in MODALITIES},
    }
    return KindExample("emocare_specialists", overrides, {"text": np.ones(DIM, dtype=np.float32)})
