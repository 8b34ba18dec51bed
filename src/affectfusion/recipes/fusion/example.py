"""A tiny fusion run: three synthetic feature modalities, 3 classes, a few epochs (about 2 s on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from affectfusion.runkinds import KindExample

TEXT_DIM = 8


def example(folder: Path) -> KindExample:
    """Write the config into ``folder``; the input is one text feature vector."""
    config = {
        "name": "tiny_fusion",
        "data": {
            "adapter": "synthetic",
            "val_split": "dev",
            "test_split": "test",
            "options": {
                "modalities": {
                    "text": {"dim": TEXT_DIM, "informativeness": 1.0},
                    "audio": {"dim": 6, "seq_len": 5, "informativeness": 0.6},
                },
                "num_classes": 3,
                "n_train": 120,
                "n_eval": 60,
            },
        },
        "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b", "c"]}],
        "model": {"hidden_dim": 16, "head_hidden": 16},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "progress": False},
    }
    path = Path(folder) / "tiny_fusion.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return KindExample(str(path), {}, {"text": np.ones(TEXT_DIM, dtype=np.float32)})
