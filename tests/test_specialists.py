"""P3 recipe: specialists trained alone, their frozen embeddings exported, fused, scored per subset."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from affectfusion.cli import main
from affectfusion.config import load_raw, resolve_config_path
from affectfusion.data import DATASETS
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.specialists.config import load_specialists_config
from affectfusion.recipes.specialists.export import specialist_dataset
from affectfusion.recipes.specialists.train import train_specialists
from affectfusion.registry import validate_options
from affectfusion.rundir import read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict

CONFIG = "emocare_specialists"
MODALITIES = ["text", "image", "video"]
SPLITS = ["train", "dev", "test"]
STAGES = [f"specialists.{m}" for m in MODALITIES] + ["fusion"]
QUICK = {f"{s}.train.epochs": 1 for s in STAGES} | {f"{s}.train.progress": False for s in STAGES}
TINY = QUICK | {"data.options.n_train": 120, "data.options.n_eval": 60}
# Small feature dimensions for the tests that train several times.
SMALL = TINY | {f"data.options.modalities.{m}.dim": 16 for m in MODALITIES}


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["affectfusion", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)


def sets(overrides: dict[str, Any]) -> list[str]:
    return [f"--set={k}={json.dumps(v) if isinstance(v, bool) else v}" for k, v in overrides.items()]


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config trained once from the CLI with tiny splits and one epoch per stage."""
    out = tmp_path_factory.mktemp("p3") / "run"
    with pytest.MonkeyPatch.context() as mp:
        run_cli(["train", CONFIG, "--out", str(out), *sets(TINY)], mp)
    return out


def test_layout_and_stage_configs(trained: Path) -> None:
    out = trained
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["kind"] == "specialists" and list(saved["specialists"]) == MODALITIES
    for m in MODALITIES:
        run = read_run(out / "specialists" / m)
        assert run.config.model.modalities == [m] and list(run.modalities) == [m]
        assert (run.paths.best.with_suffix(".safetensors")).is_file()
        assert (out / "specialists" / m / "plots" / "confusion_test_sentiment.png").is_file()
        assert (out / "specialists" / m / "report.md").is_file()
    fusion = read_run(out / "fusion")
    assert fusion.config.data.adapter == "feature_folder"
    assert Path(fusion.config.data.root) == (out / "embeddings").resolve()
    assert fusion.config.train.modality_dropout == 0.3
    assert fusion.config.model.fusion.name == "cross_attention"
    assert {m: s.dim for m, s in fusion.modalities.items()} == {
        m: read_run(out / "specialists" / m).config.model.hidden_dim for m in MODALITIES
    }
    for split in ("dev", "test"):
        assert json.loads((out / "fusion" / "eval" / split / "metrics.json").read_text())["n"] == 60


def test_specialists_train_and_score_only_samples_with_their_modality(trained: Path) -> None:
    out = trained
    prov = json.loads((out / "embeddings" / "provenance.json").read_text())
    for m in MODALITIES:
        meta = json.loads((out / "specialists" / m / "meta.json").read_text())
        run = read_run(out / "specialists" / m)
        with_m = {s: len(specialist_dataset(run, s)) for s in SPLITS}
        assert meta["n_train"] == with_m["train"] and meta["n_val"] == with_m["dev"]
        for split in ("dev", "test"):
            metrics = json.loads((out / "specialists" / m / "eval" / split / "metrics.json").read_text())
            assert metrics["n"] == with_m[split] == prov["splits"][split][m]
    # text is in every post, the others in some: the image and video specialists saw fewer samples.
    n_train = {m: json.loads((out / "specialists" / m / "meta.json").read_text())["n_train"] for m in MODALITIES}
    assert n_train["text"] == 120 and 0 < n_train["video"] < n_train["image"] < 120


def test_embeddings_exported_for_every_split_with_provenance(trained: Path) -> None:
    out = trained
    folder = out / "embeddings"
    manifest = pd.read_csv(folder / "manifest.csv", keep_default_na=False)
    prov = json.loads((folder / "provenance.json").read_text())
    assert set(manifest["sentiment"]) <= {"neutral_other", "joy", "anger", "surprise", "sadness"}
    for m in MODALITIES:
        src = prov["specialists"][m]
        run = read_run(out / "specialists" / m)
        checkpoint = run.paths.best.with_suffix(".safetensors")
        assert (out / src["checkpoint"]).resolve() == checkpoint.resolve()
        assert src["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        assert src["dim"] == run.config.model.hidden_dim
        for split in SPLITS:
            with np.load(folder / f"{m}_{split}.npz") as z:
                arrays = {k: z[k] for k in z.files}
            ids = set(manifest.loc[manifest["split"] == split, "id"])
            assert arrays and set(arrays) <= ids and len(arrays) == prov["splits"][split][m]
            assert {a.shape for a in arrays.values()} == {(src["dim"],)}
            assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays.values())
    # The text specialist covers every post: its file has every id of the split.
    with np.load(folder / "text_dev.npz") as z:
        assert set(z.files) == set(manifest.loc[manifest["split"] == "dev", "id"])


def test_exported_embeddings_are_the_frozen_specialists_outputs(trained: Path) -> None:
    """What the fusion reads is exactly what the best specialist checkpoint computes."""
    out = trained
    fusion = read_run(out / "fusion")
    fusion_ds = {s.id: s for s in load_dataset(fusion.config, "dev", modalities=fusion.modalities).samples}
    for m in MODALITIES:
        run = read_run(out / "specialists" / m)
        ds = specialist_dataset(run, "dev")
        emb = predict(load_model(run), ds, run.scalers, keep_embeddings=True).embeddings[m]
        for s, e in zip(ds.samples, emb, strict=True):
            np.testing.assert_allclose(fusion_ds[s.id].features[m][0], e, rtol=1e-6, atol=1e-6)
        missing = [sid for sid, s in fusion_ds.items() if m not in s.features]
        assert len(missing) == len(fusion_ds) - len(ds)


def test_subset_metrics_per_presence_pattern(trained: Path) -> None:
    out = trained
    results = json.loads((out / "subsets" / "subsets.json").read_text())
    assert set(results) == {"dev", "test"}
    for split, subsets in results.items():
        assert {"all", "text-only", "text+image", "text+video"} <= set(subsets)
        assert "text+image+video" not in subsets  # the P3 patterns exclude posts with both
        patterns = {k: v for k, v in subsets.items() if k != "all"}
        assert sum(v["fusion"]["n"] for v in patterns.values()) == subsets["all"]["fusion"]["n"] == 60
        assert set(subsets["text+image"]) == {"fusion", "text", "image"}
        assert set(subsets["text+video"]) == {"fusion", "text", "video"}
        assert set(subsets["text-only"]) == {"fusion", "text"}
        for models in subsets.values():
            n = {v["n"] for v in models.values()}
            assert len(n) == 1, f"{split}: every model of a subset is scored on the same samples"
            assert all(0.0 <= v["macro_f1"] <= 1.0 for v in models.values())
    long = pd.read_csv(out / "subsets" / "subsets.csv")
    assert {"split", "subset", "model", "n", "accuracy", "macro_f1"} <= set(long.columns)
    row = long[(long.split == "dev") & (long.subset == "text+image") & (long.model == "image")].iloc[0]
    assert row["macro_f1"] == pytest.approx(results["dev"]["text+image"]["image"]["macro_f1"])
    table = (out / "subsets" / "subsets.md").read_text()
    assert "| text+video" in table and "gain vs best specialist" in table


def test_fusion_run_works_with_test_command(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = trained
    before = json.loads((out / "fusion" / "eval" / "test" / "metrics.json").read_text())
    run_cli(["test", str(out / "fusion"), "--split", "test"], monkeypatch)
    after = json.loads((out / "fusion" / "eval" / "test" / "metrics.json").read_text())
    assert after["macro_f1"] == pytest.approx(before["macro_f1"]) and after["n"] == 60


def test_rerun_resumes_and_fusion_leaves_specialists_frozen(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    quiet = Console(quiet=True)
    train_specialists(CONFIG, SMALL, out, False, quiet)
    table = capsys.readouterr().out  # the subset table goes to stdout, whatever the log console
    assert "per modality subset" in table and "text+image" in table and "text-only" in table
    specialists = file_hashes(out / "specialists")
    exported = file_hashes(out / "embeddings")
    fusion_last = (out / "fusion" / "checkpoints" / "last.json").read_text()

    # Re-run: nothing is retrained or re-exported.
    train_specialists(CONFIG, SMALL, out, False, quiet)
    assert file_hashes(out / "specialists") == specialists and file_hashes(out / "embeddings") == exported
    assert (out / "fusion" / "checkpoints" / "last.json").read_text() == fusion_last

    # Training the fusion again (here: two epochs instead of one) does not touch the specialists.
    shutil.rmtree(out / "fusion")
    longer = SMALL | {"fusion.train.epochs": 2}
    train_specialists(CONFIG, longer, out, False, quiet)
    assert file_hashes(out / "specialists") == specialists and file_hashes(out / "embeddings") == exported
    assert len((out / "fusion" / "history.jsonl").read_text().splitlines()) == 2

    # A changed fusion config is not silently mixed with the old run.
    with pytest.raises(AffectFusionError, match="different config; delete that folder"):
        train_specialists(CONFIG, SMALL, out, False, quiet)

    # A retrained specialist (another seed) means new embeddings and a fusion trained afresh.
    shutil.rmtree(out / "specialists" / "image")
    reseeded = longer | {"specialists.image.train.seed": 7}
    old = json.loads((out / "embeddings" / "provenance.json").read_text())
    train_specialists(CONFIG, reseeded, out, False, quiet)
    new = json.loads((out / "embeddings" / "provenance.json").read_text())
    assert new["fingerprint"] != old["fingerprint"]
    assert new["specialists"]["image"]["sha256"] != old["specialists"]["image"]["sha256"]
    assert new["specialists"]["text"] == old["specialists"]["text"]
    marker = json.loads((out / "fusion" / "embeddings.json").read_text())
    assert marker["fingerprint"] == new["fingerprint"]
    history = [json.loads(line) for line in (out / "fusion" / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]  # afresh, not appended to the old history


def test_shipped_presence_rates_match_the_seed() -> None:
    """The shipped data: every post has text, 75.5 % an image, 19.8 % a video, 4.7 % neither."""
    options = load_raw(resolve_config_path(CONFIG))["data"]["options"]
    options = {**options, "n_train": 4000}
    for m in MODALITIES:
        options["modalities"][m]["dim"] = 2
    cls = DATASETS.get("synthetic")
    samples = cls(validate_options(cls, options, "data.options")).load(None, "train")
    rate = {m: np.mean([m in s.features for s in samples]) for m in MODALITIES}
    assert rate["text"] == 1.0
    assert abs(rate["image"] - 0.755) < 0.02 and abs(rate["video"] - 0.198) < 0.02
    text_only = np.mean([set(s.features) == {"text"} for s in samples])
    assert abs(text_only - 0.047) < 0.01
    labels = np.bincount([s.targets["sentiment"] for s in samples], minlength=5) / len(samples)
    assert labels.argmax() == 0 and labels[4] < 0.08  # neutral/other most frequent, sadness rarest


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"specialists.audio": {"model": {"hidden_dim": 8}}},
            r"specialists\.audio: modality 'audio' is not in the data",
        ),
        ({"specialists.text.model.modalities": ["image"]}, r"specialists\.text\.model\.modalities must be left out"),
        ({"fusion.model.modalities": ["text", "eeg"]}, r"fusion\.model\.modalities names eeg"),
        ({"specialists.text.train.epochz": 3}, r"unknown config key 'specialists\.text\.train\.epochz'"),
        ({"specialists": {}}, r"specialists: .*at least 1"),
        ({"kind": "fusion"}, r"kind: Input should be 'specialists'"),
        ({"fusion.train.modality_dropout": 1.5}, r"fusion\.train\.modality_dropout"),
        ({"specialists.video.model.dropout": 2}, r"specialists\.video\.model\.dropout: Input should be less than 1"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(AffectFusionError, match=message):
        train_specialists(CONFIG, TINY | overrides, tmp_path / "run", False, Console(quiet=True))
    assert not (tmp_path / "run" / "specialists").exists()


def test_bad_config_from_the_cli_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(
        sys, "argv", ["affectfusion", "train", CONFIG, "--out", str(tmp_path), "--set=specialists.eeg={}"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "specialists.eeg: modality 'eeg' is not in the data" in err and "Traceback" not in err


def test_loading_the_shipped_config_validates_every_stage() -> None:
    cfg = load_specialists_config(CONFIG)
    assert cfg.modalities == MODALITIES and cfg.fusion.train.modality_dropout == 0.3
    assert cfg.data.options["presence_patterns"] == {"text+image": 0.755, "text+video": 0.198, "text": 0.047}


@pytest.mark.slow
def test_full_shipped_config_fusion_beats_the_text_specialist(tmp_path: Path) -> None:
    """The calibrated data: on text+image posts the fused model beats the text specialist clearly."""
    out = train_specialists(CONFIG, {f"{s}.train.progress": False for s in STAGES}, tmp_path / "run", False)
    results = json.loads((out / "subsets" / "subsets.json").read_text())
    for split in ("dev", "test"):
        pair = results[split]["text+image"]
        assert pair["fusion"]["macro_f1"] > pair["text"]["macro_f1"] + 0.15
        assert pair["fusion"]["macro_f1"] > pair["image"]["macro_f1"]
