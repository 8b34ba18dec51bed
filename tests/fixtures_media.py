"""The config that trains on the small raw multimodal table of :func:`make_media_table` in seconds: the
fixture for serving tests (the table itself is written by the library's example writers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectfusion.data.examples.media import CLASSES, make_media_table

__all__ = ["make_media_table", "media_config"]


def media_config(root: Path, cache: Path, fusion: str = "weighted") -> dict[str, Any]:
    """A raw config: lexicon text, MFCC audio, FER-CNN image (whole image, no face detector, also when
    serving: the drawn pattern images hold no face)."""
    return {
        "name": "media",
        "data": {
            "adapter": "media_table",
            "root": str(root),
            "test_split": "test",
            "cache_dir": str(cache),
            # Texts are drawn from a few template sentences, so some repeat across splits (check-data says so).
            "allow_leakage": True,
            "options": {
                "inputs": {"text": "text", "audio": "audio", "image": "image"},
                "targets": {"emotion": "emotion"},
            },
            "extract": {
                "text": {"name": "lexicon"},
                "audio": {"name": "mfcc"},
                "image": {"name": "fer_cnn", "options": {"detector": "none", "serve_detector": "none"}},
            },
        },
        "tasks": [{"name": "emotion", "type": "classification", "classes": CLASSES}],
        "model": {"hidden_dim": 16, "head_hidden": 16, "fusion": {"name": fusion}},
        "train": {"epochs": 8, "batch_size": 12, "lr": 0.01, "progress": False},
    }
