"""A damaged entry of the feature cache (cut short, overwritten, of another shape) is noticed when it is
read, deleted and extracted again: ``extract`` and ``train`` go on, and the features come out the same."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml

from affectfusion.data.examples.media import CLASSES
from affectfusion.extract import build_extractor
from affectfusion.extract.store import FeatureStore, Item
from tests.fixtures_media import make_media_table, media_table_config
from tests.helpers import run_cli


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


DAMAGE = {
    "truncated": lambda data: data[: len(data) - 7],
    "header only": lambda data: data[:128],
    "empty": lambda data: b"",
    "not npy": lambda data: b"garbage" * 20,
    "trailing bytes": lambda data: data + b"\0" * 8,
    "3-d": lambda data: npy(np.zeros((2, 2, 2), np.float32)),
    "float64": lambda data: npy(np.zeros(4, np.float64)),
    "nan": lambda data: npy(np.full(4, np.nan, np.float32)),
    "no values": lambda data: npy(np.zeros((0, 4), np.float32)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_extracted_again(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    lexicon = build_extractor("lexicon", {"nrc": False}, "test")
    items = [Item("a", "a happy day"), Item("b", "a sad night"), Item("c", "a happy day")]
    first, _ = store.run(lexicon, items, progress=False)
    entries = sorted(tmp_path.glob("lexicon/*/items/*/*.npy"))
    assert len(entries) == 2
    entries[0].write_bytes(DAMAGE[damage](entries[0].read_bytes()))
    capsys.readouterr()
    again, report = store.run(lexicon, items, progress=False)
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    assert (report.computed, report.cached) in ((1, 2), (2, 1))  # the damaged content, once or for both ids
    assert str(entries[0]) in capsys.readouterr().err  # one quiet line says which entry was redone
    np.testing.assert_array_equal(np.load(entries[0]), first["a"] if report.computed == 2 else first["b"])
    _, report = store.run(lexicon, items, progress=False)
    assert (report.computed, report.cached) == (0, 3)  # repaired for good


def test_same_content_gets_its_own_array(tmp_path: Path) -> None:
    """Two ids of one content share a cache entry, not an array: changing one leaves the other."""
    store = FeatureStore(tmp_path)
    lexicon = build_extractor("lexicon", {"nrc": False}, "test")
    items = [Item("a", "a happy day"), Item("b", "a happy day")]
    store.run(lexicon, items, progress=False)
    features, _ = store.run(lexicon, items, progress=False)
    features["a"] += 1
    assert not np.array_equal(features["a"], features["b"])


def media_text_config(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_media_table(root, splits={"train": 12, "dev": 6, "test": 6})
    raw = media_table_config(
        "text_only",
        root,
        tmp_path / "cache",
        {"text": "text"},
        {"text": {"name": "lexicon"}},
        CLASSES,
        {"hidden_dim": 8, "head_hidden": 8},
        {"epochs": 1, "batch_size": 8},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_extract_and_train_repair_a_truncated_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = media_text_config(tmp_path)
    code, _, err = run_cli(["extract", str(config)], capsys, monkeypatch)
    assert code == 0, err
    entries = sorted((tmp_path / "cache").glob("lexicon/*/items/*/*.npy"))
    snapshot = {p: p.read_bytes() for p in entries}
    for victim in entries[:2]:
        victim.write_bytes(victim.read_bytes()[:-5])
    code, _, err = run_cli(["extract", str(config)], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in entries} == snapshot  # repaired: the same features, byte for byte
    entries[0].write_bytes(entries[0].read_bytes()[:-5])
    code, _, err = run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    assert "feature cache:" in err and entries[0].read_bytes() == snapshot[entries[0]]
