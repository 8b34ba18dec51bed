"""The four runs ``hostile.py`` serves, trained in seconds, and one valid request for each.

- ``features``: synthetic features of 12 modalities (``m00`` .. ``m11``, ``[4, 8]`` each): the
  explain and conversation cases need a run that takes many modalities as arrays.
- ``image``: the serving tests' raw media run (lexicon text, MFCC audio, FER-CNN image).
- ``video``: ``video_faces`` on whole frames of short drawn-face clips.
- ``eeg``: ``eeg_bands`` on the EAV example layout (30 channels at 500 Hz, EEG only).
- ``conversation``: synthetic conversations (``text`` and ``audio`` features, ``[8]``) with a GRU
  context stage: each turn is read with the others, so one bad turn could change them.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = ("features", "image", "video", "eeg", "conversation")
N_MODALITIES, DIM, SEQ = 12, 8, 4


def _fit(raw: dict[str, Any], out: Path) -> Path:
    from rich.console import Console

    from affectfusion.config import validate
    from affectfusion.training.trainer import Trainer

    Trainer(validate(raw), out, console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return out


def features_run(base: Path) -> Path:
    modalities = {f"m{i:02d}": {"dim": DIM, "seq_len": SEQ, "informativeness": 0.5} for i in range(N_MODALITIES)}
    raw = {
        "name": "features12",
        "data": {
            "adapter": "synthetic",
            "val_split": "dev",
            "test_split": "test",
            "options": {"modalities": modalities, "num_classes": 3, "n_train": 120, "n_eval": 40},
        },
        "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b", "c"]}],
        "model": {"hidden_dim": 16, "head_hidden": 16},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "progress": False},
    }
    return _fit(raw, base / "run")


def image_run(base: Path) -> Path:
    from tests.fixtures_media import make_media_table, media_config

    return _fit(media_config(make_media_table(base / "data"), base / "cache"), base / "run")


def video_run(base: Path) -> Path:
    from tests.fixtures_serve import train_video_run

    return train_video_run(base, n_train=8, epochs=3)


def eeg_run(base: Path) -> Path:
    from affectfusion.data.examples.eav import make_eav

    root = make_eav(base / "data", n_subjects=3, trials_per_class=1, eeg_seconds=2.0, audio_seconds=0.5, video=False)
    raw = {
        "name": "eeg",
        "data": {
            "adapter": "eav",
            "root": str(root),
            "val_split": "dev",
            "test_split": "test",
            "cache_dir": str(base / "cache"),
            "options": {"modalities": ["eeg"], "splits": {"train": [1], "dev": [2], "test": [3]}},
            "extract": {"eeg": {"name": "eeg_bands"}},
        },
        "tasks": [
            {
                "name": "emotion",
                "type": "classification",
                "classes": ["neutral", "sadness", "anger", "happiness", "calmness"],
            }
        ],
        "model": {"hidden_dim": 8, "head_hidden": 8},
        "train": {"epochs": 2, "batch_size": 8, "progress": False},
    }
    return _fit(raw, base / "run")


def conversation_run(base: Path) -> Path:
    from tests.helpers import conversation_config

    raw = conversation_config("gru")
    raw["train"]["epochs"] = 4
    return _fit(raw, base / "run")


def build(name: str, base: Path) -> Path:
    """Train run ``name`` (one of :data:`RUNS`) under ``base``; returns its folder."""
    sys.path.insert(0, str(REPO_ROOT))  # the fixture writers live with the tests
    base.mkdir(parents=True, exist_ok=True)
    runs = {"features": features_run, "image": image_run, "video": video_run, "eeg": eeg_run}
    return {**runs, "conversation": conversation_run}[name](base)


def npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def valid_request(name: str, tmp: Path) -> Callable[[httpx.Client], httpx.Response]:
    """One small request the run answers with 200: what a legitimate client sends during an attack."""
    if name == "features":
        item = {"features": {f"m{i:02d}": [[0.1] * DIM] * SEQ for i in range(N_MODALITIES)}}
        return lambda c: c.post("/predict/batch", json={"items": [item]})
    if name == "conversation":
        pair = {"features": {"text": [0.1] * 8, "audio": [0.2] * 8}}
        return lambda c: c.post("/predict/batch", json={"items": [pair]})
    if name == "image":
        return lambda c: c.post("/predict", data={"text": "what a lovely day"})
    if name == "video":
        sys.path.insert(0, str(REPO_ROOT))
        from affectfusion.data.examples.media import write_video
        from tests.fixtures_serve import bright_face

        clip = write_video(tmp / "valid.mp4", bright_face(60), 0.5, False).read_bytes()
        return lambda c: c.post("/predict", files={"video": ("valid.mp4", clip, "video/mp4")})
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, data=rng.standard_normal((30, 1000)), sfreq=np.array(500.0))
    npz = buf.getvalue()
    return lambda c: c.post("/predict", files={"signal": ("valid.npz", npz, "application/zip")})
