"""A tiny vision-language run: the shipped ``face_vlm_lora`` config on a tiny random BLIP-2
(:mod:`affectfusion.recipes.vlm.tiny`) and two plain images per split, a few LoRA steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectfusion.recipes.vlm.tiny import build_tiny_blip2
from affectfusion.runkinds import KindExample


def example(folder: Path) -> KindExample:
    """Write the model and an ``image_folder`` dataset under ``folder``; the input is one image file."""
    from PIL import Image  # the image stack: only when the example is written

    folder = Path(folder)
    for split in ("train", "dev"):
        for label, value in (("happy", 40), ("sad", 210)):
            (folder / "faces" / split / label).mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8))
            image.save(folder / "faces" / split / label / f"{label}.png")
    overrides = {
        "model.path": str(build_tiny_blip2(folder / "blip2", overwrite=True)),
        "data.root": str(folder / "faces"),
        "data.test_split": None,
        "train.epochs": None,
        "train.steps": 2,
        "train.batch_size": 2,
        "train.progress": False,
        "generation.max_new_tokens": 8,
    }
    return KindExample("face_vlm_lora", overrides, {"image": str(folder / "faces" / "dev" / "happy" / "happy.png")})
