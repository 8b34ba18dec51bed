"""image_folder / video_folder adapters on tiny fixtures and on the shared FER2013 / muxspace subsets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectfusion.data.images import ImageFolderAdapter, VideoFolderAdapter
from affectfusion.errors import AffectFusionError


def image_adapter(**options) -> ImageFolderAdapter:
    return ImageFolderAdapter(ImageFolderAdapter.Options(**options))


def make_images(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_class_folders_without_manifest(tmp_path: Path) -> None:
    make_images(tmp_path, ["train/happy/a.jpg", "train/sad/b.PNG", "train/sad/c.bmp", "dev/happy/d.jpg"])
    (tmp_path / "train" / "sad" / "notes.txt").write_text("ignored")
    samples = image_adapter().load(tmp_path, "train")
    assert [s.id for s in samples] == ["train/happy/a", "train/sad/b", "train/sad/c"]
    assert [s.targets["emotion"] for s in samples] == ["happy", "sad", "sad"]
    first = samples[0]
    assert first.raw == {"image": (tmp_path / "train/happy/a.jpg").resolve()} and first.features == {}
    assert first.source == "train/happy/a.jpg" and first.group is None
    with pytest.raises(AffectFusionError, match=r"folders in .*: dev, train"):
        image_adapter().load(tmp_path, "test")


def test_manifest_gives_labels_and_groups(tmp_path: Path) -> None:
    make_images(tmp_path, ["train/x/a.jpg", "train/x/b.jpg", "dev/y/c.jpg"])
    rows = [
        {"path": "train/x/a.jpg", "split": "train", "label": "happy", "identity": "ann"},
        {"path": "train/x/b.jpg", "split": "train", "label": "", "identity": "bob"},
        {"path": "dev/y/c.jpg", "split": "dev", "label": "sad", "identity": "ann"},
    ]
    write_csv(tmp_path / "labels.csv", rows)
    samples = image_adapter(target="expr").load(tmp_path, "train")
    assert [(s.targets["expr"], s.group) for s in samples] == [("happy", "ann"), ("x", "bob")]  # empty -> folder
    with pytest.raises(AffectFusionError, match="no row has split 'test'"):
        image_adapter().load(tmp_path, "test")
    (tmp_path / "train/x/b.jpg").unlink()
    with pytest.raises(AffectFusionError, match="1 of 2 'train' files do not exist"):
        image_adapter().load(tmp_path, "train")


def test_video_folder_sets_video_and_audio(tmp_path: Path) -> None:
    for rel in ("test/angry/v1.mp4", "test/calm/v2.MOV", "test/calm/skip.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    samples = VideoFolderAdapter(VideoFolderAdapter.Options()).load(tmp_path, "test")
    assert [s.id for s in samples] == ["test/angry/v1", "test/calm/v2"]
    assert samples[0].raw["video"] == samples[0].raw["audio"] == (tmp_path / "test/angry/v1.mp4").resolve()
    write_csv(tmp_path / "test.csv", [{"path": "test/calm/v2.MOV", "label": "calm", "group": "s01"}])
    listed = VideoFolderAdapter(VideoFolderAdapter.Options(manifest="{split}.csv")).load(tmp_path, "test")
    assert [(s.id, s.group, s.targets["emotion"]) for s in listed] == [("test/calm/v2", "s01", "calm")]


def test_fer2013_subset(shared_data: Path) -> None:
    root = shared_data / "fer2013_subset"
    train = image_adapter().load(root, "train")
    assert len(train) == 1750
    assert {s.targets["emotion"] for s in train} == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert all(s.raw["image"].is_file() and s.source.startswith("train/") for s in train[:20])
    assert len(image_adapter().load(root, "test_small")) == 328


def test_muxspace_subset_has_identities(shared_data: Path) -> None:
    dev = image_adapter().load(shared_data / "muxspace_faces_subset", "dev")
    assert len(dev) == 81
    assert dev[0].group == "Anastasia_Myskina" and all(s.group for s in dev)
    assert all(s.targets["emotion"] == Path(s.source).parent.name for s in dev)


def test_image_folder_through_load_dataset(tmp_path: Path) -> None:
    """Adapter + data.extract: raw images become fer_cnn features in a real config."""
    pytest.importorskip("ai_edge_litert")
    from affectfusion.pipeline import load_dataset
    from tests.helpers import tiny_config

    rng = np.random.default_rng(0)
    for i, label in enumerate(["happy", "sad"] * 3):
        path = tmp_path / "train" / label / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(path)
    (tmp_path / "train" / "sad" / "broken.png").write_text("not an image")
    cfg = tiny_config(
        {
            "data": {
                "adapter": "image_folder",
                "root": str(tmp_path),
                "extract": {"image": {"name": "fer_cnn", "options": {"detector": "none"}}},
                "cache_dir": str(tmp_path / "cache"),
                "bad_media": "drop_modality",
            },
            "tasks": [{"name": "emotion", "type": "classification", "classes": ["happy", "sad"]}],
            "train": {"progress": False},
        }
    )
    ds = load_dataset(cfg, "train")
    assert len(ds) == 6 and ds.modalities["image"].dim == 135  # the broken file is reported and left out
