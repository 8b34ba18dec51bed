"""A small raw multimodal dataset (text, wav, image per row, some rows missing media) in the
``media_table`` layout, with a config that trains on it in seconds: the fixture for serving tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

CLASSES = ["happy", "sad", "angry"]
WORDS = {
    "happy": ["wonderful", "great", "love", "joy", "delighted"],
    "sad": ["terrible", "lonely", "cry", "miserable", "loss"],
    "angry": ["furious", "hate", "outraged", "annoyed", "rage"],
}
SPLITS = {"train": 36, "dev": 12, "test": 12}
SR = 16000


def write_wav(path: Path, label: int, rng: np.random.Generator, seconds: float = 0.5) -> None:
    """A tone whose pitch depends on the class, plus noise."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = (220.0, 440.0, 880.0)[label] * rng.uniform(0.95, 1.05)
    sf.write(path, (0.4 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32), SR)


def write_image(path: Path, label: int, rng: np.random.Generator, size: int = 64) -> None:
    """A grey image whose brightness pattern depends on the class."""
    base = np.full((size, size), (60, 130, 200)[label], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    Image.fromarray(img).convert("RGB").save(path)


def make_media_table(root: Path, seed: int = 0) -> Path:
    """``<root>/{train,dev,test}.csv`` + ``media/``: every row has text; most have audio and image."""
    rng = np.random.default_rng(seed)
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    for split, n in SPLITS.items():
        rows = []
        for i in range(n):
            label = i % len(CLASSES)
            sid = f"{split}{i:03d}"
            words = rng.choice(WORDS[CLASSES[label]], size=3)
            row: dict[str, Any] = {"id": sid, "text": f"I feel {' and '.join(words)} today", "emotion": CLASSES[label]}
            row["audio"] = row["image"] = ""
            if i % 4 != 3:
                write_wav(media / f"{sid}.wav", label, rng)
                row["audio"] = f"media/{sid}.wav"
            if i % 3 != 2:
                write_image(media / f"{sid}.png", label, rng)
                row["image"] = f"media/{sid}.png"
            rows.append(row)
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    return root


def media_config(root: Path, cache: Path, fusion: str = "weighted") -> dict[str, Any]:
    """A raw config: lexicon text, MFCC audio, FER-CNN image (whole image, no face detector)."""
    return {
        "name": "media",
        "data": {
            "adapter": "media_table",
            "root": str(root),
            "test_split": "test",
            "cache_dir": str(cache),
            "options": {
                "inputs": {"text": "text", "audio": "audio", "image": "image"},
                "targets": {"emotion": "emotion"},
            },
            "extract": {
                "text": {"name": "lexicon"},
                "audio": {"name": "mfcc"},
                "image": {"name": "fer_cnn", "options": {"detector": "none"}},
            },
        },
        "tasks": [{"name": "emotion", "type": "classification", "classes": CLASSES}],
        "model": {"hidden_dim": 16, "head_hidden": 16, "fusion": {"name": fusion}},
        "train": {"epochs": 8, "batch_size": 12, "lr": 0.01, "progress": False},
    }
