"""Serving a P3 specialists output folder: raw inputs -> specialist embeddings -> fusion, everywhere.

The shipped ``emocare_specialists`` config is trained once (tiny splits, 16-d features, one epoch
per stage, about 3 s). The synthetic adapter gives features directly, so "raw input" here is each
modality's feature array, exactly what the specialists were trained on.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.specialists.predictor import SpecialistsPredictor
from affectfusion.recipes.specialists.train import train_specialists
from affectfusion.rundir import read_run
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.api import create_app
from affectfusion.serve.dashboard.backends import PredictorBackend, load_backend
from affectfusion.serve.predictor import Prediction, Predictor, load_predictor
from tests.fixtures_media import make_media_table, media_config
from tests.helpers import run_cli

MODALITIES = ["text", "image", "video"]
STAGES = [f"specialists.{m}" for m in MODALITIES] + ["fusion"]
SMALL = (
    {f"{s}.train.epochs": 1 for s in STAGES}
    | {f"{s}.train.progress": False for s in STAGES}
    | {"data.options.n_train": 120, "data.options.n_eval": 60}
    | {f"data.options.modalities.{m}.dim": 16 for m in MODALITIES}
)
TOL = 1e-6


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped P3 config trained once: ``<out>/specialists/<m>``, ``embeddings``, ``fusion``."""
    folder = tmp_path_factory.mktemp("p3_serve") / "run"
    return train_specialists("emocare_specialists", SMALL, folder, True, Console(stderr=True, quiet=True))


@pytest.fixture(scope="module")
def predictor(out: Path) -> SpecialistsPredictor:
    p = load_predictor(out)
    assert isinstance(p, SpecialistsPredictor)
    return p


@pytest.fixture(scope="module")
def fusion(out: Path) -> Predictor:
    """The fusion run on its own: it takes the exported embeddings as features."""
    return Predictor.load(out / "fusion")


def raw_split(out: Path, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Sample id -> modality -> the raw features each specialist reads, for every sample of ``split``."""
    samples: dict[str, dict[str, np.ndarray]] = {}
    for m in MODALITIES:
        run = read_run(out / "specialists" / m)
        for s in load_dataset(run.config, split, modalities=run.modalities).samples:
            samples.setdefault(s.id, {})[m] = s.features[m]
    return samples


def exported(out: Path, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Sample id -> modality -> the embedding written to ``<out>/embeddings`` by the export."""
    rows: dict[str, dict[str, np.ndarray]] = {}
    for path in sorted((out / "embeddings").glob(f"*_{split}.npz")):
        m = path.name.removesuffix(f"_{split}.npz")
        with np.load(path) as z:
            for sid in z.files:
                rows.setdefault(sid, {})[m] = z[sid]
    return rows


def assert_same(got: Prediction, want: Prediction) -> None:
    assert got.error is None and want.error is None, (got.error, want.error)
    assert got.modalities_used == want.modalities_used
    for task, out in want.tasks.items():
        assert got.tasks[task]["label"] == out["label"]
        np.testing.assert_allclose(
            list(got.tasks[task]["probabilities"].values()), list(out["probabilities"].values()), atol=TOL, rtol=0
        )
    assert list(got.modality_weights) == list(want.modality_weights)
    np.testing.assert_allclose(
        list(got.modality_weights.values()), list(want.modality_weights.values()), atol=TOL, rtol=0
    )


def npy(path: Path, x: np.ndarray) -> Path:
    np.save(path, x)
    return path


def npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


# -- the composed predictor -----------------------------------------------------------------------


def test_specialist_embedding_reproduces_the_exported_rows(out: Path) -> None:
    for split in ("train", "dev"):
        raw, rows = raw_split(out, split), exported(out, split)
        for m in MODALITIES:
            spec = Predictor.load(out / "specialists" / m)
            ids = [sid for sid, feats in raw.items() if m in feats]
            assert ids and set(ids) == {sid for sid, r in rows.items() if m in r}
            got = spec.embed([{m: raw[sid][m]} for sid in ids], ids)
            for sid, emb in zip(ids, got, strict=True):
                assert isinstance(emb, dict) and list(emb) == [m]
                assert emb[m].shape == rows[sid][m].shape == (spec.run.config.model.hidden_dim,)
                np.testing.assert_allclose(emb[m], rows[sid][m], atol=TOL, rtol=0)


def test_embed_reports_bad_inputs_per_row(out: Path) -> None:
    spec = Predictor.load(out / "specialists" / "image")
    good = np.ones((1, 16), dtype=np.float32)
    got = spec.embed([{"image": good}, {"image": np.ones(3, dtype=np.float32)}, {"audio": good}])
    assert isinstance(got[0], dict) and got[0]["image"].shape == (64,)
    assert (
        isinstance(got[1], AffectFusionError) and str(got[1]) == "image: features of dimension 3, the model expects 16"
    )
    assert isinstance(got[2], AffectFusionError) and "unknown input 'audio'" in str(got[2])


def test_raw_dev_inputs_predict_as_the_fusion_on_the_exported_embeddings(
    out: Path, predictor: SpecialistsPredictor, fusion: Predictor
) -> None:
    raw, rows = raw_split(out, "dev"), exported(out, "dev")
    ids = sorted(raw)
    assert len(ids) == 60
    got = predictor.predict([raw[sid] for sid in ids], ids)
    want = fusion.predict([rows[sid] for sid in ids], ids)
    for g, w in zip(got, want, strict=True):
        assert g.id == w.id
        assert_same(g, w)
    # ... which is also what the fusion run's own evaluation recorded for these samples.
    evaluated = pd.read_csv(out / "fusion" / "eval" / "dev" / "predictions.csv").set_index("id")
    classes = predictor.info()["tasks"][0]["classes"]
    for g in got:
        row = evaluated.loc[g.id]
        assert g.tasks["sentiment"]["label"] == row["sentiment_pred"]
        probs = [g.tasks["sentiment"]["probabilities"][c] for c in classes]
        np.testing.assert_allclose(probs, [row[f"sentiment_prob_{c}"] for c in classes], atol=1e-6, rtol=0)


@pytest.mark.parametrize("given", [["text"], ["text", "image"], ["text", "video"], ["image"]])
def test_any_subset_of_modalities(
    out: Path, predictor: SpecialistsPredictor, fusion: Predictor, given: list[str]
) -> None:
    raw, rows = raw_split(out, "dev"), exported(out, "dev")
    sid = next(s for s in sorted(raw) if set(given) <= set(raw[s]))
    got = predictor.predict_one({m: raw[sid][m] for m in given}, sid)
    assert got.modalities_used == [m for m in predictor.modalities if m in given]
    assert_same(got, fusion.predict_one({m: rows[sid][m] for m in given}, sid))
    if len(given) > 1:  # the extra modality changes the fusion's output
        alone = predictor.predict_one({"text": raw[sid]["text"]}, sid)
        a, b = alone.tasks["sentiment"]["probabilities"], got.tasks["sentiment"]["probabilities"]
        assert max(abs(a[c] - b[c]) for c in a) > 1e-4


def test_a_bad_input_fails_only_its_row(out: Path, predictor: SpecialistsPredictor, tmp_path: Path) -> None:
    raw = raw_split(out, "dev")
    sid = next(s for s in sorted(raw) if "image" in raw[s])
    good = {"text": raw[sid]["text"], "image": raw[sid]["image"]}
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"not a numpy file")
    inputs: list[dict[str, Any]] = [
        good,
        {"text": raw[sid]["text"], "image": np.ones(3, dtype=np.float32)},
        {"audio": raw[sid]["text"]},
        {},
        {"video": str(corrupt)},
        {"text": np.full((1, 16), np.nan, dtype=np.float32)},
        {"text": str(npy(tmp_path / "t.npy", raw[sid]["text"]))},
    ]
    got = predictor.predict(inputs, [str(i) for i in range(len(inputs))])
    assert [p.id for p in got] == [str(i) for i in range(len(inputs))]
    assert_same(got[0], predictor.predict_one(good, "0"))
    assert got[1].error == "image: features of dimension 3, the model expects 16" and not got[1].tasks
    assert "unknown input 'audio'" in got[2].error and "text" in got[2].error
    assert "no input" in got[3].error
    assert got[4].error.startswith(f"video: {corrupt}: expected a .npy file")
    assert got[5].error.startswith("text: expected") and "finite" in got[5].error
    assert_same(got[6], predictor.predict_one({"text": raw[sid]["text"]}, "6"))


def test_loading_dispatches_on_the_folder_and_checks_the_checkpoints(out: Path, tmp_path: Path) -> None:
    assert run_kind_of(out).name == "specialists" and run_kind_of(out / "fusion").name == "fusion"
    assert type(load_predictor(out / "fusion")) is Predictor
    with pytest.raises(AffectFusionError, match="load_predictor"):
        Predictor.load(out)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.png", "*.npz"))
    assert isinstance(load_predictor(copy), SpecialistsPredictor)
    marker = copy / "fusion" / "embeddings.json"
    info = json.loads(marker.read_text())
    info["specialists"]["image"]["sha256"] = "0" * 64
    marker.write_text(json.dumps(info))
    with pytest.raises(AffectFusionError, match="not the image specialist checkpoint the fusion was trained on"):
        load_predictor(copy)
    (copy / "fusion" / "meta.json").unlink()
    with pytest.raises(AffectFusionError, match="fusion is not trained yet"):
        load_predictor(copy)


def test_info_describes_inputs_specialists_and_metrics(out: Path, predictor: SpecialistsPredictor) -> None:
    info = predictor.info()
    assert info["name"] == predictor.name == "emocare_specialists"
    assert info["modalities"] == {m: {"input": "features", "extractor": None, "dim": 16} for m in predictor.modalities}
    assert predictor.accepted_inputs == {"features": predictor.modalities}
    assert info["fusion"] == "cross_attention" and set(info["metrics"]) == {"dev", "test"}
    assert info["metrics"]["test"] == json.loads((out / "fusion" / "eval" / "test" / "metrics.json").read_text())
    assert info["specialists"]["text"] == {"run_dir": "specialists/text", "encoder": "mean", "embedding_dim": 96}
    assert set(info["subsets"]["dev"]) >= {"all", "text-only", "text+image", "text+video"}


# -- CLI, API, dashboard --------------------------------------------------------------------------


def test_cli_predict_features_and_batch(
    out: Path, predictor: SpecialistsPredictor, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = raw_split(out, "dev")
    sid = next(s for s in sorted(raw) if "video" in raw[s])
    text, video = npy(tmp_path / "t.npy", raw[sid]["text"]), npy(tmp_path / "v.npy", raw[sid]["video"])
    code, stdout, _ = run_cli(
        ["predict", str(out), "--features", f"text={text}", "--features", f"video={video}", "--json"],
        capsys,
        monkeypatch,
    )
    assert code == 0
    want = predictor.predict_one({"text": raw[sid]["text"], "video": raw[sid]["video"]})
    assert_same(Prediction(**json.loads(stdout)), want)
    assert json.loads(stdout)["modalities_used"] == ["text", "video"]

    npy(tmp_path / "bad.npy", np.ones(3, dtype=np.float32))
    table = tmp_path / "inputs.csv"
    pd.DataFrame(
        {"id": ["a", "b", "c"], "text": ["t.npy", "t.npy", ""], "video": ["v.npy", "bad.npy", "v.npy"]}
    ).to_csv(table, index=False)
    code, _, stderr = run_cli(["predict", str(out), "--batch", str(table), "--no-progress"], capsys, monkeypatch)
    assert code == 0 and "3 rows, 2 predicted, 1 with errors" in stderr
    df = pd.read_csv(tmp_path / "inputs.predictions.csv", keep_default_na=False)
    assert list(df["error"]) == ["", "video: features of dimension 3, the model expects 16", ""]
    assert list(df["modalities"]) == ["text;video", "", "video"]
    assert df.loc[0, "sentiment"] == want.tasks["sentiment"]["label"]

    code, _, stderr = run_cli(["predict", str(out), "--features", f"image={tmp_path / 'bad.npy'}"], capsys, monkeypatch)
    assert code == 2 and "image: features of dimension 3, the model expects 16" in stderr


def test_api_info_and_predict(out: Path, predictor: SpecialistsPredictor) -> None:
    raw = raw_split(out, "dev")
    sid = next(s for s in sorted(raw) if "image" in raw[s])
    client = TestClient(create_app(out))
    assert client.get("/health").json()["model"] == "emocare_specialists"
    info = client.get("/info").json()
    assert info["name"] == "emocare_specialists" and info["fusion"] == "cross_attention"
    assert info["fields"] == {f"features_{m}": "features" for m in predictor.modalities}
    assert info["inputs"] == {"features": predictor.modalities} and info["modalities"]["video"]["dim"] == 16
    r = client.post(
        "/predict",
        files={
            "features_text": ("t.npy", npy_bytes(raw[sid]["text"]), "application/octet-stream"),
            "features_image": ("i.npy", npy_bytes(raw[sid]["image"]), "application/octet-stream"),
        },
        data={"id": sid},
    )
    assert r.status_code == 200, r.text
    want = predictor.predict_one({"text": raw[sid]["text"], "image": raw[sid]["image"]}, sid)
    assert_same(Prediction(**r.json()), want)
    bad = client.post("/predict", files={"features_image": ("i.npy", npy_bytes(np.ones(3)), "application/x-npy")})
    assert bad.status_code == 422 and bad.json()["detail"] == "image: features of dimension 3, the model expects 16"
    batch = client.post(
        "/predict/batch",
        json={"items": [{"id": "x", "features": {"text": raw[sid]["text"].tolist()}}, {"features": {}}]},
    )
    assert batch.status_code == 200, batch.text
    got = batch.json()["predictions"]
    assert_same(Prediction(**got[0]), predictor.predict_one({"text": raw[sid]["text"]}, "x"))
    assert "no input" in got[1]["error"] and batch.json()["failed"] == 1
    wrong = client.post("/predict/batch", json={"items": [{"features": {"text": [1.0, 2.0]}}]})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "items[0].features.text: dimension 2, the model expects 16"


def test_dashboard_backend(out: Path, predictor: SpecialistsPredictor, tmp_path: Path) -> None:
    raw = raw_split(out, "dev")
    sid = next(s for s in sorted(raw) if "image" in raw[s])
    backend = load_backend(out)
    assert isinstance(backend, PredictorBackend) and isinstance(backend.predictor, SpecialistsPredictor)
    assert backend.name == "emocare_specialists"
    assert [s.key for s in backend.slots()] == predictor.modalities
    text = npy(tmp_path / "t.npy", raw[sid]["text"])
    image = npy(tmp_path / "i.npy", raw[sid]["image"])
    analysis = backend.analyse({"text": str(text), "image": str(image)})
    assert analysis.error is None and analysis.faces == []
    want = predictor.predict_one({"text": raw[sid]["text"], "image": raw[sid]["image"]})
    assert analysis.headline == {"sentiment": want.tasks["sentiment"]["label"]}
    assert_same(Prediction(**analysis.raw), want)
    assert analysis.weights == want.modality_weights  # cross-attention reports none; see the weighted test
    assert backend.analyse({"image": str(npy(tmp_path / "bad.npy", np.ones(3)))}).error == (
        "image: features of dimension 3, the model expects 16"
    )
    assert backend.metrics() == predictor.metrics() and set(backend.metrics()) == {"dev", "test"}
    assert (out / "fusion" / "plots" / "training_curves.png").resolve() in backend.plots()
    summary = backend.summary()
    assert summary["kind"].startswith("specialists") and set(summary["specialists"]) == set(MODALITIES)
    code = "\n".join(c for _, _, c in backend.usage())
    assert f"affectfusion predict {out.resolve()} --features image=image.npy" in code
    assert "load_predictor(" in code and "-F features_text=@text.npy" in code
    table = backend.predict_table(pd.DataFrame({"id": ["a", "b"], "text": ["t.npy", "bad.npy"]}), tmp_path)
    assert list(table["error"]) == ["", "text: features of dimension 3, the model expects 16"]


def test_modality_weights_come_from_the_fusion(out: Path, tmp_path: Path) -> None:
    """A fusion that reports weights (``weighted``) has them in every prediction, for the modalities given."""
    copy = tmp_path / "weighted"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.png", "fusion", "subsets"))
    overrides = SMALL | {"fusion.model.fusion.name": "weighted", "fusion.model.fusion.options": {}}
    train_specialists("emocare_specialists", overrides, copy, False, Console(stderr=True, quiet=True))
    p = load_predictor(copy)
    raw, rows = raw_split(copy, "dev"), exported(copy, "dev")
    sid = next(s for s in sorted(raw) if "video" in raw[s])
    got = p.predict_one({"text": raw[sid]["text"], "video": raw[sid]["video"]}, sid)
    assert list(got.modality_weights) == p.modalities == ["image", "text", "video"]
    assert got.modality_weights["image"] == 0 and got.modality_weights["text"] > 0 and got.modality_weights["video"] > 0
    assert sum(got.modality_weights.values()) == pytest.approx(1, abs=1e-5)
    assert_same(got, Predictor.load(copy / "fusion").predict_one({m: rows[sid][m] for m in ("text", "video")}, sid))


# -- specialists trained on raw media ---------------------------------------------------------------


@pytest.fixture(scope="module")
def media_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Specialists over the raw text + wav + image fixture (lexicon, MFCC, FER-CNN extractors), then a fusion."""
    base = tmp_path_factory.mktemp("p3_media")
    data = media_config(make_media_table(base / "data"), base / "cache")["data"]
    small = {"model": {"hidden_dim": 8, "head_hidden": 0}, "train": {"epochs": 3, "batch_size": 12, "progress": False}}
    config = {
        "kind": "specialists",
        "name": "media_specialists",
        "data": data,
        "tasks": [{"name": "emotion", "type": "classification", "classes": ["happy", "sad", "angry"]}],
        "specialists": {"text": small, "audio": small, "image": small},
        "fusion": {
            "model": {"hidden_dim": 16, "fusion": {"name": "weighted"}},
            "train": {"epochs": 3, "batch_size": 12, "progress": False},
        },
    }
    path = base / "media_specialists.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return train_specialists(str(path), {}, base / "run", True, Console(stderr=True, quiet=True))


def test_raw_media_go_through_each_specialists_extractor(
    media_out: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = load_predictor(media_out)
    assert isinstance(p, SpecialistsPredictor)
    assert p.accepted_inputs == {"audio": ["audio"], "image": ["image"], "text": ["text"]}
    assert {m: spec["extractor"]["extractor"] for m, spec in p.info()["modalities"].items()} == {
        "audio": "mfcc",
        "image": "fer_cnn",
        "text": "lexicon",
    }
    data = media_out.parent / "data"
    dev = pd.read_csv(data / "dev.csv", keep_default_na=False)
    rows = exported(media_out, "dev")
    fusion = Predictor.load(media_out / "fusion")
    inputs, ids = [], []
    for r in dev.itertuples():
        item = {"text": r.text} | {k: str(data / v) for k, v in (("audio", r.audio), ("image", r.image)) if v}
        inputs.append(item)
        ids.append(r.id)
    got = p.predict(inputs, ids)
    want = fusion.predict([rows[i] for i in ids], ids)
    for g, w in zip(got, want, strict=True):
        assert_same(g, w)
    assert {tuple(g.modalities_used) for g in got} >= {("audio", "image", "text"), ("text",)}
    assert all(g.modality_weights["image"] == 0 for g, i in zip(got, inputs, strict=True) if "image" not in i)

    full = inputs[0]
    code, stdout, _ = run_cli(
        [
            "predict",
            str(media_out),
            "--text",
            full["text"],
            "--audio",
            full["audio"],
            "--image",
            full["image"],
            "--json",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0
    assert_same(Prediction(**json.loads(stdout)), got[0])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    broken = p.predict([{"text": full["text"], "image": str(bad)}, full])
    assert broken[0].error.startswith("image: ") and broken[1].error is None

    backend = load_backend(media_out)
    analysis = backend.analyse({"text": full["text"], "image": full["image"]})
    assert analysis.error is None and [f.modality for f in analysis.faces] == ["image"]
    assert [s.key for s in backend.slots()] == ["text", "image", "audio"]
