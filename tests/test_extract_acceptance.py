"""Acceptance of ``affectfusion extract`` (issue #4) on small real copies of three shared corpora.

Each test copies a few real items per split of ``ravdess_speech_16k``, ``fer2013_subset`` or ``meld``
into a temporary folder in the adapter's layout, injects inputs that cannot be extracted (a corrupt
and a header-only WAV, a text file named ``.jpg``, a whitespace-only utterance), and runs the shipped
config through the CLI twice with the network blocked. The first run must finish, list exactly the
injected inputs in the failure reports and extract everything else; the second must compute nothing
and not even set up (load) an extractor.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import: a hub lookup fails fast

import affectfusion.extract as extract_pkg
from affectfusion.cli import main
from affectfusion.config import load_config
from affectfusion.extract import Item, build_extractor, shared_extractor
from affectfusion.extract.base import Extractor
from affectfusion.extract.store import FeatureStore
from affectfusion.pipeline import load_dataset

SPLITS = ("train", "dev", "test_small")


@dataclass
class Run:
    """One CLI invocation: exit code, output, extraction reports, and how often extractors did work."""

    code: int | None
    out: str
    err: str  # whitespace-normalised
    reports: list[tuple[str, Any]]  # (split, ExtractionReport), in the order the CLI ran them
    computes: int  # FeatureStore._compute calls (batches of inputs not yet cached)
    setups: int  # extractors set up (models loaded)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """HF_HUB_OFFLINE=1, and any attempt to open a network connection is recorded and refused.

    Extractors (and their models) are shared within a process; each test starts as a fresh process would.
    """
    shared_extractor.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network blocked in tests: {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert attempts == [], f"extraction tried to reach the network: {attempts}"


def run_extract(
    config: str, sets: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``affectfusion extract <config> --set ...`` through the real entry point, with counting spies."""
    reports: list[tuple[str, Any]] = []
    counts = {"compute": 0, "setup": 0}
    real_apply = extract_pkg.apply_extraction
    real_compute = FeatureStore._compute
    real_ready = Extractor.ensure_ready

    def apply(samples: list, data: Any, *args: Any, **kwargs: Any) -> list:
        out = real_apply(samples, data, *args, **kwargs)
        reports.extend((samples[0].id.split("/")[0], r) for r in out)
        return out

    def compute(self: FeatureStore, *args: Any, **kwargs: Any) -> dict[str, str]:
        counts["compute"] += 1
        return real_compute(self, *args, **kwargs)

    def ensure_ready(self: Extractor) -> None:
        counts["setup"] += not self._ready
        real_ready(self)

    with monkeypatch.context() as m:
        m.setattr(extract_pkg, "apply_extraction", apply)
        m.setattr(FeatureStore, "_compute", compute)
        m.setattr(Extractor, "ensure_ready", ensure_ready)
        m.setattr(sys, "argv", ["affectfusion", "extract", config, "--workers", "1", *[f"--set={s}" for s in sets]])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main()
    captured = capsys.readouterr()
    return Run(exit_info.value.code, captured.out, flat(captured.err), reports, counts["compute"], counts["setup"])


def flat(text: str) -> str:
    """Console output with line wrapping undone (rich wraps at 80 columns when not on a terminal)."""
    return " ".join(text.split())


def failure_rows(cache: Path, extractor: str) -> list[dict[str, str]]:
    (path,) = (cache / extractor).glob("*/failures.csv")
    return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")


def check_runs(
    config: str,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    injected: dict[str, tuple[str, str]],
    sizes: dict[str, int],
) -> tuple[Run, Run]:
    """Run ``config`` twice on ``root``; check failures (id -> (source, error substring)) and counts.

    ``sizes`` is the number of items per split, injected ones included.
    """
    cache = tmp_path / "cache"
    sets = [f"data.root={root}", f"data.cache_dir={cache}", "train.progress=true"]
    first = run_extract(config, sets, monkeypatch, capsys)
    assert first.code in (0, None), first.err
    extractors = list(dict.fromkeys(r.extractor for _, r in first.reports))
    assert len(first.reports) == len(SPLITS) * len(extractors)
    for split, r in first.reports:
        bad = {i for i in injected if i.startswith(f"{split}/")}
        assert r.total == sizes[split]
        assert {f["id"] for f in r.failures} == bad, (split, r.extractor, r.failures)
        assert (r.computed, r.cached) == (sizes[split] - len(bad), 0)
    for name in extractors:
        # One line per injected input over all splits (the dev run must not erase the train lines).
        rows = failure_rows(cache, name)
        assert sorted(row["id"] for row in rows) == sorted(injected), rows
        for row in rows:
            source, reason = injected[row["id"]]
            assert row["source"] == source
            assert reason in row["error"], row
        # Every other input has features on disk.
        assert len(list((cache / name).glob("*/items/*/*.npy"))) == sum(sizes.values()) - len(injected)
        assert name in first.out  # its row of the summary table (the progress bar gives way to it)
    assert "computed" in first.out and "failure report" in first.out  # the summary table
    for item_id in injected:
        assert item_id in first.err  # each failure is also printed

    second = run_extract(config, sets, monkeypatch, capsys)
    assert second.code in (0, None), second.err
    assert (second.computes, second.setups) == (0, 0)  # nothing extracted, no model loaded
    for split, r in second.reports:
        bad = {i for i in injected if i.startswith(f"{split}/")}
        assert (r.computed, r.cached, len(r.failures)) == (0, sizes[split] - len(bad), len(bad))
    for name in extractors:
        assert sorted(row["id"] for row in failure_rows(cache, name)) == sorted(injected)
        assert "extract " + name not in second.err  # nothing to extract: no progress bar
    return first, second


# -- RAVDESS -----------------------------------------------------------------------------------


def copy_ravdess(src: Path, dst: Path, per_split: int) -> list[dict[str, str]]:
    """The first ``per_split`` rows of each split, files and labels.csv rows, in the published layout."""
    with (src / "labels.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    kept = []
    for split in SPLITS:
        for row in [r for r in rows if r["split"] == split][:per_split]:
            (dst / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            (dst / row["path"]).write_bytes((src / row["path"]).read_bytes())
            kept.append(row)
    return [dict(r, _fields=fields) for r in kept]


def write_labels(dst: Path, rows: list[dict[str, str]]) -> None:
    fields = rows[0]["_fields"]
    with (dst / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def ravdess_copy(shared_data: Path, tmp_path: Path) -> tuple[Path, dict[str, tuple[str, str]], dict[str, int]]:
    """4 real WAVs per split, plus a corrupt WAV (train) and a header-only WAV (dev) with valid-looking labels."""
    src = shared_data / "ravdess_speech_16k"
    if not (src / "labels.csv").is_file():
        pytest.skip(f"{src} is absent")
    root = tmp_path / "ravdess"
    rows = copy_ravdess(src, root, per_split=4)
    train_row = next(r for r in rows if r["split"] == "train")
    dev_row = next(r for r in rows if r["split"] == "dev")
    corrupt = str(Path(train_row["path"]).with_name("03-01-05-02-02-02-01.wav"))
    empty = str(Path(dev_row["path"]).with_name("03-01-04-02-02-02-05.wav"))
    (root / corrupt).write_bytes(np.random.default_rng(0).bytes(6000))
    sf.write(root / empty, np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")  # a 44-byte header only
    rows += [dict(train_row, path=corrupt), dict(dev_row, path=empty)]
    write_labels(root, rows)
    injected = {
        corrupt.removesuffix(".wav"): (corrupt, "not a readable audio file"),
        empty.removesuffix(".wav"): (empty, "no samples"),
    }
    return root, injected, {"train": 5, "dev": 5, "test_small": 4}


@pytest.mark.shared_data
def test_ravdess_extract_reports_bad_wavs_and_second_run_does_nothing(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, injected, sizes = ravdess_copy(shared_data, tmp_path)
    first, _ = check_runs("ravdess_speech", root, tmp_path, monkeypatch, capsys, injected, sizes)
    assert {r.extractor for _, r in first.reports} == {"egemaps", "egemaps_lld"}
    for item_id, (source, _) in injected.items():  # the error names the file itself
        assert any(row["error"].startswith(str(root / source)) for row in failure_rows(tmp_path / "cache", "egemaps"))
        assert item_id in first.err


@pytest.mark.shared_data
def test_training_leaves_out_samples_whose_extraction_failed(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed inputs are dropped with a message; training and evaluation run on the rest."""
    root, injected, sizes = ravdess_copy(shared_data, tmp_path)
    out = tmp_path / "run"
    sets = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "train.epochs=1", "train.progress=false"]
    sets.append("data.bad_media=drop_modality")  # the default, error, is tested in test_data_speech
    argv = ["affectfusion", "train", "ravdess_speech", "--out", str(out), *[f"--set={s}" for s in sets]]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = flat(capsys.readouterr().err)
    assert exit_info.value.code in (0, None), err
    for split in ("train", "dev"):  # one injected input in each
        assert f"split {split!r} in {root}: 1 samples have no usable modality and are left out" in err
    predictions = pd.read_csv(out / "eval" / "dev" / "predictions.csv")
    assert len(predictions) == sizes["dev"] - 1
    assert not set(predictions["id"]) & set(injected)
    overrides = {"data.root": str(root), "data.cache_dir": str(tmp_path / "cache"), "data.bad_media": "drop_modality"}
    cfg = load_config("ravdess_speech", overrides)
    cfg.train.progress = False
    train = load_dataset(cfg, "train")
    assert len(train.samples) == sizes["train"] - 1
    assert all(set(s.features) == {"audio_func", "audio_seq"} for s in train.samples)


# -- FER2013 -----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_fer2013_extract_reports_a_non_image_and_second_run_does_nothing(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_data / "fer2013_subset"
    if not (src / "labels.csv").is_file():
        pytest.skip(f"{src} is absent")
    root = tmp_path / "fer"
    rows = copy_ravdess(src, root, per_split=5)  # same layout: labels.csv with path and split columns
    train_row = next(r for r in rows if r["split"] == "train")
    fake = str(Path(train_row["path"]).with_name("Training_00000000.jpg"))
    (root / fake).write_text("this is a text file, not a JPEG\n", encoding="utf-8")
    rows.append(dict(train_row, path=fake))
    write_labels(root, rows)
    injected = {fake.removesuffix(".jpg"): (fake, "not an image")}
    first, _ = check_runs(
        "fer2013_face", root, tmp_path, monkeypatch, capsys, injected, {"train": 6, "dev": 5, "test_small": 5}
    )
    assert {r.extractor for _, r in first.reports} == {"fer_cnn"}


# -- MELD --------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_meld_extract_reports_an_empty_utterance_and_second_run_does_nothing(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_data / "meld"
    if not (src / "train.csv").is_file():
        pytest.skip(f"{src} is absent")
    root = tmp_path / "meld"
    root.mkdir()
    for split in SPLITS:
        table = pd.read_csv(src / f"{split}.csv", dtype=str, keep_default_na=False).head(5)
        if split == "dev":
            table.loc[2, "Utterance"] = "   "  # whitespace only: a row the adapter keeps, the extractor rejects
            item_id = f"dev/dia{int(table.loc[2, 'Dialogue_ID'])}_utt{int(table.loc[2, 'Utterance_ID'])}"
        table.to_csv(root / f"{split}.csv", index=False)
    injected = {item_id: (f"{root / 'dev.csv'}:4", "empty text")}
    first, _ = check_runs("meld_text", root, tmp_path, monkeypatch, capsys, injected, dict.fromkeys(SPLITS, 5))
    assert {r.extractor for _, r in first.reports} == {"minilm"}
    assert first.setups >= 1  # MiniLM was really loaded (from the installed package, offline)


# -- the feature store's failure bookkeeping (no shared data needed) ---------------------------------


def test_failure_report_keeps_other_splits_and_drops_fixed_inputs(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    lexicon = build_extractor("lexicon", {"nrc": False}, "test")
    store.run(lexicon, [Item("train/a", "good"), Item("train/b", " ", "train.csv:3")], progress=False)
    store.run(lexicon, [Item("dev/a", "", "dev.csv:2"), Item("dev/b", "fine")], progress=False)
    (path,) = tmp_path.glob("lexicon/*/failures.csv")
    assert pd.read_csv(path)["id"].tolist() == ["train/b", "dev/a"]
    store.run(lexicon, [Item("train/a", "good"), Item("train/b", "fixed", "train.csv:3")], progress=False)
    assert pd.read_csv(path).to_dict("records") == [{"id": "dev/a", "source": "dev.csv:2", "error": "empty text"}]


def test_failed_input_is_not_retried_until_a_package_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_compute = FeatureStore._compute

    def compute(self: FeatureStore, extractor: Extractor, folder: Path, todo: dict, *args: Any) -> dict[str, str]:
        calls.append(len(todo))
        return real_compute(self, extractor, folder, todo, *args)

    monkeypatch.setattr(FeatureStore, "_compute", compute)
    store = FeatureStore(tmp_path)
    items = [Item("a", "good"), Item("b", "  ")]
    for _ in range(2):
        features, report = store.run(build_extractor("lexicon", {"nrc": False}, "test"), items, progress=False)
        assert set(features) == {"a"} and [f["error"] for f in report.failures] == ["empty text"]
    assert calls == [2]  # the second run reused the feature and the failure
    (record,) = tmp_path.glob("lexicon/*/items/*/*.error.json")
    failure = json.loads(record.read_text())
    record.write_text(json.dumps({**failure, "packages": {**failure["packages"], "vaderSentiment": "0.0"}}))
    _, report = store.run(build_extractor("lexicon", {"nrc": False}, "test"), items, progress=False)
    assert calls == [2, 1] and (report.computed, report.cached, len(report.failures)) == (0, 1, 1)


def test_same_bad_content_in_two_files_names_each_file(tmp_path: Path) -> None:
    """Inputs are keyed by content; a cached failure must still name the file it is reported for."""
    bad = [tmp_path / "one.wav", tmp_path / "two.wav"]
    for path in bad:
        path.write_bytes(b"RIFF not really a wave file" * 10)
    store = FeatureStore(tmp_path / "cache")
    egemaps = build_extractor("egemaps", {}, "test")
    for paths in (bad, bad[::-1]):
        _, report = store.run(egemaps, [Item(p.stem, p, p.name) for p in paths], progress=False)
        for failure in report.failures:
            assert failure["error"].startswith(f"{tmp_path / failure['source']}: not a readable audio file")
