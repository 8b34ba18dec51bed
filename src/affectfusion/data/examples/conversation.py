"""Example datasets of the conversation adapters: an MMSA feature pickle and synthetic conversations."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from affectfusion.data.examples import ExampleSpec


def mmsa(root: Path) -> ExampleSpec:
    """MMSA: ``<root>/unaligned_50.pkl``, a dict of train/valid/test, each a dict of per-clip arrays
    (``text`` [N, T, D], ``audio`` / ``vision`` with ``*_lengths``, ``regression_labels``, ``id``,
    ``raw_text``), ids ``<video>$_$<clip>``."""
    rng = np.random.default_rng(0)
    n = 4

    def part() -> dict:
        return {
            "id": np.array([f"vid{k // 2}$_${k % 2 + 1}" for k in range(n)], dtype=object),
            "raw_text": np.array([f"utterance {k}" for k in range(n)], dtype=object),
            "text": rng.normal(size=(n, 5, 6)).astype(np.float32),
            "audio": rng.normal(size=(n, 7, 3)).astype(np.float32),
            "vision": rng.normal(size=(n, 4, 2)).astype(np.float32),
            "audio_lengths": [7, 3, 5, 1],
            "vision_lengths": np.array([4, 2, 1, 3]),
            "regression_labels": np.array([-1.8, 0.0, 0.6, 2.4], dtype=np.float32),
            "classification_labels": np.array([0, 1, 2, 2], dtype=np.float32),
        }

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "unaligned_50.pkl", "wb") as f:
        pickle.dump({s: part() for s in ("train", "valid", "test")}, f, protocol=4)
    return ExampleSpec("valid", ("sentiment",), {"file": "unaligned_50.pkl"})


def synthetic_conversation(root: Path) -> ExampleSpec:
    """Generated in memory (the adapter reads no folder): three short conversations, three classes."""
    return ExampleSpec("dev", ("label",), {"n_conversations": 3, "min_length": 2, "max_length": 4})
