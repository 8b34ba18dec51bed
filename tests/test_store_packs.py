"""Pack files of the feature store: packed entries read back identical, are listed from one index, a damaged
pack is noticed and its entries extracted again, and temp files of killed writers are swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from affectfusion.extract import Extractor, build_extractor
from affectfusion.extract.packs import Packs
from affectfusion.extract.store import WRITER, FeatureStore, Item

TEXTS = ["a happy day", "a sad night", "an angry crowd", "a calm sea", "a happy day"]


def lexicon() -> Extractor:
    return build_extractor("lexicon", {"nrc": False}, "test")


def items(texts: list[str]) -> list[Item]:
    return [Item(f"id{i}", t) for i, t in enumerate(texts)]


def loose(root: Path) -> list[Path]:
    return sorted(root.glob("lexicon/*/items/*/*.npy"))


def test_packed_entries_read_back_identical(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    first, _ = store.run(lexicon(), items(TEXTS), progress=False)
    assert len(loose(tmp_path)) == 4  # one entry per distinct content
    listed = store.listing(lexicon())
    assert store.pack(lexicon()) == 4
    assert loose(tmp_path) == [] and store.listing(lexicon()) == listed
    again, report = store.run(lexicon(), items(TEXTS), progress=False)
    assert (report.cached, report.computed) == (5, 0)
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value)
    again["id0"] += 1  # two ids of one content get their own arrays, from a pack too
    assert not np.array_equal(again["id0"], again["id4"])


def test_new_entries_stay_loose_until_the_next_pack(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.run(lexicon(), items(TEXTS[:2]), progress=False)
    store.pack(lexicon())
    _, report = store.run(lexicon(), items(TEXTS), progress=False)
    assert (report.cached, report.computed) == (3, 2)  # "a happy day" twice, "a sad night" from the pack
    assert len(loose(tmp_path)) == 2
    assert store.pack(lexicon()) == 2
    assert len(list(tmp_path.glob("lexicon/*/packs/pack-*.npy"))) == 2
    assert len(Packs(store.folder(lexicon())).keys()) == 4


def test_a_loose_entry_already_packed_is_removed_by_pack(tmp_path: Path) -> None:
    """A kill between indexing a pack and deleting its loose files leaves both: the next pack cleans up."""
    store = FeatureStore(tmp_path)
    store.run(lexicon(), items(TEXTS), progress=False)
    copies = {p: p.read_bytes() for p in loose(tmp_path)}
    store.pack(lexicon())
    for path, data in copies.items():
        path.write_bytes(data)
    assert store.pack(lexicon()) == 0
    assert loose(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_pack_is_extracted_again(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    first, _ = store.run(lexicon(), items(TEXTS), progress=False)
    store.pack(lexicon())
    (pack,) = tmp_path.glob("lexicon/*/packs/pack-*.npy")
    if damage == "missing":
        pack.unlink()
    else:
        pack.write_bytes(pack.read_bytes()[:-8])
    again, report = store.run(lexicon(), items(TEXTS), progress=False)
    assert report.computed == 5 and not report.failures
    assert str(pack) in capsys.readouterr().err
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value)
    _, report = store.run(lexicon(), items(TEXTS), progress=False)
    assert (report.cached, report.computed) == (5, 0)  # repaired: loose entries again, index rows gone


def test_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.run(lexicon(), items(TEXTS[:1]), progress=False)
    folder = loose(tmp_path)[0].parent
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = folder / f".{'0' * 64}.npy.{WRITER}.{int(dead.stdout)}.tmp"
    live = folder / f".{'1' * 64}.npy.{WRITER}.{os.getpid()}.tmp"
    for tmp in (left, live):
        tmp.write_bytes(b"half an entry")
    store._sweep(folder.parent)
    assert not left.exists() and live.exists()  # a running writer's file is left alone


def test_extract_pack_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from tests.helpers import run_cli
    from tests.test_store_repair import media_text_config

    config = media_text_config(tmp_path)
    code, _, err = run_cli(["extract", str(config), "--pack"], capsys, monkeypatch)
    assert code == 0, err
    cache = tmp_path / "cache"
    assert "packed" in err and loose(cache) == [] and list(cache.glob("lexicon/*/packs/pack-*.npy"))
    code, _, err = run_cli(["extract", str(config)], capsys, monkeypatch)
    assert code == 0 and loose(cache) == [], err  # every entry found in the pack: nothing extracted again
    report = json.loads(next(cache.glob("lexicon/*/report.json")).read_text())
    assert report["computed"] == 0 and report["cached"] == report["total"] > 0
