"""Prediction from a trained raw-media run: the Predictor's per-input errors and modality subsets, the
``predict`` CLI (single input, CSV/JSONL batches with relative paths), and the acceptance check that
CLI single, CLI batch and the REST API give the same probabilities for the same inputs."""

from __future__ import annotations

import json
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from affectfusion.errors import AffectFusionError
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from tests.helpers import run_cli

CLASSES = ["happy", "sad", "angry"]


@pytest.fixture(scope="module")
def predictor(trained_media_run: Path) -> Predictor:
    return Predictor.load(trained_media_run)


def probabilities(row: pd.Series) -> dict[str, float]:
    return {c: float(row[f"emotion_prob_{c}"]) for c in CLASSES}


# Scoring an input alone or inside a batch runs the model's float32 matrix products with a different
# batch size, which can round differently in the last bit (~3e-8 seen); labels never differ.
BATCH_TOLERANCE = 1e-6


def assert_same_tasks(a: dict, b: dict) -> None:
    """Same label and the same probabilities up to float32 rounding of batched inference."""
    assert a.keys() == b.keys()
    for task in a:
        assert a[task]["label"] == b[task]["label"]
        assert a[task]["probabilities"] == pytest.approx(b[task]["probabilities"], abs=BATCH_TOLERANCE)


# -- Predictor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("subset", [s for n in (1, 2, 3) for s in combinations(("text", "audio", "image"), n)])
def test_predictor_any_subset_of_modalities(predictor: Predictor, media: Path, subset: tuple[str, ...]) -> None:
    values = {"text": "I feel wonderful", "audio": str(media / "test000.wav"), "image": str(media / "test000.png")}
    p = predictor.predict_one({k: values[k] for k in subset})
    assert p.error is None
    assert p.modalities_used == sorted(subset)
    proba = p.tasks["emotion"]["probabilities"]
    assert abs(sum(proba.values()) - 1) < 1e-5 and p.tasks["emotion"]["label"] == max(proba, key=proba.get)
    assert set(p.modality_weights) == {"text", "audio", "image"}
    assert all(p.modality_weights[m] > 0 for m in subset)


def test_predictor_errors_are_per_input(predictor: Predictor, media: Path, tmp_path: Path) -> None:
    """Every kind of unusable input gets its own message; the good inputs in the batch are unaffected."""
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "noise.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    (tmp_path / "empty.png").write_bytes(b"")
    good = {"text": "so lonely", "image": str(media / "test001.png")}
    cases = {
        "good": (good, None),
        "unknown key": ({"smell": "roses"}, "unknown input 'smell'"),
        "empty text": ({"text": "   "}, "empty text"),
        "no input": ({}, "no input for any of the model's modalities"),
        "missing file": ({"audio": str(tmp_path / "nope.wav")}, "audio file not found"),
        "text file as image": ({"image": str(tmp_path / "notes.png")}, "not an image"),
        "empty image": ({"image": str(tmp_path / "empty.png")}, "empty file"),
        "corrupt audio": ({"audio": str(tmp_path / "noise.wav")}, "not a readable audio file"),
        "text not a string": ({"text": 42}, "text input must be a string"),
        "good again": ({"audio": str(media / "test004.wav")}, None),
    }
    preds = predictor.predict([c[0] for c in cases.values()], list(cases))
    for (name, (_, phrase)), p in zip(cases.items(), preds, strict=True):
        assert p.id == name
        if phrase is None:
            assert p.error is None and p.tasks
        else:
            assert p.error is not None and phrase in p.error, (name, p.error)
            assert p.tasks == {}
    alone = predictor.predict_one(good, "good")
    assert_same_tasks(preds[0].tasks, alone.tasks)


def test_predictor_batch_equals_one_at_a_time(predictor: Predictor, media: Path) -> None:
    inputs = [
        {"text": "furious and outraged", "audio": str(media / "test002.wav")},
        {"image": str(media / "test003.png")},
        {"text": "joy", "audio": str(media / "test004.wav"), "image": str(media / "test004.png")},
    ]
    batch = predictor.predict(inputs)
    for item, p in zip(inputs, batch, strict=True):
        assert_same_tasks(p.tasks, predictor.predict_one(item, p.id).tasks)
    assert [p.tasks for p in predictor.predict(inputs)] == [p.tasks for p in batch]  # deterministic
    with pytest.raises(AffectFusionError, match="2 ids for 3 inputs"):
        predictor.predict(inputs, ["a", "b"])


def test_predictor_info_describes_the_run(predictor: Predictor) -> None:
    info = predictor.info()
    assert info["name"] == "media" and info["fusion"] == "weighted"
    assert {m: v["input"] for m, v in info["modalities"].items()} == {
        "text": "text",
        "audio": "audio",
        "image": "image",
    }
    assert info["modalities"]["image"]["extractor"]["extractor"] == "fer_cnn"
    assert set(info["metrics"]) == {"dev", "test"}
    assert predictor.accepted_inputs == {"text": ["text"], "audio": ["audio"], "image": ["image"]}


def test_features_predictor_reads_arrays_and_npy(trained_features_run: Path, tmp_path: Path) -> None:
    predictor = Predictor.load(trained_features_run)
    rng = np.random.default_rng(1)
    audio = rng.normal(size=(5, 6)).astype(np.float32)
    np.save(tmp_path / "audio.npy", audio)
    np.save(tmp_path / "nan.npy", np.full(8, np.nan, dtype=np.float32))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 8), dtype=np.float32))
    (tmp_path / "junk.npy").write_text("junk")
    preds = predictor.predict(
        [
            {"audio": audio},
            {"audio": str(tmp_path / "audio.npy")},
            {"text": str(tmp_path / "nan.npy")},
            {"text": str(tmp_path / "cube.npy")},
            {"video": str(tmp_path / "junk.npy")},
        ]
    )
    assert preds[0].error is None and preds[0].tasks == preds[1].tasks
    assert "finite values" in preds[2].error
    assert "shape (2, 2, 8)" in preds[3].error
    assert "junk.npy" in preds[4].error


def test_features_of_the_wrong_dimension_fail_only_their_row(trained_features_run: Path) -> None:
    predictor = Predictor.load(trained_features_run)
    preds = predictor.predict([{"text": np.zeros(8, np.float32)}, {"text": np.zeros(3, np.float32)}])
    assert preds[0].error is None
    assert "dimension 3" in preds[1].error


# -- the predict CLI ---------------------------------------------------------------------------------


def test_cli_single_json_matches_predictor(trained_media_run, predictor, media, capsys, monkeypatch) -> None:
    args = ["predict", str(trained_media_run), "--text", "I love it", "--audio", str(media / "test000.wav")]
    code, out, _ = run_cli([*args, "--image", str(media / "test000.png"), "--json"], capsys, monkeypatch)
    assert code == 0
    got = json.loads(out)
    want = predictor.predict_one(
        {"text": "I love it", "audio": str(media / "test000.wav"), "image": str(media / "test000.png")}
    )
    assert got["tasks"] == want.tasks and got["modalities_used"] == ["audio", "image", "text"]


def test_cli_single_prints_a_table(trained_media_run, capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["predict", str(trained_media_run), "--text", "furious rage"], capsys, monkeypatch)
    assert code == 0
    assert "emotion:" in out and all(c in out for c in CLASSES) and "modalities used: text" in out


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--text", "hi", "--batch", "x.csv"], "either --batch or single inputs"),
        ([], "nothing to predict"),
        (["--features", "audio"], "MODALITY=file.npy"),
        (["--text", "  "], "empty text"),
        (["--image", "{missing}"], "image file not found"),
        (["--batch", "{missing}"], "table not found"),
    ],
)
def test_cli_errors_are_one_line(trained_media_run, tmp_path, capsys, monkeypatch, extra, phrase) -> None:
    extra = [a.replace("{missing}", str(tmp_path / "missing.png")) for a in extra]
    code, out, err = run_cli(["predict", str(trained_media_run), *extra], capsys, monkeypatch)
    assert code == 2
    assert phrase in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def copy_media(media: Path, dest: Path, names: list[str]) -> None:
    (dest / "media").mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(media / n, dest / "media" / n)


def test_cli_batch_csv_with_relative_paths(trained_media_run, media, tmp_path, capsys, monkeypatch) -> None:
    """Paths are relative to the table's folder (not the working directory); bad rows get an error."""
    folder = tmp_path / "inputs"
    copy_media(media, folder, ["test000.wav", "test000.png", "test001.wav"])
    table = pd.DataFrame(
        [
            {"id": "full", "text": "great joy", "audio": "media/test000.wav", "image": "media/test000.png"},
            {"id": "audio_only", "text": "", "audio": "media/test001.wav", "image": ""},
            {"id": "text_only", "text": "so sad", "audio": "", "image": ""},
            {"id": "missing", "text": "", "audio": "media/none.wav", "image": ""},
            {"id": "empty", "text": "", "audio": "", "image": ""},
        ]
    )
    table.to_csv(folder / "batch.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["predict", str(trained_media_run), "--batch", "inputs/batch.csv"], capsys, monkeypatch)
    assert code == 0
    out = folder / "batch.predictions.csv"
    assert "5 rows, 3 predicted, 2 with errors" in err
    df = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("id")
    assert list(df.index) == ["full", "audio_only", "text_only", "missing", "empty"]
    assert df.loc["full", "modalities"] == "audio;image;text"
    assert df.loc["audio_only", "modalities"] == "audio"
    assert df.loc["text_only", "emotion"] in CLASSES and df.loc["text_only", "error"] == ""
    assert "not found" in df.loc["missing", "error"] and "no input" in df.loc["empty", "error"]


def test_cli_batch_jsonl_and_unknown_columns(trained_media_run, media, tmp_path, capsys, monkeypatch) -> None:
    copy_media(media, tmp_path, ["test004.png"])
    rows = [{"id": "a", "text": "hate", "image": "media/test004.png"}, {"id": "b", "text": "love"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "res" / "pred.csv"
    args = ["predict", str(trained_media_run), "--batch", str(tmp_path / "in.jsonl"), "--out", str(out)]
    code, _, _ = run_cli([*args, "--no-progress"], capsys, monkeypatch)
    assert code == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df["id"]) == ["a", "b"] and list(df["modalities"]) == ["image;text", "text"]
    pd.DataFrame([{"id": "x", "text": "hi", "smell": "roses"}]).to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = run_cli(
        ["predict", str(trained_media_run), "--batch", str(tmp_path / "bad.csv")], capsys, monkeypatch
    )
    assert code == 2 and "unknown column(s) smell" in err


# -- acceptance: the same inputs give the same predictions everywhere ----------------------------------


def test_cli_single_cli_batch_and_api_agree(trained_media_run, predictor, media, tmp_path, capsys, monkeypatch) -> None:
    copy_media(media, tmp_path, ["test006.wav", "test006.png", "test007.png", "test008.wav"])
    inputs = {
        "all": {"text": "I am delighted", "audio": "media/test006.wav", "image": "media/test006.png"},
        "text_image": {"text": "miserable loss", "image": "media/test007.png"},
        "audio": {"audio": "media/test008.wav"},
    }
    # CLI single, one call per input
    single: dict[str, dict[str, float]] = {}
    for name, item in inputs.items():
        flags = [x for k, v in item.items() for x in (f"--{k}", v if k == "text" else str(tmp_path / v))]
        code, out, _ = run_cli(["predict", str(trained_media_run), *flags, "--json"], capsys, monkeypatch)
        assert code == 0
        single[name] = json.loads(out)["tasks"]["emotion"]["probabilities"]
    # CLI batch, one table
    rows = [{"id": name, **{k: item.get(k, "") for k in ("text", "audio", "image")}} for name, item in inputs.items()]
    pd.DataFrame(rows).to_csv(tmp_path / "batch.csv", index=False)
    code, _, _ = run_cli(
        ["predict", str(trained_media_run), "--batch", str(tmp_path / "batch.csv")], capsys, monkeypatch
    )
    assert code == 0
    df = pd.read_csv(tmp_path / "batch.predictions.csv", dtype=str, keep_default_na=False).set_index("id")
    batch = {name: probabilities(df.loc[name]) for name in inputs}
    # API, multipart upload per input
    client = TestClient(create_app(predictor))
    api: dict[str, dict] = {}
    for name, item in inputs.items():
        files = {
            k: (Path(v).name, (tmp_path / v).read_bytes(), "application/octet-stream")
            for k, v in item.items()
            if k != "text"
        }
        r = client.post("/predict", data={"text": item["text"]} if "text" in item else {}, files=files or None)
        assert r.status_code == 200, r.text
        api[name] = r.json()["tasks"]["emotion"]
    for name in inputs:
        assert single[name] == api[name]["probabilities"], name  # both score the input alone: bit-identical
        assert df.loc[name, "emotion"] == api[name]["label"]
        assert batch[name] == pytest.approx(api[name]["probabilities"], abs=BATCH_TOLERANCE)
    assert len({tuple(v.values()) for v in single.values()}) == 3  # three different inputs, three answers


def test_batch_output_keeps_the_tables_labels_beside_the_predictions(trained_media_run: Path) -> None:
    """A split's own table keeps its gold ``emotion`` column (as ``input_emotion``, since the prediction
    column has that name) instead of losing it to the prediction."""
    from affectfusion.serve.batch import predict_table

    data = trained_media_run.parent / "data"
    table = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False)
    out = predict_table(Predictor.load(trained_media_run), data / "test.csv", progress=False)
    assert list(out.columns[:2]) == ["id", "input_emotion"]
    assert list(out["input_emotion"]) == list(table["emotion"])
    assert set(out["emotion"]) <= set(CLASSES)
