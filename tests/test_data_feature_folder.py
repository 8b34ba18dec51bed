"""The feature_folder adapter on tiny folders: P2 .pt dicts, per-sample .npy files, and user errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from affectfusion.data import DATASETS, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options


def load(root: Path, split: str = "train", **options: Any) -> list[Sample]:
    cls = DATASETS.get("feature_folder")
    return cls(validate_options(cls, options, "data.options")).load(root, split)


P2 = {
    "manifest": "{split}_split.csv",
    "features": {"speech": "{split}_speech_features.pt", "text": "{split}_text_features.pt"},
}


@pytest.fixture
def p2_root(tmp_path: Path) -> Path:
    """P2 layout: a per-split CSV plus one .pt dict of id -> 768-d tensor per modality."""
    ids = ["s1", "s2", "s3", "s4"]
    (tmp_path / "train_split.csv").write_text(
        "id,label,speaker\ns1,happy,A\ns2,sad,A\ns3,,B\ns4,angry,B\n", encoding="utf-8"
    )
    gen = torch.Generator().manual_seed(0)
    torch.save({i: torch.randn(768, generator=gen) for i in ids}, tmp_path / "train_speech_features.pt")
    # s4 has no text: a missing modality, not an error.
    torch.save({i: torch.randn(768, generator=gen) for i in ids[:3]}, tmp_path / "train_text_features.pt")
    return tmp_path


def test_p2_pt_dicts(p2_root: Path) -> None:
    samples = load(p2_root, **P2, group_column="speaker")
    assert [s.id for s in samples] == ["s1", "s2", "s3", "s4"]
    speech = torch.load(p2_root / "train_speech_features.pt", weights_only=True)
    for s in samples:
        assert s.features["speech"].shape == (768,) and s.features["speech"].dtype == np.float32
        np.testing.assert_array_equal(s.features["speech"], speech[s.id].numpy())
    assert set(samples[3].features) == {"speech"}
    assert [s.targets for s in samples] == [
        {"label": "happy"},
        {"label": "sad"},
        {"label": None},
        {"label": "angry"},
    ]
    assert [s.group for s in samples] == ["A", "A", "B", "B"]


def test_p2_default_targets_take_unreserved_columns(p2_root: Path) -> None:
    samples = load(p2_root, **P2)
    assert samples[0].targets == {"label": "happy", "speaker": "A"}
    assert samples[0].group is None  # no 'group' column


def test_per_sample_npy_with_split_column(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "split": "train", "valence": 0.5, "group": "spk1"},
        {"id": "b", "split": "train", "valence": -1.0, "group": "spk2"},
        {"id": "c", "split": "dev", "valence": 0.0, "group": "spk3"},
        {"id": "d", "split": "train", "valence": 0.2, "group": "spk2", "audio_path": "other/d_audio.npy"},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "audio").mkdir()
    (tmp_path / "other").mkdir()
    rng = np.random.default_rng(0)
    for sid, t in (("a", 5), ("c", 2)):
        np.save(tmp_path / "audio" / f"{sid}.npy", rng.standard_normal((t, 6)))
    np.save(tmp_path / "other" / "d_audio.npy", rng.standard_normal((3, 6)))  # via audio_path
    # 'b' has no audio file: missing modality.

    opts = {"manifest": "manifest.jsonl", "features": {"audio": "audio/{id}.npy"}}
    train = load(tmp_path, **opts)
    assert [s.id for s in train] == ["a", "b", "d"]
    assert train[0].features["audio"].shape == (5, 6) and train[0].features["audio"].dtype == np.float32
    assert train[1].features == {}
    assert train[2].features["audio"].shape == (3, 6)
    assert [s.targets for s in train] == [{"valence": 0.5}, {"valence": -1.0}, {"valence": 0.2}]
    assert [s.group for s in train] == ["spk1", "spk2", "spk2"]
    dev = load(tmp_path, "dev", **opts, targets={"v": "valence"})
    assert [(s.id, s.targets) for s in dev] == [("c", {"v": 0.0})]


def test_per_sample_npz_and_pt(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("id,y\nx1,1\nx2,0\n", encoding="utf-8")
    np.savez(tmp_path / "x1.npz", emb=np.ones(4), other=np.zeros(2))
    np.savez(tmp_path / "x2.npz", emb=np.zeros(4), other=np.zeros(2))
    torch.save(torch.ones(2, 3), tmp_path / "x1.pt")
    samples = load(tmp_path, features={"v": "{id}.npz", "w": "{id}.pt"}, array_key="emb")
    assert samples[0].features["v"].tolist() == [1, 1, 1, 1]
    assert samples[0].features["w"].shape == (2, 3) and "w" not in samples[1].features
    with pytest.raises(AffectFusionError, match=r"x1\.npz.*array_key"):
        load(tmp_path, features={"v": "{id}.npz"})


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"manifest .*dev_split\.csv does not exist"):
        load(tmp_path, "dev", **P2)


def test_missing_feature_file(p2_root: Path) -> None:
    (p2_root / "train_text_features.pt").unlink()
    with pytest.raises(AffectFusionError, match=r"train_text_features\.pt does not exist"):
        load(p2_root, **P2)


def test_wrong_id_column(p2_root: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"train_split\.csv has no id column 'utt_id'"):
        load(p2_root, **P2, id_column="utt_id")


def test_ids_absent_from_pt_dict(p2_root: Path) -> None:
    torch.save({f"other{i}": torch.zeros(768) for i in range(3)}, p2_root / "train_text_features.pt")
    with pytest.raises(AffectFusionError, match=r"train_text_features\.pt \(text\) has none of the 4 ids"):
        load(p2_root, **P2)


def test_no_per_sample_file_at_all(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("id,y\nx1,1\n", encoding="utf-8")
    with pytest.raises(AffectFusionError, match=r"no feature file found .*feats/x1\.npy"):
        load(tmp_path, features={"audio": "feats/{id}.npy"})


def test_bad_tensor_rank_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("id,y\nx1,1\n", encoding="utf-8")
    np.save(tmp_path / "x1.npy", np.zeros((2, 3, 4)))
    with pytest.raises(AffectFusionError, match=r"x1\.npy: expected a \[D\] vector or \[T, D\] sequence"):
        load(tmp_path, features={"a": "{id}.npy"})
    (tmp_path / "manifest.csv").write_text("id,y\nx1,1\nx1,0\n", encoding="utf-8")
    with pytest.raises(AffectFusionError, match=r"manifest\.csv: id 'x1' appears in rows 1 and 2"):
        load(tmp_path, features={"a": "{id}.npy"})


def test_unknown_split_and_target_column(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("id,split,y\nx1,train,1\n", encoding="utf-8")
    np.save(tmp_path / "x1.npy", np.zeros(3))
    with pytest.raises(AffectFusionError, match=r"manifest\.csv: no row has split='test' \(values: train\)"):
        load(tmp_path, "test", features={"a": "{id}.npy"})
    with pytest.raises(AffectFusionError, match=r"manifest\.csv has no column 'label' for target 'emotion'"):
        load(tmp_path, features={"a": "{id}.npy"}, targets={"emotion": "label"})
    with pytest.raises(AffectFusionError, match=r"manifest\.csv has no source column 'wav'"):
        load(tmp_path, features={"a": "{id}.npy"}, source_column="wav")


def test_pickled_pt_is_refused(tmp_path: Path) -> None:
    """weights_only loading: an arbitrary pickled object is an error, never executed."""
    (tmp_path / "manifest.csv").write_text("id,y\nx1,1\n", encoding="utf-8")
    torch.save({"x1": Path("not/a/tensor")}, tmp_path / "feats.pt")
    with pytest.raises(AffectFusionError, match=r"feats\.pt could not be read"):
        load(tmp_path, features={"a": "feats.pt"})
