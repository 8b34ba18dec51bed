"""The mosi adapter, on the shared CMU-MOSI features (when present) and on a tiny same-format fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from affectfusion.data import DATASETS, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options

MOSI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu_mosi_unimodal"


def load(root: Path, split: str, **options: Any) -> list[Sample]:
    cls = DATASETS.get("mosi")
    return cls(validate_options(cls, options, "data.options")).load(root, split)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Two videos padded to 5 utterances (3 and 2 real); padding holds 99, never zeros."""
    n, u = 2, 5
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=np.uint8)
    label = np.where(mask == 1, np.array([[0, 1, 1, 0, 0], [1, 0, 0, 0, 0]]), -1).astype(np.int8)
    # Feature value = 10 * video + utterance position, so a test can tell which utterance it got.
    base = (10 * np.arange(n)[:, None] + np.arange(u)[None, :]).astype(np.float32)
    base[mask == 0] = 99.0

    def feats(d: int) -> np.ndarray:
        return np.repeat(base[:, :, None], d, axis=2)

    np.savez(
        tmp_path / "train.npz",
        text=feats(4),
        audio=feats(3),
        video=feats(2),
        audio_raw=feats(5),
        mask=mask,
        label=label,
        source_index=np.array([7, 12], dtype=np.int16),
        source_split=np.array("train"),
    )
    return tmp_path


def test_tiny_one_sample_per_real_utterance(tiny: Path) -> None:
    samples = load(tiny, "train")
    assert [s.id for s in samples] == [
        "train/v007/u00",
        "train/v007/u01",
        "train/v007/u02",
        "train/v012/u00",
        "train/v012/u01",
    ]
    assert [s.targets["sentiment"] for s in samples] == [0, 1, 1, 1, 0]
    assert [s.group for s in samples] == ["train-v007"] * 3 + ["train-v012"] * 2
    assert samples[4].features["text"].tolist() == [11.0] * 4
    assert {m: x.shape for m, x in samples[0].features.items()} == {
        "text": (4,),
        "audio": (3,),
        "video": (2,),
    }
    assert all(x.dtype == np.float32 and (x != 99).all() for s in samples for x in s.features.values())


def test_tiny_context_window_stays_in_video(tiny: Path) -> None:
    samples = load(tiny, "train", context_window=1, modalities=["audio_raw"], target_name="polarity")
    windows = [s.features["audio_raw"][:, 0].tolist() for s in samples]
    assert windows == [[0, 1], [0, 1, 2], [1, 2], [10, 11], [10, 11]]
    assert samples[0].features["audio_raw"].shape == (2, 5)
    assert samples[0].targets == {"polarity": 0}


def test_tiny_errors(tiny: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"dev\.npz does not exist; \.npz files in .*: train\.npz"):
        load(tiny, "dev")
    with pytest.raises(AffectFusionError, match=r"'text', 'audio', 'video' or 'audio_raw'"):
        load(tiny, "train", modalities=["text", "face"])
    np.savez(tiny / "broken.npz", text=np.zeros((1, 2, 3)), mask=np.ones((1, 2)))
    with pytest.raises(AffectFusionError, match=r"broken\.npz: missing array\(s\) audio, video, label"):
        load(tiny, "broken")


shared = pytest.mark.skipif(not MOSI.is_dir(), reason=f"shared CMU-MOSI features not found at {MOSI}")


@pytest.mark.shared_data
@shared
def test_shared_dev_split() -> None:
    samples = load(MOSI, "dev")
    assert len(samples) == 175
    assert {x.shape for s in samples for x in s.features.values()} == {(50,)}
    assert {s.targets["sentiment"] for s in samples} == {0, 1}
    assert len({s.group for s in samples}) == 8
    assert len({s.id for s in samples}) == 175


@pytest.mark.shared_data
@shared
def test_shared_context_window_and_missing_split() -> None:
    samples = load(MOSI, "dev", context_window=2, modalities=["text", "audio_raw"])
    lengths = {s.features["text"].shape[0] for s in samples}
    assert lengths == {3, 4, 5}  # truncated at the first/last utterances of each video
    assert samples[0].features["audio_raw"].shape == (3, 73)
    with pytest.raises(AffectFusionError, match=r"holdout\.npz does not exist; .*dev\.npz"):
        load(MOSI, "holdout")
