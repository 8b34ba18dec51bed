"""Speech adapters (ravdess, emodb, pyaudioanalysis_va, audio_folder) on tiny fixtures and on the shared data."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import affectfusion.data.speech  # registers the speech adapters
import affectfusion.extract.audio  # noqa: F401  (registers the audio extractors)
from affectfusion.config import validate
from affectfusion.data import DATASETS, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.registry import validate_options

SR = 16000
RAVDESS_COLUMNS = ["path", "split", "actor", "gender", "emotion", "intensity"]
RAVDESS_CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def load(adapter: str, root: Path, split: str, **options: Any) -> list[Sample]:
    cls = DATASETS.get(adapter)
    return cls(validate_options(cls, options, "data.options")).load(root, split)


def write_tone(path: Path, seconds: float = 0.6, freq: float = 200.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def write_manifest(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


@pytest.fixture
def tiny_ravdess(tmp_path: Path) -> Path:
    """RAVDESS layout: 4 train files (actors 1, 2), 2 dev files (actor 3); one train file is corrupt."""
    rows = []
    for split, actor, emotion, intensity, freq in [
        ("train", 1, "angry", "strong", 300),
        ("train", 1, "sad", "normal", 150),
        ("train", 2, "angry", "normal", 320),
        ("train", 2, "sad", "strong", 140),
        ("dev", 3, "angry", "normal", 310),
        ("dev", 3, "neutral", "normal", 200),
    ]:
        rel = f"{split}/Actor_{actor:02d}/03-01-{emotion}-{intensity}-{actor:02d}.wav"
        write_tone(tmp_path / rel, freq=freq)
        rows.append([rel, split, actor, "male" if actor % 2 else "female", emotion, intensity])
    (tmp_path / rows[1][0]).write_bytes(b"not audio at all")
    write_manifest(tmp_path / "labels.csv", RAVDESS_COLUMNS, rows)
    return tmp_path


def test_ravdess_tiny_samples(tiny_ravdess: Path) -> None:
    samples = load("ravdess", tiny_ravdess, "train")
    assert [s.id for s in samples] == [
        "train/Actor_01/03-01-angry-strong-01",
        "train/Actor_01/03-01-sad-normal-01",
        "train/Actor_02/03-01-angry-normal-02",
        "train/Actor_02/03-01-sad-strong-02",
    ]
    first = samples[0]
    assert first.features == {} and first.raw == {"audio": tiny_ravdess / f"{first.id}.wav"}
    assert first.targets == {"emotion": "angry", "intensity": "strong"}
    assert first.group == "1" and first.source == f"{first.id}.wav"
    assert [s.group for s in load("ravdess", tiny_ravdess, "dev")] == ["3", "3"]


def test_extra_views_share_the_file(tiny_ravdess: Path) -> None:
    s = load("ravdess", tiny_ravdess, "dev", modality="audio_func", extra_views=["audio_seq"])[0]
    assert set(s.raw) == {"audio_func", "audio_seq"} and s.raw["audio_func"] == s.raw["audio_seq"]
    with pytest.raises(AffectFusionError, match="distinct"):
        load("ravdess", tiny_ravdess, "dev", extra_views=["audio"])


def test_clear_errors(tiny_ravdess: Path, tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"no row has split='test'.*values: dev, train"):
        load("ravdess", tiny_ravdess, "test")
    with pytest.raises(AffectFusionError, match=r"no column.*'speaker'"):
        load("emodb", tiny_ravdess, "train")
    with pytest.raises(AffectFusionError, match=r"labels\.csv does not exist"):
        load("ravdess", tmp_path / "nowhere", "train")
    (tiny_ravdess / "moved").mkdir()
    (tiny_ravdess / "labels.csv").rename(tiny_ravdess / "moved" / "labels.csv")
    with pytest.raises(AffectFusionError, match="none of the 2 audio files of split 'dev' exists"):
        load("ravdess", tiny_ravdess / "moved", "dev")


def test_audio_folder_with_split_manifests(tmp_path: Path) -> None:
    write_tone(tmp_path / "clips" / "a.flac")
    write_tone(tmp_path / "clips" / "b.wav")
    write_manifest(tmp_path / "train.csv", ["file", "mood", "speaker"], [["clips/a.flac", "happy", "s1"]])
    write_manifest(tmp_path / "dev.csv", ["file", "mood", "speaker"], [["clips/b.wav", "", "s2"]])
    opts = {"manifest": "{split}.csv", "file_column": "file", "group_column": "speaker", "targets": {"emotion": "mood"}}
    (train,) = load("audio_folder", tmp_path, "train", **opts)
    (dev,) = load("audio_folder", tmp_path, "dev", **opts)
    assert train.id == "clips/a" and train.targets == {"emotion": "happy"} and train.group == "s1"
    assert dev.targets == {"emotion": None}  # empty cell = unlabelled


def test_pyaudioanalysis_va_tiny(tmp_path: Path) -> None:
    write_tone(tmp_path / "train" / "00.wav")
    write_manifest(
        tmp_path / "labels.csv",
        ["path", "split", "group", "valence", "arousal"],
        [["train/00.wav", "train", 0, -0.7, 0.7]],
    )
    (s,) = load("pyaudioanalysis_va", tmp_path, "train")
    assert s.targets == {"valence": "-0.7", "arousal": "0.7"} and s.group == "0"


def test_load_dataset_extracts_and_sets_aside_a_corrupt_file(tiny_ravdess: Path, tmp_path: Path) -> None:
    cfg = validate(
        {
            "name": "tiny_ravdess",
            "data": {
                "adapter": "ravdess",
                "root": str(tiny_ravdess),
                "extract": {"audio": {"name": "egemaps"}},
                "cache_dir": str(tmp_path / "cache"),
            },
            "tasks": [{"name": "emotion", "type": "classification", "classes": RAVDESS_CLASSES}],
            "train": {"progress": False},
        }
    )
    with pytest.raises(AffectFusionError, match=r"1 unusable media file\(s\) could not be decoded.*drop_modality"):
        load_dataset(cfg, "train")  # the default policy names the bad file and stops
    cfg.data.bad_media = "drop_modality"
    ds = load_dataset(cfg, "train")
    assert len(ds) == 3  # the corrupt file is reported and left out
    assert ds.modalities["audio"].dim == 88 and not ds.modalities["audio"].sequence
    assert sorted(s.targets["emotion"] for s in ds.samples) == [3, 4, 4]  # sad, angry, angry


def test_shared_ravdess_is_actor_disjoint(shared_data: Path) -> None:
    root = shared_data / "ravdess_speech_16k"
    splits = {name: load("ravdess", root, name) for name in ("train", "dev", "test_small")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 840, "dev": 120, "test_small": 120}
    groups = {k: {s.group for s in v} for k, v in splits.items()}
    train_actors = {str(a) for a in (1, 2, 3, 4, *range(9, 19))}
    assert groups == {"train": train_actors, "dev": {"5", "6"}, "test_small": {"7", "8"}}
    assert {s.targets["emotion"] for s in splits["train"]} == set(RAVDESS_CLASSES)
    assert {s.targets["intensity"] for s in splits["train"]} == {"normal", "strong"}
    assert all(s.raw["audio"].is_file() for v in splits.values() for s in v)


def test_shared_emodb_is_speaker_disjoint(shared_data: Path) -> None:
    root = shared_data / "emodb_2s_16k"
    groups = {name: {s.group for s in load("emodb", root, name)} for name in ("train", "dev", "test_small")}
    assert groups["dev"] == {"12"} and groups["test_small"] == {"14"} and len(groups["train"]) == 6
    assert not groups["train"] & (groups["dev"] | groups["test_small"])
    emotions = {s.targets["emotion"] for s in load("emodb", root, "train")}
    assert emotions == {"anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"}


def test_shared_pyaudioanalysis_va(shared_data: Path) -> None:
    root = shared_data / "pyaudioanalysis_speech_va"
    sizes = {name: len(load("pyaudioanalysis_va", root, name)) for name in ("train", "dev", "test_small")}
    assert sizes == {"train": 27, "dev": 5, "test_small": 5}
    assert all(-1 <= float(s.targets["valence"]) <= 1 for s in load("pyaudioanalysis_va", root, "train"))
