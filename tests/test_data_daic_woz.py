"""daic_woz adapter on a generated corpus in the published layout, and P1 v2 training on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import affectfusion.extract.text  # noqa: F401  (registers minilm, used by the shipped config)
from affectfusion.config import load_config
from affectfusion.data.daic_woz import DaicWozAdapter, reduce_steps
from affectfusion.data.examples.daic_woz import make_daic_woz
from affectfusion.errors import AffectFusionError
from affectfusion.training.trainer import Trainer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_daic_woz(tmp_path_factory.mktemp("daic"), n_participants=12, seed=0)


def adapter(**options) -> DaicWozAdapter:
    return DaicWozAdapter(DaicWozAdapter.Options(**options))


def copy_of(corpus: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(corpus, tmp_path / "copy"))


def test_loads_every_split_with_p1_shapes(corpus: Path) -> None:
    sizes = {}
    for split in ("train", "dev", "test"):
        samples = adapter().load(corpus, split)
        sizes[split] = len(samples)
        for s in samples:
            assert s.features["audio"].shape == (100, 74) and s.features["audio"].dtype == np.float32
            assert s.features["video"].shape == (100, 10)
            assert s.group == s.id and s.id.isdigit()
            assert 0 <= s.targets["phq8"] <= 24
            assert s.targets["depressed"] == int(s.targets["phq8"] >= 10)
            assert s.raw["text"].startswith("um i feel")
    assert sizes == {"train": 6, "dev": 3, "test": 3}


def test_text_is_the_participant_side_only(corpus: Path) -> None:
    sample = adapter(modalities=["text"]).load(corpus, "train")[0]
    assert sample.features == {}
    assert "how are you doing today" not in sample.raw["text"]
    assert sample.raw["text"].count("um i feel") == 3  # one answer per question


def test_fixture_carries_the_label_in_every_modality(corpus: Path) -> None:
    samples = [s for split in ("train", "dev", "test") for s in adapter().load(corpus, split)]
    phq = np.array([s.targets["phq8"] for s in samples])
    au12 = np.array([s.features["video"][:, 6].mean() for s in samples])  # AU12_r, 7th default column
    f0 = np.array([s.features["audio"][:, 0].mean() for s in samples])
    sad = np.array([s.raw["text"].count("hopeless") + s.raw["text"].count("sad") for s in samples])
    assert np.corrcoef(phq, au12)[0, 1] < -0.5
    assert np.corrcoef(phq, f0)[0, 1] < -0.5
    assert np.corrcoef(phq, sad)[0, 1] > 0.3


def test_voiced_only_and_short_sequences(corpus: Path) -> None:
    voiced = adapter(audio_steps=10**6).load(corpus, "train")[0].features["audio"]
    everything = adapter(audio_steps=10**6, voiced_only=False).load(corpus, "train")[0].features["audio"]
    assert len(everything) == 2000  # 20 s at 100 Hz, kept whole when shorter than audio_steps
    assert (voiced[:, 1] == 1).all() and 0 < len(voiced) < len(everything)
    pooled = adapter(voiced_only=False).load(corpus, "train")[0].features["audio"]
    assert 0 < pooled[:, 1].mean() < 1  # span means mix voiced and unvoiced frames


def test_untracked_frames_are_dropped_and_other_clnf_files_work(corpus: Path) -> None:
    pose = ["Tx", "Ty", "Tz", "Rx", "Ry", "Rz"]
    video = adapter(video_file="pose", video_columns=pose, video_steps=10**6).load(corpus, "train")[0]
    assert video.features["video"].shape[1] == 6
    assert 500 < len(video.features["video"]) < 600  # 600 frames, ~5 % without a face
    assert (video.features["video"][:, 2] > 400).all()  # Tz of tracked frames only (untracked rows are zeros)


def test_reduce_steps_mean_and_sample() -> None:
    x = np.arange(10, dtype=float)[:, None]
    np.testing.assert_allclose(reduce_steps(x, 5, "mean")[:, 0], [0.5, 2.5, 4.5, 6.5, 8.5])
    np.testing.assert_allclose(reduce_steps(x, 4, "sample")[:, 0], [0, 3, 6, 9])
    assert reduce_steps(x, 20, "mean") is x


def test_documented_csv_extension_and_missing_files(corpus: Path, tmp_path: Path) -> None:
    root = copy_of(corpus, tmp_path)
    aus = root / "300_P" / "300_CLNF_AUs.txt"
    aus.rename(aus.with_suffix(".csv"))
    (root / "301_P" / "301_COVAREP.csv").unlink()
    samples = {s.id: s for s in adapter().load(root, "train")}
    assert samples["300"].features["video"].shape == (100, 10)
    assert "audio" not in samples["301"].features and "video" in samples["301"].features


def test_unlabelled_split_file(corpus: Path) -> None:
    samples = adapter(split_files={"blind": "test_split_Depression_AVEC2017.csv"}).load(corpus, "blind")
    assert len(samples) == 3
    assert all(s.targets == {"phq8": None, "depressed": None} for s in samples)


def test_errors_name_the_problem(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="unknown DAIC-WOZ split 'val'"):
        adapter().load(corpus, "val")
    with pytest.raises(AffectFusionError, match=r"no column.*AU99_r"):
        adapter(video_columns=["AU99_r"]).load(corpus, "train")
    root = copy_of(corpus, tmp_path)
    shutil.rmtree(root / "300_P")
    with pytest.raises(AffectFusionError, match=r"1 of 6 participants.*300_P"):
        adapter().load(root, "train")
    assert [s.id for s in adapter(skip_missing=True).load(root, "train")] == ["301", "302", "303", "304", "305"]
    for p in root.glob("*_P/*_COVAREP.csv"):
        p.unlink()
    with pytest.raises(AffectFusionError, match="none of the 5 participants has usable audio"):
        adapter(skip_missing=True).load(root, "train")


def test_p1_v2_config_trains_on_the_corpus(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(
        "daic_woz_p1_v2",
        {
            "data.root": str(corpus),
            "data.cache_dir": str(tmp_path / "cache"),
            "data.options.audio_steps": 25,  # shorter sequences only to keep the test fast on CPU
            "data.options.video_steps": 25,
            "train.epochs": 2,
            "train.batch_size": 4,
            "train.warmup_epochs": 1,
            "train.progress": False,
        },
    )
    results = Trainer(cfg, tmp_path / "run").fit()
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["modalities"] == {
        "audio": {"name": "audio", "dim": 74, "sequence": True},
        "text": {"name": "text", "dim": 384, "sequence": False},
        "video": {"name": "video", "dim": 10, "sequence": True},
    }
    assert results["test"]["n"] == 3 and np.isfinite(results["test"]["tasks"]["phq8"]["rmse"])
    assert set(results["test"]["tasks"]) == {"phq8", "depressed"}
