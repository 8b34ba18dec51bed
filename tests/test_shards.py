"""Per-split feature shards: the same samples as the adapter, each split read once per command,
rewritten when the data change, bad data refused without a half-written folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from affectfusion.config import apply_overrides, validate
from affectfusion.data import build_adapter
from affectfusion.data import shards as shards_mod
from affectfusion.data.checks import check_splits
from affectfusion.data.moments import frame_moments
from affectfusion.data.shards import StoredFeatures
from affectfusion.data.synthetic import SyntheticAdapter
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from tests.helpers import run_cli, tiny_config


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No split opened earlier in this process (as in a new command)."""
    monkeypatch.setattr(shards_mod, "_STORES", {})


def count_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], Counter[str]]:
    """(adapter loads per split, shard opens per split) from now on."""
    loads: Counter[str] = Counter()
    opens: Counter[str] = Counter()
    write_split, load, init = SyntheticAdapter.write_split, SyntheticAdapter.load, shards_mod.SplitStore.__init__

    def counted_write(self: SyntheticAdapter, root: Any, split: str, writer_for: Any) -> None:
        loads[split] += 1
        write_split(self, root, split, writer_for)

    def counted_load(self: SyntheticAdapter, root: Any, split: str) -> Any:
        loads[split] += 1
        return load(self, root, split)

    def counted_init(self: shards_mod.SplitStore, folder: Path) -> None:
        init(self, folder)
        opens[self.table[0]["id"].split("-")[0]] += 1

    monkeypatch.setattr(SyntheticAdapter, "write_split", counted_write)
    monkeypatch.setattr(SyntheticAdapter, "load", counted_load)
    monkeypatch.setattr(shards_mod.SplitStore, "__init__", counted_init)
    return loads, opens


def test_each_split_is_read_once_per_command(tmp_path: Path, monkeypatch, capsys, fresh) -> None:
    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache"), "train.epochs": 1})
    config = tmp_path / "tiny.yaml"
    config.write_text(__import__("yaml").safe_dump(cfg.to_dict()))
    loads, opens = count_reads(monkeypatch)
    code, _, err = run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 0, err
    # the data check, training, validation and the final scoring all read the one copy of each split
    assert loads == {"train": 1, "dev": 1, "test": 1}
    assert opens == {"train": 1, "dev": 1, "test": 1}
    for command in (["test", str(tmp_path / "run")], ["analyze", str(tmp_path / "run"), "--methods", "pca"]):
        loads.clear(), opens.clear()
        monkeypatch.setattr(shards_mod, "_STORES", {})  # a new command: nothing opened yet
        code, _, err = run_cli(command, capsys, monkeypatch)
        assert code == 0, err
        assert not loads, f"{command[0]} ran the adapter again: {loads}"
        assert opens == {"test": 1}, command[0]


def test_stored_samples_equal_the_adapters(tmp_path: Path, fresh) -> None:
    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache"), "data.options.missing_rate": 0.3})
    adapter = build_adapter(cfg.data)
    for split in ("train", "dev"):
        stored = load_dataset(cfg, split).samples
        memory = adapter.load(None, split)
        assert [s.id for s in stored] == [s.id for s in memory]
        for a, b in zip(stored, memory, strict=True):
            assert isinstance(a.features, StoredFeatures)
            assert set(a.features) == set(b.features)
            for m in b.features:
                np.testing.assert_array_equal(a.features[m], np.atleast_2d(b.features[m]))
            assert a.group == b.group
    # the data check reads the hashes stored with the shards and reports what hashing the arrays did
    from_memory = check_splits({s: adapter.load(None, s) for s in ("train", "dev")}, cfg.tasks, "train")
    from_shards = check_splits({s: load_dataset(cfg, s).samples for s in ("train", "dev")}, cfg.tasks, "train")
    assert from_shards == from_memory


def test_shards_follow_the_data(tmp_path: Path, fresh) -> None:
    """A feature file that changes gives new shards; an unchanged one reuses them."""
    root = tmp_path / "data"
    root.mkdir()
    raw: dict[str, Any] = {
        "name": "ff",
        "data": {
            "adapter": "feature_folder",
            "root": str(root),
            "cache_dir": str(tmp_path / "cache"),
            "val_split": "train",
            "options": {"manifest": "{split}.csv", "features": {"audio": "{split}_audio/{id}.npy"}},
        },
        "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b"]}],
    }
    (root / "train.csv").write_text("id,label\nx,a\ny,b\n")
    (root / "train_audio").mkdir()
    np.save(root / "train_audio" / "x.npy", np.ones((3, 2), np.float32))
    np.save(root / "train_audio" / "y.npy", np.zeros((2, 2), np.float32))
    cfg = validate(raw)
    first = load_dataset(cfg, "train").samples[0].features["audio"]
    np.testing.assert_array_equal(first, np.ones((3, 2)))
    np.save(root / "train_audio" / "x.npy", np.full((4, 2), 2.0, np.float32))
    changed = load_dataset(cfg, "train").samples[0].features["audio"]
    np.testing.assert_array_equal(changed, np.full((4, 2), 2.0))
    assert len(list((tmp_path / "cache" / "splits").iterdir())) == 2


def test_bad_features_leave_no_shards(tmp_path: Path, fresh, monkeypatch) -> None:
    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache")})
    real = SyntheticAdapter._features

    def with_nan(self: SyntheticAdapter, modality: str, latent: Any, rng: Any) -> Any:
        for i, x in enumerate(real(self, modality, latent, rng)):
            yield np.full_like(x, np.nan) if (modality, i) == ("audio", 7) else x

    monkeypatch.setattr(SyntheticAdapter, "_features", with_nan)
    with pytest.raises(AffectFusionError, match=r"sample 'train-00007' modality 'audio': contains NaN"):
        load_dataset(cfg, "train")
    assert not list((tmp_path / "cache" / "splits").iterdir())


def test_frame_moments_match_one_float64_pass() -> None:
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal((int(rng.integers(1, 40)), 5)) * 3 + 7).astype(np.float32) for _ in range(200)]
    mean, std = frame_moments(iter(arrays), chunk_bytes=2_000)  # many chunks
    x = np.concatenate(arrays).astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-10)
    assert frame_moments(iter([])) is None


def test_model_only_config_changes_reuse_the_shards(tmp_path: Path, fresh) -> None:
    """Every seed or variant of a sweep reads the shards the first one wrote."""
    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache")})
    load_dataset(cfg, "train")
    other = validate(apply_overrides(cfg.to_dict(), {"model.hidden_dim": 8, "train.seed": 3}))
    load_dataset(other, "train")
    assert len(list((tmp_path / "cache" / "splits").iterdir())) == 1


def test_spawned_loader_workers_read_the_shards(tmp_path: Path, fresh) -> None:
    """Workers started by spawn (macOS, Windows) get the split by its folder and open their own files."""
    from torch.utils.data import DataLoader

    from affectfusion.data.tasks import collator_for

    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache")})
    ds = load_dataset(cfg, "dev")
    collate = collator_for(ds.modalities, cfg.tasks)
    kwargs: dict[str, Any] = {"batch_size": 16, "collate_fn": collate}
    serial = list(DataLoader(ds, **kwargs))
    spawned = list(DataLoader(ds, num_workers=1, multiprocessing_context="spawn", **kwargs))
    for a, b in zip(serial, spawned, strict=True):
        assert a.ids == b.ids
        for m in a.features:
            assert (a.features[m] == b.features[m]).all()


def test_read_only_cache_holds_the_split_in_memory(tmp_path: Path, fresh, monkeypatch) -> None:
    monkeypatch.setattr(shards_mod.os, "access", lambda *a, **k: False)
    cfg = tiny_config({"data.cache_dir": str(tmp_path / "cache")})
    ds = load_dataset(cfg, "train")
    assert not any(isinstance(s.features, StoredFeatures) for s in ds.samples)
    assert len(ds) == 120
