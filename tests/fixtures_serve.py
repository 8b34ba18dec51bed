"""A run trained once per test session on the raw text + wav + image fixture dataset.

Serving tests (API, CLI ``predict``, dashboard) need a real run directory whose extractors read
raw media; training one takes about 2 s, so it is shared. Test modules use the fixtures directly
(``tests/conftest.py`` loads this module as a plugin).

Layout: ``<tmp>/run`` is the run directory and ``<tmp>/data`` (= ``run_dir.parent / "data"``) the
dataset (``{train,dev,test}.csv`` + ``media/*.wav|png``). Tests must treat both as read-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tests.fixtures_media import make_media_table, media_config, media_table_config


def train_media_run(base: Path) -> Path:
    """Make the fixture dataset under ``base/data`` and train the media config into ``base/run``."""
    from affectfusion.config import validate
    from affectfusion.training.trainer import Trainer

    root = make_media_table(base / "data")
    cfg = validate(media_config(root, base / "cache"))
    run_dir = base / "run"
    Trainer(cfg, run_dir, console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return run_dir


@pytest.fixture(scope="session")
def trained_media_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory; the dataset it was trained on is at ``run_dir.parent / "data"``."""
    return train_media_run(tmp_path_factory.mktemp("media_run"))


@pytest.fixture(scope="session")
def trained_face_context_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The media config with MediaPipe face detection (whole image when no face) and a GRU context stage:
    the dashboard's no-face banner, per-modality view and Conversation tab (data at ``run_dir.parent / "data"``)."""
    from affectfusion.config import validate
    from affectfusion.training.trainer import Trainer

    base = tmp_path_factory.mktemp("face_context_run")
    raw = media_config(make_media_table(base / "data"), base / "cache")
    raw["data"]["extract"]["image"]["options"] = {"detector": "mediapipe", "no_face": "whole_frame"}
    raw["model"]["context"] = {"name": "gru"}
    Trainer(validate(raw), base / "run", console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return base / "run"


def bright_face(offset: int) -> np.ndarray:
    """The library's drawn face, brighter (``offset`` > 0: "happy") or darker ("sad")."""
    from affectfusion.data.examples.media import draw_face

    return np.clip(draw_face(64).astype(int) + offset, 0, 255).astype(np.uint8)


def train_video_run(base: Path, n_train: int = 12, epochs: int = 15) -> Path:
    """Clips of a bright ("happy") or dark ("sad") face under ``base/data``, a ``video_faces`` run (whole
    frames) trained into ``base/run``."""
    import pandas as pd

    from affectfusion.config import validate
    from affectfusion.data.examples.media import write_video
    from affectfusion.training.trainer import Trainer

    for split, n in (("train", n_train), ("dev", 4), ("test", 4)):
        rows = []
        for i in range(n):
            label = ("happy", "sad")[i % 2]
            write_video(base / "data" / f"media/{split}{i}.mp4", bright_face(60 if i % 2 == 0 else -60), 0.5, False)
            rows.append({"id": f"{split}{i}", "video": f"media/{split}{i}.mp4", "emotion": label})
        pd.DataFrame(rows).to_csv(base / "data" / f"{split}.csv", index=False)
    raw = media_table_config(
        "video",
        base / "data",
        base / "cache",
        {"video": "video"},
        {"video": {"name": "video_faces", "options": {"detector": "none", "output": "both"}}},
        ["happy", "sad"],
        {"hidden_dim": 8, "head_hidden": 8},
        {"epochs": epochs, "batch_size": 4, "lr": 0.02, "early_stopping": None},
    )
    Trainer(validate(raw), base / "run", console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return base / "run"


@pytest.fixture(scope="session")
def trained_video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that takes video (``video_faces``, whole frames): bright clips are "happy", dark ones "sad"."""
    return train_video_run(tmp_path_factory.mktemp("video_run"))


def train_features_run(base: Path) -> Path:
    """The tiny synthetic config (every modality pre-extracted features) trained into ``base/run``."""
    from affectfusion.training.trainer import Trainer
    from tests.helpers import tiny_config

    run_dir = base / "run"
    Trainer(tiny_config(), run_dir, console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return run_dir


@pytest.fixture(scope="session")
def trained_features_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose modalities (text [8], audio [5, 6], video [4, 4]) take feature arrays / ``.npy`` files."""
    return train_features_run(tmp_path_factory.mktemp("features_run"))


@pytest.fixture(scope="session")
def media(trained_media_run: Path) -> Path:
    """The fixture dataset's media folder (``<id>.wav`` / ``<id>.png``)."""
    return trained_media_run.parent / "data" / "media"
