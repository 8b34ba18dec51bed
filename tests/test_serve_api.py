"""The REST API as a client meets it: schema, predictions equal to the Predictor's, every kind of bad
upload answered with a clear 4xx, the body limit enforced while streaming, concurrent load on a real
uvicorn server, and the ``serve`` CLI's defaults."""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from affectfusion.cli.serve import serve_app
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import INPUTS as UPLOAD_TYPES
from affectfusion.serve import Predictor
from affectfusion.serve.api import check_upload, create_app
from tests.helpers import asgi_scope

MEDIA_TYPES = {".wav": "audio/wav", ".png": "image/png"}


@pytest.fixture(scope="module")
def predictor(trained_media_run: Path) -> Predictor:
    return Predictor.load(trained_media_run)


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    """An app with a 1 MB file limit (so limits are testable with small bodies): request limit 5 MB."""
    with TestClient(create_app(predictor, max_upload_mb=1, max_batch=8)) as c:
        yield c


def files_for(media: Path, sid: str, kinds: tuple[str, ...] = ("audio", "image")) -> dict[str, Any]:
    out = {}
    for kind, suffix in (("audio", ".wav"), ("image", ".png")):
        if kind in kinds:
            path = media / f"{sid}{suffix}"
            out[kind] = (path.name, path.read_bytes(), MEDIA_TYPES[suffix])
    return out


def test_health_and_info_describe_the_model(client: TestClient, predictor: Predictor) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model"] == "media"
    info = client.get("/info").json()
    assert info["kind"] == "fusion"  # the run kind, as config.yaml names it
    assert info["tasks"] == [{"name": "emotion", "type": "classification", "classes": ["happy", "sad", "angry"]}]
    assert {m: v["input"] for m, v in info["modalities"].items()} == {
        "text": "text",
        "audio": "audio",
        "image": "image",
    }
    assert info["modalities"]["audio"]["extractor"]["extractor"] == "mfcc"
    assert info["modalities"]["image"]["extractor"]["options"]["detector"] == "none"
    assert info["modalities"]["text"]["dim"] == predictor.run.modalities["text"].dim
    assert info["fields"] == {"audio": "audio", "image": "image", "text": "text"}
    assert 0 <= info["metrics"]["test"]["tasks"]["emotion"]["accuracy"] <= 1
    assert info["metrics"] == predictor.metrics() and "test" in info["metrics"]
    assert info["limits"]["max_upload_mb"] == 1 and info["limits"]["max_request_mb"] == 5
    assert info["limits"]["file_types"]["image"] == [".jpg", ".jpeg", ".png", ".bmp"]


def test_openapi_schema_documents_every_endpoint_and_its_models(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "This model takes: audio (a WAV/FLAC/OGG/MP3 file)" in schema["info"]["description"]
    assert {"/health", "/info", "/predict", "/predict/batch", "/predict/batch/files"} <= set(schema["paths"])
    predict = schema["paths"]["/predict"]["post"]
    form_ref = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    # exactly the inputs this run takes (issue 12: no video/signal fields for a model without them)
    # + all_faces: the run reads faces (fer_cnn), so every face of an image can be predicted
    assert set(schema["components"]["schemas"][form_ref]["properties"]) == {"text", "audio", "image", "id", "all_faces"}
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert [r["$ref"].rsplit("/", 1)[-1] for r in ok] == ["PredictionOut", "BatchOut"]  # BatchOut: all_faces
    assert {"413", "415", "422"} <= set(predict["responses"])
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["$ref"].endswith("/BatchIn")
    assert "InfoOut" in schema["components"]["schemas"] and "BatchOut" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_predict_all_modalities_equals_the_predictor(client: TestClient, predictor: Predictor, media: Path) -> None:
    text = "I feel wonderful and delighted"
    r = client.post("/predict", data={"text": text, "id": "x1"}, files=files_for(media, "test000"))
    assert r.status_code == 200, r.text
    body = r.json()
    expected = predictor.predict_one(
        {"text": text, "audio": str(media / "test000.wav"), "image": str(media / "test000.png")}, "x1"
    ).to_dict()
    assert body["id"] == "x1"
    assert body["tasks"] == expected["tasks"]  # exact: JSON floats round-trip
    assert body["modality_weights"] == expected["modality_weights"]
    assert body["modalities_used"] == ["audio", "image", "text"]
    assert "error" not in body


@pytest.mark.parametrize(
    "subset", [s for n in (1, 2, 3) for s in combinations(("text", "audio", "image"), n)], ids="+".join
)
def test_predict_any_subset_of_modalities(client: TestClient, media: Path, subset: tuple[str, ...]) -> None:
    data = {"text": "so lonely and miserable"} if "text" in subset else {}
    files = files_for(media, "test001", subset)
    r = client.post("/predict", data=data, files=files or None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["modalities_used"] == sorted(subset)
    probs = body["tasks"]["emotion"]["probabilities"]
    assert set(probs) == {"happy", "sad", "angry"} and abs(sum(probs.values()) - 1) < 1e-5
    assert body["tasks"]["emotion"]["label"] == max(probs, key=probs.get)


def _bad_requests(media: Path) -> dict[str, tuple[dict[str, Any], int, str]]:
    """name -> (request kwargs, expected status, a phrase the message must contain)."""
    png = (media / "test000.png").read_bytes()
    wav = (media / "test000.wav").read_bytes()
    return {
        "empty text": ({"data": {"text": "   "}}, 422, "text: empty text"),
        "no input": ({}, 422, "no input given"),
        "json body": ({"json": {"text": "hi"}}, 415, "multipart/form-data"),
        "corrupt image": ({"files": {"image": ("face.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")}}, 422, "image"),
        "text file as image": ({"files": {"image": ("notes.txt", b"hello", "text/plain")}}, 415, "image 'notes.txt'"),
        "gif image": ({"files": {"image": ("a.gif", b"GIF89a\x01\x00", "image/gif")}}, 415, ".gif"),
        "content type contradicts": (
            {"files": {"image": ("face.png", png, "audio/wav")}},
            415,
            "content type audio/wav",
        ),
        "unknown suffix and type": ({"files": {"audio": ("blob", wav, "application/octet-stream")}}, 415, "audio"),
        "oversized image": (
            {"files": {"image": ("big.png", png + b"\0" * (1_100_000), "image/png")}},
            413,
            "over the 1 MB limit for image",
        ),
        "request over limit": ({"files": {"audio": ("long.wav", b"\0" * 5_500_000, "audio/wav")}}, 413, "5 MB"),
        "empty file": ({"files": {"audio": ("a.wav", b"", "audio/wav")}}, 422, "empty"),
        "corrupt audio": ({"files": {"audio": ("a.wav", b"RIFF\0\0\0\0WAVEjunk", "audio/wav")}}, 422, "'a.wav'"),
        "unknown field": ({"data": {"mood": "x"}}, 422, "unknown field 'mood'"),
        "kind the model lacks": ({"files": {"video": ("v.mp4", b"\0" * 10, "video/mp4")}}, 422, "'video'"),
        "path instead of file": ({"data": {"audio": "/etc/passwd"}}, 422, "audio: expected a file upload"),
        "duplicate field": (
            {"files": [("image", ("a.png", png, "image/png")), ("image", ("b.png", png, "image/png"))]},
            422,
            "more than once",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty text",
        "no input",
        "json body",
        "corrupt image",
        "text file as image",
        "gif image",
        "content type contradicts",
        "unknown suffix and type",
        "oversized image",
        "request over limit",
        "empty file",
        "corrupt audio",
        "unknown field",
        "kind the model lacks",
        "path instead of file",
        "duplicate field",
    ],
)
def test_bad_input_is_a_clear_4xx(client: TestClient, media: Path, case: str) -> None:
    kwargs, status, phrase = _bad_requests(media)[case]
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and phrase in detail
    assert "/tmp" not in detail and "affectfusion-upload" not in detail  # no server paths leak


def test_check_upload_rules() -> None:
    assert check_upload("image", "image", "Face.JPG", "image/jpeg", 10, 100) == ".jpg"
    assert check_upload("image", "image", None, "image/png", 10, 100) == ".png"  # suffix from the type
    assert check_upload("audio", "audio", "x.wav", "application/octet-stream", 10, 100) == ".wav"
    assert check_upload("image", "image", "../../etc/passwd.png", "", 10, 100) == ".png"  # only the suffix is used
    for kind, t in UPLOAD_TYPES.items():
        for suffix in t.suffixes:
            assert check_upload(kind, kind, f"f{suffix}", None, 1, 1) == suffix
    with pytest.raises(AffectFusionError) as e:
        check_upload("image", "image", "x.png", "image/png", 101, 100)
    assert e.value.status == 413


def test_uploads_are_deleted_after_each_request(client: TestClient, media: Path, monkeypatch, tmp_path: Path) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ok = client.post("/predict", files=files_for(media, "test001"))
    bad = client.post("/predict", files={"image": ("x.png", b"not an image", "image/png")})
    assert ok.status_code == 200 and bad.status_code == 422
    assert list(tmp_path.iterdir()) == []


def test_body_limit_stops_reading_a_streamed_upload(predictor: Predictor) -> None:
    """A chunked upload with no Content-Length is read only up to the limit (not all 2 GB of it)."""
    app = create_app(predictor, max_upload_mb=0.25)  # request limit 2 MB
    chunk = b"0" * 65536
    reads = 0
    head = b'--bnd\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\nContent-Type: image/png\r\n\r\n'

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > 32768:  # 2 GB: the test would fail long before by timing out
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": head if reads == 1 else chunk, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = asgi_scope("/predict", b"multipart/form-data; boundary=bnd")
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413
    assert "2 MB limit" in json.loads(body)["detail"]
    assert reads <= 2 * 2**20 // len(chunk) + 2


def test_batch_json_predicts_each_item_and_reports_bad_ones(client: TestClient, predictor: Predictor) -> None:
    items = [{"id": "a", "text": "I love this joy"}, {"text": "furious rage"}, {"id": "e", "text": " "}, {}]
    r = client.post("/predict/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 4 and body["failed"] == 2
    preds = body["predictions"]
    assert [p["id"] for p in preds] == ["a", "1", "e", "3"]
    expected = predictor.predict([{"text": "I love this joy"}, {"text": "furious rage"}], ["a", "1"])
    for got, want in zip(preds[:2], expected, strict=True):
        assert got["tasks"] == want.to_dict()["tasks"]
    assert "empty text" in preds[2]["error"] and "no input" in preds[3]["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "phrase"),
    [
        ({"json": {"items": [{"image": "/etc/passwd"}]}}, 422, "items.0.image"),  # a JSON batch never names files
        ({"json": {"items": []}}, 422, "items"),
        ({"json": {"items": [{"text": "x"}] * 9}}, 413, "batch limit of 8"),
        ({"json": {"items": [{"features": {"text": [1.0]}}]}}, 422, "not a features modality"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        ({"data": {"text": "hi"}}, 415, "application/json"),
    ],
)
def test_batch_json_rejects_malformed_requests(client: TestClient, kwargs: dict, status: int, phrase: str) -> None:
    r = client.post("/predict/batch", **kwargs)
    assert r.status_code == status, r.text
    assert phrase in r.json()["detail"]


def test_batch_files_predicts_each_file(client: TestClient, predictor: Predictor, media: Path) -> None:
    names = ["test003.png", "test004.png"]
    files = [("files", (n, (media / n).read_bytes(), "image/png")) for n in names]
    files.append(("files", ("broken.png", b"not a png", "image/png")))
    r = client.post("/predict/batch/files", data={"kind": "image"}, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["id"] for p in body["predictions"]] == [*names, "broken.png"] and body["failed"] == 1
    expected = predictor.predict([{"image": str(media / n)} for n in names], names)
    for got, want in zip(body["predictions"][:2], expected, strict=True):  # files go one per model call
        want_task = want.to_dict()["tasks"]["emotion"]
        assert got["tasks"]["emotion"]["label"] == want_task["label"]
        assert got["tasks"]["emotion"]["probabilities"] == pytest.approx(want_task["probabilities"], abs=1e-5)
    assert "broken.png" in body["predictions"][2]["error"] and "/tmp" not in body["predictions"][2]["error"]
    wrong = client.post(
        "/predict/batch/files", data={"kind": "image"}, files=[("files", ("a.wav", b"RIFF", "audio/wav"))]
    )
    assert wrong.status_code == 415 and "files[0] 'a.wav'" in wrong.json()["detail"]
    text = client.post("/predict/batch/files", data={"kind": "text"}, files=files[:1])
    assert text.status_code == 422 and "kind" in text.json()["detail"]
    too_many = client.post("/predict/batch/files", data={"kind": "image"}, files=files[:1] * 9)
    assert too_many.status_code == 413
    as_json = client.post("/predict/batch/files", json={"kind": "image"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    no_files = client.post("/predict/batch/files", data={"kind": "image"})
    assert no_files.status_code == 422 and "files: Field required" in no_files.json()["detail"]


def test_features_model_takes_npy_uploads_and_json_arrays(trained_features_run: Path) -> None:
    predictor = Predictor.load(trained_features_run)
    client = TestClient(create_app(predictor))
    rng = np.random.default_rng(0)
    text, audio = rng.normal(size=8).astype(np.float32), rng.normal(size=(5, 6)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, audio)
    r = client.post(
        "/predict",
        files={"features_audio": ("a.npy", buf.getvalue(), "application/octet-stream")},
        data={"id": "f"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["tasks"] == predictor.predict_one({"audio": audio}, "f").to_dict()["tasks"]
    batch = client.post(
        "/predict/batch",
        json={"items": [{"features": {"text": text.tolist(), "audio": audio.tolist()}}, {"features": {}}]},
    )
    assert batch.status_code == 200, batch.text
    got = batch.json()["predictions"]
    want = predictor.predict_one({"text": text, "audio": audio}).to_dict()["tasks"]
    assert got[0]["tasks"] == want
    assert "no input" in got[1]["error"]
    wrong_dim = client.post("/predict/batch", json={"items": [{"features": {"text": [1.0, 2.0]}}]})
    assert wrong_dim.status_code == 422
    assert wrong_dim.json()["detail"] == "items[0].features.text: dimension 2, the model expects 8"
    ragged = client.post("/predict/batch", json={"items": [{"features": {"audio": [[1.0, 2.0], [1.0]]}}]})
    assert ragged.status_code == 422 and "audio" in ragged.json()["detail"]
    info = client.get("/info").json()
    assert info["fields"] == {"features_audio": "features", "features_text": "features", "features_video": "features"}


# -- a real server under concurrent load ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(predictor: Predictor) -> Iterator[str]:
    """uvicorn in a thread on a free loopback port."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_concurrent_requests_get_their_own_predictions(live_server: str, predictor: Predictor, media: Path) -> None:
    """200 requests from 8 threads, mixed modalities: no 5xx and each answer matches its own input."""
    sids = ["test000", "test001", "test004", "test006", "test008", "test009"]  # rows with audio and image
    texts = ["great joy", "lonely loss", "hate and rage", "love", "cry", "annoyed"]
    shapes = [("text",), ("audio",), ("image",), ("text", "audio", "image")]
    cases = []
    for sid, text in zip(sids, texts, strict=True):
        for shape in shapes:
            inputs = {"text": text} if "text" in shape else {}
            inputs.update(
                {k: str(media / f"{sid}{s}") for k, s in (("audio", ".wav"), ("image", ".png")) if k in shape}
            )
            cases.append((sid, text, shape, predictor.predict_one(inputs).to_dict()["tasks"]))
    order = [random.Random(0).randrange(len(cases)) for _ in range(200)]

    def call(i: int) -> tuple[int, int, dict]:
        sid, text, shape, _ = cases[i]
        data = {"text": text} if "text" in shape else {}
        files = files_for(media, sid, shape)
        with httpx.Client(base_url=live_server, timeout=60) as c:
            r = c.post("/predict", data=data, files=files or None)
        return i, r.status_code, r.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, order))
    assert [s for _, s, _ in results if s >= 500] == []
    assert all(s == 200 for _, s, _ in results)
    for i, _, body in results:
        assert body["tasks"] == cases[i][3]
    with httpx.Client(base_url=live_server) as c:  # the server is still healthy
        assert c.get("/health").status_code == 200
        bad = c.post("/predict", files={"image": ("x.png", b"corrupt", "image/png")})
        assert bad.status_code == 422


# -- the serve CLI ----------------------------------------------------------------------------------


def test_serve_api_binds_loopback_by_default(trained_media_run: Path, monkeypatch) -> None:
    import uvicorn

    calls: list[tuple[Any, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    result = CliRunner().invoke(serve_app, ["api", str(trained_media_run), "--max-upload-mb", "10"])
    assert result.exit_code == 0, result.output
    app, kw = calls[0]
    assert isinstance(app, FastAPI)
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8000
    assert app.state.service.max_upload == 10 * 2**20

    result = CliRunner().invoke(serve_app, ["api", str(trained_media_run), "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0 and calls[1][1]["host"] == "0.0.0.0"
    assert "reachable from other machines" in result.output


def test_serve_api_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve_app, ["api", str(tmp_path)])
    assert isinstance(result.exception, AffectFusionError)
    assert "not a run directory" in str(result.exception)


def test_serve_dashboard_calls_launch(trained_media_run: Path, monkeypatch) -> None:
    import affectfusion.serve.dashboard as dashboard

    calls: list[tuple] = []
    monkeypatch.setattr(dashboard, "launch", lambda run, host, port, device: calls.append((run, host, port, device)))
    result = CliRunner().invoke(serve_app, ["dashboard", str(trained_media_run)])
    assert result.exit_code == 0, result.output
    assert calls == [(trained_media_run, "127.0.0.1", 8501, "cpu")]
