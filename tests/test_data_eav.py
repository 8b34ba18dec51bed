"""eav adapter on a generated dataset in the published layout (.mat EEG or per-trial .npy), and P5 training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from affectfusion.config import expand_variants, load_config
from affectfusion.data.eav import EAVAdapter
from affectfusion.data.examples.eav import make_eav
from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.training.trainer import Trainer

SPLITS = {"train": [1, 2], "dev": [3], "test": [4]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_eav(tmp_path_factory.mktemp("eav"), n_subjects=4, trials_per_class=4, seed=0)


def adapter(**options) -> EAVAdapter:
    return EAVAdapter(EAVAdapter.Options(**{"splits": SPLITS, **options}))


def test_loads_trials_with_labels_from_the_label_matrix(dataset: Path) -> None:
    samples = adapter().load(dataset, "train")
    assert len(samples) == 2 * 40  # 2 subjects x 5 emotions x 4 x (listening + speaking)
    assert {s.group for s in samples} == {"subject01", "subject02"}
    for s in samples:
        eeg = s.raw["eeg"]
        assert isinstance(eeg, Signal) and eeg.data.shape == (30, 1000) and eeg.sfreq == 500.0
        assert eeg.data.dtype == np.float32
        video = s.raw["video"].name
        assert f"_{s.targets['condition'].capitalize()}_{s.targets['emotion'].capitalize()}.mp4" in video
        assert video.startswith(s.id.split("/")[1])  # trial number = EEG index + 1
        if s.targets["condition"] == "speaking":
            assert s.raw["audio"].name.endswith(f"_{s.targets['emotion'].capitalize()}_aud.wav")
        else:
            assert "audio" not in s.raw
    counts = {e: sum(s.targets["emotion"] == e for s in samples) for e in ("neutral", "calmness")}
    assert counts == {"neutral": 16, "calmness": 16}


def test_eeg_matches_the_mat_file_and_resampling(dataset: Path) -> None:
    sample = adapter(conditions=["speaking"], modalities=["eeg"]).load(dataset, "dev")[0]
    seg = loadmat(dataset / "subject03" / "EEG" / "subject03_eeg.mat")["seg1"]
    index = int(sample.id.split("/")[1]) - 1
    np.testing.assert_array_equal(sample.raw["eeg"].data, seg[:, :, index].T)
    assert set(sample.raw) == {"eeg"} and sample.targets["condition"] == "speaking"
    down = adapter(modalities=["eeg"], eeg_resample_hz=100).load(dataset, "dev")[0].raw["eeg"]
    assert down.data.shape == (30, 200) and down.sfreq == 100.0


def test_per_trial_npy_layout_gives_the_same_samples(dataset: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(dataset / "subject04", tmp_path / "copy" / "subject4"))  # unpadded name
    seg = loadmat(root / "EEG" / "subject04_eeg.mat")["seg1"]
    for video in (root / "Video").glob("*.mp4"):
        np.save(root / "EEG" / f"{video.stem}.npy", seg[:, :, int(video.name[:3]) - 1].T)
    for mat in (root / "EEG").glob("*.mat"):
        mat.unlink()
    expected = adapter().load(dataset, "test")
    got = adapter().load(root.parent, "test")
    assert [(s.id, s.targets) for s in got] == [(s.id, s.targets) for s in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.raw["eeg"].data, b.raw["eeg"].data)


def test_split_file_and_conditions(dataset: Path, tmp_path: Path) -> None:
    (dataset / "my_splits.csv").write_text("subject,split\nsubject01,train\n2,dev\n03,dev\n")
    try:
        samples = adapter(split_file="my_splits.csv", conditions=["speaking"]).load(dataset, "dev")
    finally:
        (dataset / "my_splits.csv").unlink()
    assert {s.group for s in samples} == {"subject02", "subject03"}
    assert len(samples) == 2 * 20 and all("audio" in s.raw for s in samples)


def test_media_that_contradicts_the_eeg_label_is_an_error(dataset: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(dataset / "subject01", tmp_path / "copy" / "subject01"))
    wav = sorted((root / "Audio").glob("*.wav"))[0]
    emotion = wav.stem.split("_")[4]
    wav.rename(wav.with_name(wav.name.replace(emotion, "Anger" if emotion != "Anger" else "Sadness")))
    with pytest.raises(AffectFusionError, match="files do not match EEG trials"):
        adapter(splits={"train": [1]}).load(root.parent, "train")


def test_label_parity_is_checked_against_the_file_names(dataset: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"002_Trial_\d+_Speaking_.*says listening/.*label_speaking_rows"):
        adapter(label_speaking_rows="even").load(dataset, "train")


def test_errors_name_the_problem(dataset: Path) -> None:
    with pytest.raises(AffectFusionError, match="unknown EAV split 'val'"):
        adapter().load(dataset, "val")
    with pytest.raises(AffectFusionError, match="subject\\(s\\) 9 with no subject<N> folder"):
        adapter(splits={"train": [1, 9]}).load(dataset, "train")
    with pytest.raises(AffectFusionError, match="no listening trial of split 'train' has any of audio"):
        adapter(conditions=["listening"], modalities=["audio"]).load(dataset, "train")
    with pytest.raises(ValueError, match="subject 1 is in both"):
        EAVAdapter.Options(splits={"train": [1, 2], "test": [1]})


def test_p5_config_trains_every_fusion_variant(dataset: Path, tmp_path: Path) -> None:
    cfg = load_config(
        "eav_p5",
        {
            "data.root": str(dataset),
            "data.cache_dir": str(tmp_path / "cache"),
            "data.options.splits": SPLITS,
            "train.epochs": 1,
            "train.batch_size": 16,
            "train.progress": False,
        },
    )
    variants = expand_variants(cfg)
    assert sorted(variants) == ["concat", "cross_attention", "gated"]
    for name, variant in variants.items():
        results = Trainer(variant, tmp_path / name).fit()
        assert results["test"]["n"] == 20 and 0.0 <= results["test"]["accuracy"] <= 1.0
    meta = json.loads((tmp_path / "gated" / "meta.json").read_text())
    # 2 s of EEG at 100 Hz in 1 s windows every 0.5 s: 3 windows of 30 channels x 4 bands x (power, DE).
    assert meta["modalities"]["eeg"] == {"name": "eeg", "dim": 240, "sequence": True}
    assert meta["modalities"]["audio"] == {"name": "audio", "dim": 88, "sequence": False}
