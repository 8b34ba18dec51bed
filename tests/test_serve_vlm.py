"""A vision-language run (``kind: vlm``) served three ways like any run: ``load_predictor`` in Python,
``affectfusion predict`` and the REST API, all giving the same labels and generated text as
:class:`VLMPredictor` (a tiny random BLIP-2 + LoRA trained through the CLI on two images in ~2 s)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from affectfusion.cli.serve import serve_app
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.vlm.targets import EMOTIONS
from affectfusion.serve.api import create_app
from affectfusion.serve.predictor import Prediction, Predictor, load_predictor
from tests.helpers import call_cli, run_cli

DARK, BRIGHT = 40, 210  # two images a tiny model can tell apart (as in tests/test_vlm.py)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The tiny model's ops are so small that extra threads only add overhead."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image_folder dataset: one dark 'happy' and one bright 'sad' image in train and dev."""
    from PIL import Image

    root = tmp_path_factory.mktemp("faces")
    for split in ("train", "dev"):
        for label, value in (("happy", DARK), ("sad", BRIGHT)):
            (root / split / label).mkdir(parents=True)
            Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8)).save(root / split / label / f"{label}.png")
    return root


@pytest.fixture(scope="module")
def vlm_run(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the shipped P4 config on a tiny random BLIP-2 through the CLI, as a user would."""
    from affectfusion.recipes.vlm.tiny import build_tiny_blip2

    base = tmp_path_factory.mktemp("vlm")
    model = build_tiny_blip2(base / "blip2")
    sets = {
        "model.path": model,
        "data.root": faces,
        "data.test_split": "null",
        "train.epochs": "null",
        "train.steps": 200,
        "train.lr": 0.01,
        "train.batch_size": 2,
        "train.progress": "false",
        "lora.dropout": 0.0,
        "generation.max_new_tokens": 100,
    }
    args = ["train", "face_vlm_lora", "--out", str(base / "run")]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    assert call_cli(args) == 0
    return base / "run"


@pytest.fixture(scope="module")
def reference(vlm_run: Path) -> Any:
    """The VLM's own predictor: what every serving path must agree with."""
    from affectfusion.recipes.vlm.predictor import VLMPredictor

    return VLMPredictor.load(vlm_run)


@pytest.fixture(scope="module")
def served(vlm_run: Path) -> Any:
    return load_predictor(vlm_run)


@pytest.fixture(scope="module")
def client(served: Any) -> Iterator[TestClient]:
    with TestClient(create_app(served, max_upload_mb=1, max_batch=8)) as c:
        yield c


def happy_sad(faces: Path) -> list[Path]:
    return [faces / "dev" / "happy" / "happy.png", faces / "dev" / "sad" / "sad.png"]


def assert_matches(got: Prediction, want: Any) -> None:
    """A served prediction carries exactly the VLMPrediction's label, vector, text and parsed fields."""
    assert got.error is None and got.modalities_used == ["image"]
    assert got.tasks == {"emotion": {"label": want.label, "probabilities": want.emotion_vector}}
    assert got.generated == {
        "text": want.text,
        "emotions": want.emotions,
        "action_units": want.action_units,
        "face_found": want.face_found,
        "parse_ok": want.parse_ok,
        "issues": want.issues,
    }


# -- Python: load_predictor ---------------------------------------------------------------------


def test_load_predictor_serves_a_vlm_run_like_vlm_predictor(
    vlm_run: Path, faces: Path, served: Any, reference: Any
) -> None:
    from affectfusion.recipes.vlm.run_predictor import VLMRunPredictor

    assert isinstance(served, VLMRunPredictor)
    assert served.modalities == ["image"] and served.accepted_inputs == {"image": ["image"]}
    assert served.input_kind("image") == "image" and served.extractors == {}
    assert served.name == "face_vlm_lora" and served.results_dir == vlm_run and served.load_seconds > 0
    images = happy_sad(faces)
    want = reference.predict([str(p) for p in images])
    assert [p.label for p in want] == ["happy", "sad"]  # the tiny model memorised both answers
    got = served.predict([{"image": str(p)} for p in images], ["a", "b"])
    assert [p.id for p in got] == ["a", "b"]
    for g, w in zip(got, want, strict=True):
        assert_matches(g, w)
    assert set(got[0].tasks["emotion"]["probabilities"]) == set(EMOTIONS)
    # Arrays work as in VLMPredictor; the single-item call is the batch call.
    assert_matches(served.predict_one({"image": np.full((64, 64, 3), BRIGHT, dtype=np.uint8)}), want[1])
    with pytest.raises(AffectFusionError, match="load_predictor"):
        Predictor.load(vlm_run)
    with pytest.raises(AffectFusionError, match="reads face images"):
        served.feature_dim("image")


def test_info_describes_the_vlm_run(served: Any) -> None:
    info = served.info()
    assert info["name"] == "face_vlm_lora" and info["kind"] == "vlm" and info["fusion"] is None
    assert info["tasks"] == [{"name": "emotion", "type": "classification", "classes": ["happy", "sad"]}]
    assert info["modalities"]["image"]["input"] == "image"
    assert info["modalities"]["image"]["extractor"]["options"]["detector"] == "haar"
    vlm = info["vlm"]
    assert Path(vlm["base_model_path"]).name == "blip2" and vlm["prompt"].startswith("Question:")
    assert (vlm["lora"]["r"], vlm["lora"]["alpha"], vlm["lora"]["target_modules"]) == (16, 32, ["q_proj", "v_proj"])
    assert vlm["classes"] == ["happy", "sad"] and vlm["label_map"] == {"happy": "happiness", "sad": "sadness"}
    assert info["metrics"]["dev"]["accuracy"] == 1.0 and info["metrics"] == served.metrics()
    json.dumps(info)


def test_bad_items_get_their_own_error_and_the_rest_is_predicted(
    served: Any, reference: Any, faces: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    happy = happy_sad(faces)[0]
    items: list[dict[str, Any]] = [
        {"image": str(tmp_path / "missing.png")},
        {"image": str(happy)},
        {"image": str(fake)},
        {"text": "I am happy"},
        {},
    ]
    got = served.predict(items)
    assert "missing.png" in got[0].error and "not an image" in got[2].error
    assert "unknown input 'text'; this model takes: image" in got[3].error and "no input" in got[4].error
    for p in (got[0], got[2], got[3], got[4]):
        assert p.tasks == {} and p.generated is None
    assert_matches(got[1], reference.predict([str(happy)])[0])


def test_no_face_with_skip_is_that_rows_error(vlm_run: Path, reference: Any, faces: Path) -> None:
    from affectfusion.recipes.vlm.predictor import VLMPredictor
    from affectfusion.recipes.vlm.run_predictor import VLMRunPredictor

    cfg = reference.cfg
    skipping = VLMPredictor(
        cfg.model_copy(update={"face": cfg.face.model_copy(update={"no_face": "skip"})}),
        reference.model,
        reference.processor,
        reference.label_map,
    )
    (p,) = VLMRunPredictor(vlm_run, skipping).predict([{"image": str(happy_sad(faces)[0])}])  # flat: no face
    assert p.error == "image: no face found in the image (the run sets face.no_face: skip)" and p.tasks == {}


def test_rows_flatten_generated_fields_and_other_runs_are_unchanged(served: Any, faces: Path) -> None:
    row = served.predict_one({"image": str(happy_sad(faces)[0])}, "a").to_row()
    assert list(row) == [
        "id",
        "modalities",
        "emotion",
        *(f"emotion_prob_{e}" for e in EMOTIONS),
        "text",
        "emotions",
        "action_units",
        "face_found",
        "parse_ok",
        "issues",
        "error",
    ]
    assert row["emotion"] == "happy" and row["action_units"] == "AU6;AU12" and row["emotions"] == "happiness"
    plain = Prediction("x", {"t": {"label": "a", "probabilities": {"a": 0.7, "b": 0.3}}}, {"text": 1.0}, ["text"])
    assert list(plain.to_row()) == ["id", "modalities", "t", "t_prob_a", "t_prob_b", "weight_text", "error"]
    assert "generated" not in plain.to_dict() and Prediction(**plain.to_dict()) == plain
    clash = Prediction("y", {"text": {"value": 1.0}}, generated={"text": "hi", "issues": ["a", "b"]})
    assert clash.to_row()["generated_text"] == "hi" and clash.to_row()["issues"] == "a;b"


# -- the CLI ---------------------------------------------------------------------------------------


def test_predict_cli_single_image(vlm_run: Path, faces: Path, reference: Any, capsys, monkeypatch) -> None:
    happy = happy_sad(faces)[0]
    want = reference.predict([str(happy)])[0]
    code, out, err = run_cli(["predict", str(vlm_run), "--image", str(happy), "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert_matches(Prediction(**json.loads(out)), want)
    code, out, err = run_cli(["predict", str(vlm_run), "--image", str(happy)], capsys, monkeypatch)
    assert code == 0, err
    assert "emotion: happy" in out and f"generated: {want.text}" in out
    assert "action_units: AU6, AU12" in out and "parse_ok: True" in out and "intensity" in out
    code, _, err = run_cli(["predict", str(vlm_run), "--text", "hello"], capsys, monkeypatch)
    assert code == 2 and "this model takes: image" in err and "Traceback" not in err


def test_predict_cli_batch_with_a_bad_row(
    vlm_run: Path, faces: Path, reference: Any, tmp_path: Path, capsys, monkeypatch
) -> None:
    happy, sad = happy_sad(faces)
    table = tmp_path / "faces.csv"
    table.write_text(f"id,image\na,{happy}\nb,missing.png\nc,{sad}\n")
    code, _, err = run_cli(["predict", str(vlm_run), "--batch", str(table)], capsys, monkeypatch)
    assert code == 0 and "3 rows, 2 predicted, 1 with errors" in err
    rows = pd.read_csv(tmp_path / "faces.predictions.csv", keep_default_na=False)
    want = reference.predict([str(happy), str(sad)])
    assert rows["id"].tolist() == ["a", "b", "c"] and rows["emotion"].tolist() == ["happy", "", "sad"]
    assert rows["text"].tolist() == [want[0].text, "", want[1].text]
    assert rows["action_units"][0] == "AU6;AU12" and rows.columns[-1] == "error"
    assert rows["error"][0] == "" and "missing.png" in rows["error"][1]


# -- the REST API ----------------------------------------------------------------------------------


def test_api_info_and_single_image(client: TestClient, faces: Path, reference: Any) -> None:
    info = client.get("/info").json()
    assert info["kind"] == "vlm" and info["fields"] == {"image": "image"} and info["fusion"] is None
    assert info["vlm"]["lora"]["r"] == 16 and info["metrics"]["dev"]["parse_rate"] == 1.0
    assert info["modalities"]["image"]["dim"] is None
    schema = client.get("/openapi.json").json()
    assert "This model takes: image (a JPG/PNG/BMP file)" in schema["info"]["description"]
    assert "GeneratedOut" in schema["components"]["schemas"]
    for path in happy_sad(faces):
        r = client.post("/predict", files={"image": (path.name, path.read_bytes(), "image/png")}, data={"id": "x"})
        assert r.status_code == 200, r.text
        want = reference.predict([str(path)])[0]
        body = r.json()
        assert body["id"] == "x" and body["tasks"]["emotion"]["label"] == want.label
        assert body["generated"]["text"] == want.text
        assert_matches(Prediction(**body), want)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"data": {"text": "I am so happy"}}, "this model takes: image (a JPG/PNG/BMP file)"),
        ({"files": {"image": ("face.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")}}, "'face.png'"),
        ({"files": {"image": ("face.png", b"not an image at all", "image/png")}}, "not an image"),
    ],
    ids=["text only", "corrupt png", "not an image"],
)
def test_api_refuses_what_a_vlm_run_cannot_use(client: TestClient, kwargs: dict[str, Any], phrase: str) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert phrase in detail and "/tmp" not in detail


def test_api_batches(client: TestClient, faces: Path, reference: Any) -> None:
    images = happy_sad(faces)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in images]
    files.append(("files", ("broken.png", b"not a png", "image/png")))
    r = client.post("/predict/batch/files", data={"kind": "image"}, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and body["failed"] == 1
    preds = body["predictions"]
    assert [p["id"] for p in preds] == ["happy.png", "sad.png", "broken.png"]
    for got, want in zip(preds[:2], reference.predict([str(p) for p in images]), strict=True):
        assert_matches(Prediction(**got), want)
    assert "broken.png" in preds[2]["error"] and "generated" not in preds[2]
    r = client.post("/predict/batch", json={"items": [{"text": "happy"}]})
    assert r.status_code == 422
    assert "takes no text; it takes image" in r.json()["detail"] and "/predict/batch/files" in r.json()["detail"]
    r = client.post("/predict/batch/files", data={"kind": "text"}, files=files[:1])
    assert r.status_code == 422 and "use one of image" in r.json()["detail"]


def test_serve_api_cli_starts_on_a_vlm_run(vlm_run: Path, monkeypatch) -> None:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    result = CliRunner().invoke(serve_app, ["api", str(vlm_run)])
    assert result.exit_code == 0, result.output
    assert isinstance(calls[0], FastAPI) and "serving face_vlm_lora" in result.output
