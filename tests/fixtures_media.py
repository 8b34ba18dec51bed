"""The config that trains on the small raw multimodal table of :func:`make_media_table` in seconds: the
fixture for serving tests (the table itself is written by the library's example writers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectfusion.data.examples.media import CLASSES, make_media_table

__all__ = ["make_media_table", "media_config", "media_table_config"]


def media_table_config(
    name: str,
    root: Path,
    cache: Path,
    inputs: dict[str, str],
    extract: dict[str, Any],
    classes: list[str],
    model: dict[str, Any],
    train: dict[str, Any],
) -> dict[str, Any]:
    """A raw ``media_table`` config over ``root/{train,dev,test}.csv`` with one ``emotion`` task. Leakage is
    allowed: generated media and template texts repeat across splits (check-data says so)."""
    return {
        "name": name,
        "data": {
            "adapter": "media_table",
            "root": str(root),
            "test_split": "test",
            "cache_dir": str(cache),
            "allow_leakage": True,
            "options": {"inputs": inputs, "targets": {"emotion": "emotion"}},
            "extract": extract,
        },
        "tasks": [{"name": "emotion", "type": "classification", "classes": classes}],
        "model": model,
        "train": {"progress": False, **train},
    }


def media_config(root: Path, cache: Path, fusion: str = "weighted") -> dict[str, Any]:
    """A raw config: lexicon text, MFCC audio, FER-CNN image (whole image, no face detector, also when
    serving: the drawn pattern images hold no face)."""
    return media_table_config(
        "media",
        root,
        cache,
        {"text": "text", "audio": "audio", "image": "image"},
        {
            "text": {"name": "lexicon"},
            "audio": {"name": "mfcc"},
            "image": {"name": "fer_cnn", "options": {"detector": "none", "serve_detector": "none"}},
        },
        CLASSES,
        {"hidden_dim": 16, "head_hidden": 16, "fusion": {"name": fusion}},
        {"epochs": 8, "batch_size": 12, "lr": 0.01},
    )
