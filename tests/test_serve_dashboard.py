"""The web dashboard: page logic through Streamlit's AppTest (fast), and the real thing in headless Chromium.

What is checked: the dashboard's predictions are the Predictor's (single input) and its batch CSV is
byte for byte the CSV of ``affectfusion predict --batch`` (up to where the inputs live on disk);
invalid uploads give a readable ``st.error`` and never an exception; the Model tab shows metrics,
confusion matrices and commands for the run; the face crop shown is the one the model reads; a
vision-language run renders through the same pages. The browser test saves a screenshot of every tab
to ``test-artifacts/dashboard/<tab>.png``.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from affectfusion.errors import AffectFusionError
from affectfusion.recipes.vlm.dashboard import VLMBackend
from affectfusion.runkinds import run_kind_of
from affectfusion.serve import Predictor
from affectfusion.serve.dashboard import APP_FILE, launch, streamlit_command
from affectfusion.serve.dashboard.app import run_dir_from_argv
from affectfusion.serve.dashboard.backends import confusions
from affectfusion.serve.dashboard.faces import face_preview
from tests.dashboard_helpers import ARTIFACTS, TEXT, Browser, free_port, new_app, submit_analysis, wait_healthy
from tests.helpers import SHARED_DATA, assert_same_predictions, call_cli


def png_bytes(size: int = 64) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def predictor(trained_media_run: Path) -> Predictor:
    return Predictor.load(trained_media_run)


@pytest.fixture
def app(trained_media_run: Path) -> AppTest:
    return new_app(trained_media_run)


def batch_table(tmp_path: Path, data: Path) -> Path:
    """Six rows of the fixture's test split (some without audio/image), a text-only file renamed .png,
    and a row naming a file that does not exist: ``<tmp>/table.csv`` + ``<tmp>/media/``."""
    df = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False).head(6).drop(columns="emotion")
    (tmp_path / "media").mkdir()
    for cell in [*df["audio"], *df["image"]]:
        if cell:
            shutil.copy(data / cell, tmp_path / cell)
    (tmp_path / "media" / "bad.png").write_text("this is not an image")
    extra = [
        {"id": "bad_image", "text": "fine words", "audio": "", "image": "media/bad.png"},
        {"id": "missing_file", "text": "", "audio": "", "image": "media/gone.png"},
    ]
    df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    df.to_csv(tmp_path / "table.csv", index=False)
    return tmp_path / "table.csv"


def cli_batch_csv(run_dir: Path, table: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``affectfusion predict RUN --batch TABLE`` output, with the table's folder removed from messages."""
    from affectfusion.cli import main

    out = table.with_name("cli_predictions.csv")
    monkeypatch.setattr(
        sys, "argv", ["affectfusion", "predict", str(run_dir), "--batch", str(table), "--out", str(out)]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    return out.read_text(encoding="utf-8").replace(f"{table.parent}/", "")


# -- single analysis ------------------------------------------------------------------------------


def test_text_prediction_equals_the_predictor(app: AppTest, predictor: Predictor) -> None:
    submit_analysis(app, TEXT)
    expected = predictor.predict_one({"text": TEXT}, explain=True)  # the Analyse page explains
    assert expected.error is None
    analysis = app.session_state["analysis"]
    assert analysis.raw == expected.to_dict()
    assert [(m.label, m.value) for m in app.metric] == [("emotion", expected.tasks["emotion"]["label"])]
    assert not app.error
    assert app.json and json.loads(app.json[0].value) == expected.to_dict()


def test_text_image_and_audio_prediction_shows_the_crop_the_model_reads(
    app: AppTest, predictor: Predictor, media: Path
) -> None:
    image, audio = media / "test001.png", media / "test001.wav"
    submit_analysis(app, TEXT, {"image": ("face.png", image.read_bytes()), "audio": ("clip.wav", audio.read_bytes())})
    expected = predictor.predict_one({"text": TEXT, "image": str(image), "audio": str(audio)}, explain=True)
    analysis = app.session_state["analysis"]
    assert analysis.raw == expected.to_dict() and expected.modalities_used == ["audio", "image", "text"]
    assert analysis.weights == expected.modality_weights and all(w > 0 for w in analysis.weights.values())
    assert analysis.charts == {"emotion": expected.tasks["emotion"]["probabilities"]}
    [face] = analysis.faces
    assert face.model_input is not None and face.model_input.shape == (64, 64)  # the FER CNN's grey input
    extractor = predictor.extractors["image"]
    assert np.allclose(extractor._model.features(face.model_input), extractor.extract(image), atol=1e-6)
    assert len(app.get("vega_lite_chart")) == 3  # class probabilities, modality attribution, modality weights


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"just some text, renamed to .png", "not an image"),
        ("face.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),  # PNG signature, then garbage
        ("cut.png", png_bytes()[:2000], "corrupt image"),  # a real PNG, truncated
        ("empty.jpg", b"", "empty file"),
        ("face.gif", b"GIF89a" + b"\x00" * 20, "must be a JPG/JPEG/PNG/BMP file"),
    ],
)
def test_invalid_upload_shows_a_readable_error(app: AppTest, name: str, content: bytes, message: str) -> None:
    submit_analysis(app, "", {"image": (name, content)})
    [error] = app.error
    assert error.value.startswith("Could not analyse this input:")
    assert message in error.value
    assert name in error.value and "/tmp" not in error.value and "Traceback" not in error.value
    assert not app.exception and not app.metric


def test_no_input_and_bad_run_dir_are_messages_not_exceptions(app: AppTest, tmp_path: Path) -> None:
    submit_analysis(app, "   ")
    assert "nothing to analyse" in app.error[0].value
    broken = new_app(tmp_path)
    assert "is not a run directory" in broken.error[0].value
    with pytest.raises(AffectFusionError, match="usage"):
        run_dir_from_argv([])
    assert run_dir_from_argv(["--", "runs/x"]) == Path("runs/x")


def test_face_preview_detects_and_aligns_like_the_extractor(shared_data: Path, tmp_path: Path) -> None:
    """On a real portrait with the Haar detector (P4's), the preview crop is the extractor's input."""
    from affectfusion.extract import build_extractor
    from affectfusion.extract.face import FaceOptions

    path = shared_data / "muxspace_faces_subset/dev/anger/Jan_Ullrich_0002.jpg"
    extractor = build_extractor("fer_cnn", {"detector": "haar", "output": "probs"}, "test")
    extractor.ensure_ready()
    preview = face_preview(path, FaceOptions(detector="haar"), 64, "whole_frame", grey=True)
    assert preview.model_input is not None and preview.model_input.shape == (64, 64)
    assert "haar detector: 1 face(s)" in preview.caption
    assert np.allclose(extractor._model.features(preview.model_input), extractor.extract(path), atol=1e-6)
    box = (preview.annotated == (0, 200, 0)).all(axis=-1)  # the green face box drawn on a grey photo
    assert preview.annotated.shape[:2] == (350, 350) and box.sum() > 200
    with pytest.raises(AffectFusionError, match="not an image"):
        (tmp_path / "x.png").write_text("nope")
        face_preview(tmp_path / "x.png", FaceOptions(detector="haar"), 64, "whole_frame", grey=True)


# -- batch ----------------------------------------------------------------------------------------


def test_batch_table_csv_equals_predict_batch(
    app: AppTest,
    trained_media_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = batch_table(tmp_path, trained_media_run.parent / "data")
    app.file_uploader(key="batch_table").upload("inputs.csv", table.read_bytes(), "text/csv")
    media = app.file_uploader(key="batch_media")
    for path in sorted((tmp_path / "media").iterdir()):
        media.upload(path.name, path.read_bytes())
    app.button(key="batch_run_table").click()
    app.run()
    assert not app.exception and not app.error
    result = app.session_state["batch"]
    assert result.warnings == ["1 file(s) named in the table were not uploaded: media/gone.png"]
    expected = cli_batch_csv(trained_media_run, table, monkeypatch)
    assert_same_predictions(result.csv.decode("utf-8"), expected)
    rows = result.table.set_index("id")
    assert rows.loc["bad_image", "error"] == "image: not an image: media/bad.png"
    assert rows.loc["missing_file", "error"] == "image: image file not found: media/gone.png"
    assert (rows["error"] == "").sum() == 6
    assert any("8 row(s): 6 predicted, 2 with errors" in m.value for m in app.markdown)
    [download] = [d for d in app.get("download_button") if d.proto.label == "Download CSV"]
    assert download.key == "batch_download"


def test_batch_of_files_predicts_each_file(app: AppTest, predictor: Predictor, media: Path) -> None:
    images = sorted(media.glob("test00*.png"))[:3]
    uploader = app.file_uploader(key="batch_files_image")
    for path in images:
        uploader.upload(path.name, path.read_bytes(), "image/png")
    uploader.upload("broken.png", b"not an image")
    app.button(key="batch_run_files").click()
    app.run()
    assert not app.exception
    table = app.session_state["batch"].table
    assert list(table["id"]) == [p.name for p in images] + ["broken.png"]
    expected = predictor.predict([{"image": str(p)} for p in images], [p.name for p in images])
    assert list(table["emotion"][:3]) == [p.tasks["emotion"]["label"] for p in expected]
    for c in ("happy", "sad", "angry"):
        assert np.allclose(table[f"emotion_prob_{c}"][:3], [p.tasks["emotion"]["probabilities"][c] for p in expected])
    assert table["error"].iloc[-1] == "image: not an image: broken.png"


def test_batch_table_cannot_reach_server_files(app: AppTest, media: Path) -> None:
    """Absolute and ``..`` paths in a table are read as upload names, never as server paths."""
    outside = media / "test000.png"  # exists on the server, but is not uploaded
    rows = f"id,image\nabs,{outside}\nup,../../{outside.name}\n"
    app.file_uploader(key="batch_table").upload("inputs.csv", rows.encode(), "text/csv")
    app.button(key="batch_run_table").click()
    app.run()
    table = app.session_state["batch"].table
    assert list(table["error"]) == ["image: image file not found: test000.png"] * 2
    assert str(media) not in app.session_state["batch"].csv.decode()


def test_batch_problems_are_messages(app: AppTest) -> None:
    app.button(key="batch_run_table").click()
    app.run()
    assert "upload a CSV or JSONL table" in app.error[0].value
    app.file_uploader(key="batch_table").upload("inputs.csv", b"id,colour\n1,red\n", "text/csv")
    app.button(key="batch_run_table").click()
    app.run()
    assert "unknown column(s) colour" in app.error[0].value
    assert not app.exception


# -- model tab and launching ----------------------------------------------------------------------


def test_model_tab_shows_metrics_confusion_and_commands(app: AppTest, trained_media_run: Path) -> None:
    metrics = json.loads((trained_media_run / "eval" / "test" / "metrics.json").read_text())
    tables = [df.value for df in app.dataframe]
    [table] = [t for t in tables if "macro_f1" in t.columns]
    assert set(table["split"]) == {"dev", "test"}
    test_row = table[table["split"] == "test"].iloc[0]
    assert test_row["accuracy"] == metrics["tasks"]["emotion"]["accuracy"]
    images = app.get("image")
    assert len(images) >= 3  # confusion dev, confusion test, training curves
    drawn = confusions(trained_media_run, metrics_by_split := {"test": metrics})
    assert [c.image for c in drawn] == [trained_media_run / "plots" / "confusion_test_emotion.png"]
    [fallback] = confusions(Path("/nonexistent"), metrics_by_split)  # no plot: the page shows the table
    assert fallback.image is None
    assert fallback.table().to_numpy().tolist() == metrics["tasks"]["emotion"]["confusion_matrix"]
    code = "\n".join(c.value for c in app.code)
    run = trained_media_run
    assert f"affectfusion predict {run} --text 'I feel great today' --image face.jpg --audio clip.wav" in code
    assert "--batch inputs.csv" in code and "Predictor.load(" in code and "curl -F text=" in code
    assert "adapter: media_table" in code  # config.yaml


def test_streamlit_command_is_local_and_quiet(tmp_path: Path) -> None:
    cmd = streamlit_command(tmp_path / "run", port=8765)
    flags = dict(zip(cmd[5:-2:2], cmd[6:-2:2], strict=True))
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_FILE)]
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8765"
    assert flags["--browser.gatherUsageStats"] == "false" and flags["--server.headless"] == "true"
    assert flags["--server.maxUploadSize"] == "50" and flags["--client.showErrorDetails"] == "none"
    assert cmd[-2:] == ["--", str((tmp_path / "run").resolve())]


def test_launch_refuses_a_non_run_and_a_busy_port(tmp_path: Path, trained_media_run: Path) -> None:
    with pytest.raises(AffectFusionError, match="not a run directory"):
        launch(tmp_path)
    assert run_kind_of(trained_media_run).name == "fusion"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(AffectFusionError, match="choose another --port"):
            launch(trained_media_run, port=s.getsockname()[1])


def test_launch_serves_until_sigterm_and_stops_streamlit(trained_media_run: Path, tmp_path: Path) -> None:
    """``launch`` in its own process: healthy on the port, and SIGTERM leaves no Streamlit behind."""
    port = free_port()
    log = tmp_path / "launch.log"
    code = f"from affectfusion.serve.dashboard import launch; launch({str(trained_media_run)!r}, port={port})"
    with log.open("w") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, port, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # Streamlit is gone with its parent
    assert f"http://127.0.0.1:{port}" in log.read_text()


# -- a vision-language run ------------------------------------------------------------------------


@dataclass
class FakeVLMPrediction:
    text: str
    emotions: list[str]
    emotion_vector: dict[str, float]
    action_units: list[str]
    label: str | None
    face_found: bool = True
    parse_ok: bool = True
    issues: list[str] = field(default_factory=list)


class FakeVLMPredictor:
    """Stands in for ``VLMPredictor``: the page code is what is under test, not BLIP-2."""

    def __init__(self, run: Path) -> None:
        import yaml

        from affectfusion.recipes.vlm.config import validate_vlm

        self.cfg = validate_vlm(yaml.safe_load((run / "config.yaml").read_text()), "config.yaml")
        self.classes = ["happiness", "sadness"]
        self.label_map = {"happiness": "happiness", "sadness": "sadness"}

    def preparer(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        from affectfusion.extract.face import full_image_crop

        return full_image_crop(image, self.cfg.image_size), False  # face.detector: none

    def predict_prepared(self, prepared: list[tuple[np.ndarray, bool]]) -> list[FakeVLMPrediction]:
        return [
            FakeVLMPrediction(
                text="This face exhibits: happiness. Emotion vector: [0.9, 0.0, 0.0, 0.0, 0.1, 0.0]. "
                "Action units: AU6, AU12.",
                emotions=["happiness"],
                emotion_vector={"happiness": 0.9, "sadness": 0.0, "anger": 0.0, "fear": 0.0, "surprise": 0.1},
                action_units=["AU6", "AU12"],
                label="happiness",
                face_found=found,
            )
            for _, found in prepared
        ]


def fake_vlm_run(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        "kind: vlm\nname: tiny_vlm\ndata: {root: /unused}\nimage_size: 96\nface: {detector: none}\n"
    )
    return root


def test_vlm_backend_renders_through_the_same_pages(tmp_path: Path, media: Path) -> None:
    run = fake_vlm_run(tmp_path / "vlm_run")
    assert run_kind_of(run).name == "vlm"
    backend = VLMBackend(run, predictor=FakeVLMPredictor(run))
    analysis = backend.analyse({"image": str(media / "test000.png")})
    assert analysis.error is None and analysis.headline == {"emotion": "happiness"}
    assert analysis.generated_text.startswith("This face exhibits")
    assert analysis.charts["emotion vector"]["happiness"] == 0.9 and not analysis.probability_charts
    assert analysis.fields["action_units"] == ["AU6", "AU12"]
    assert analysis.faces[0].model_input.shape == (96, 96, 3)
    (tmp_path / "bad.png").write_text("nope")
    assert "not an image" in backend.analyse({"image": str(tmp_path / "bad.png")}).error

    shutil.copy(media / "test000.png", tmp_path / "a.png")
    table = backend.predict_files(backend.batch_slots()[0], [tmp_path / "a.png", tmp_path / "bad.png"], ["a", "b"])
    # the CSV of `affectfusion predict --batch` (one batch function for every kind of run)
    assert list(table.columns[:3]) == ["id", "modalities", "emotion"] and table.columns[-1] == "error"
    assert table.loc[0, "emotion_prob_happiness"] == 0.9 and table.loc[0, "action_units"] == "AU6;AU12"
    assert table.loc[0, "text"].startswith("This face exhibits")
    assert table.loc[0, "error"] == "" and "not an image" in table.loc[1, "error"]

    at = AppTest.from_string(
        "from pathlib import Path\n"
        "from affectfusion.recipes.vlm.dashboard import VLMBackend\n"
        "from affectfusion.serve.dashboard.app import render\n"
        "from tests.test_serve_dashboard import FakeVLMPredictor\n"
        f"render(VLMBackend(Path({str(run)!r}), predictor=FakeVLMPredictor(Path({str(run)!r}))))\n",
        default_timeout=60,
    )
    at.run()
    at.file_uploader(key="in_image").upload("face.png", (media / "test000.png").read_bytes(), "image/png")
    next(b for b in at.button if b.label == "Analyse").click()
    at.run()
    assert not at.exception and not at.error
    assert [(m.label, m.value) for m in at.metric] == [("emotion", "happiness")]
    assert any("This face exhibits" in c.value for c in at.code)


@pytest.fixture(scope="module")
def tiny_vlm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real VLM run: a tiny random BLIP-2 + LoRA trained a few steps through the CLI (its answers mean nothing)."""
    pytest.importorskip("affectfusion.recipes.vlm.predictor", reason="the vision-language path is not installed")
    from PIL import Image

    from affectfusion.recipes.vlm.tiny import build_tiny_blip2

    base = tmp_path_factory.mktemp("vlm")
    model = build_tiny_blip2(base / "blip2")
    for split in ("train", "dev"):
        for label, value in (("happy", 40), ("sad", 200)):
            (base / "faces" / split / label).mkdir(parents=True)
            Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8)).save(base / "faces" / split / label / "a.png")
    sets = {
        "model.path": model,
        "data.root": base / "faces",
        "data.test_split": "null",
        "train.epochs": "null",
        "train.steps": 5,
        "train.batch_size": 2,
        "train.progress": "false",
        "generation.max_new_tokens": 30,
    }
    args = ["train", "face_vlm_lora", "--out", str(base / "run")]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    assert call_cli(args) == 0
    return base / "run"


def test_real_vlm_run_through_the_dashboard(tiny_vlm_run: Path, media: Path, tmp_path: Path) -> None:
    """Single image -> generated text and parsed fields equal to VLMPredictor's; batch -> one row per image."""
    from affectfusion.extract.face import load_image
    from affectfusion.recipes.vlm.predictor import VLMPredictor
    from affectfusion.recipes.vlm.run_predictor import VLMRunPredictor

    image = media / "test000.png"
    predictor = VLMPredictor.load(tiny_vlm_run)
    expected = predictor.predict([str(image)])[0]
    at = new_app(tiny_vlm_run)
    assert at.file_uploader[0].label.startswith("Face image")
    at.file_uploader(key="in_image").upload("face.png", image.read_bytes(), "image/png")
    next(b for b in at.button if b.label == "Analyse").click()
    at.run()
    assert not at.exception and not at.error
    analysis = at.session_state["analysis"]
    served = VLMRunPredictor(tiny_vlm_run, predictor).predict_one({"image": str(image)})
    assert analysis.raw == served.to_dict()  # as the API returns it
    assert analysis.generated_text == expected.text == served.generated["text"]
    assert [(m.label, m.value) for m in at.metric] == [("emotion", expected.label or "(none)")]
    crop, _ = predictor.preparer(load_image(image))
    assert np.array_equal(analysis.faces[0].model_input, crop)  # the crop BLIP-2 reads

    at.file_uploader(key="batch_files_image").upload("a.png", image.read_bytes()).upload("b.png", b"not an image")
    at.button(key="batch_run_files").click()
    at.run()
    table = at.session_state["batch"].table
    assert list(table["id"]) == ["a.png", "b.png"]
    assert table.loc[0, "text"] == expected.text and table.loc[0, "error"] == ""
    assert "not an image: b.png" in table.loc[1, "error"]
    assert "VLMPredictor.load(" in "\n".join(c.value for c in at.code)


# -- the real thing: Streamlit server + headless Chromium -----------------------------------------


def face_image(media: Path) -> Path:
    real = sorted((SHARED_DATA / "fer2013_subset" / "test_small" / "happy").glob("*.jpg"))
    return real[0] if real else media / "test000.png"


def test_dashboard_in_headless_chromium(
    trained_media_run: Path,
    predictor: Predictor,
    media: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upload a face and text, see the prediction; run a table batch and download its CSV; screenshot each tab."""
    with Browser(trained_media_run, tmp_path) as b:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        # Analyse: a real face photo and text -> the Predictor's label for the same inputs.
        b.open()
        face = face_image(media)
        b.css(".st-key-in_text textarea").send_keys(TEXT)
        b.css(".st-key-in_image input[type=file]").send_keys(str(face))
        b.css(".st-key-in_image [data-testid=stFileChipName]")
        b.click("[data-testid=stFormSubmitButton] button")
        shown = b.css(".st-key-prediction [data-testid=stMetricValue]").text
        expected = predictor.predict_one({"text": TEXT, "image": str(face)})
        assert shown == expected.tasks["emotion"]["label"]
        b.css("[data-testid=stImage] img")
        b.screenshot("analyse")

        # Batch: a table + its media -> the same CSV as `affectfusion predict --batch`.
        (tmp_path / "batch").mkdir()
        table = batch_table(tmp_path / "batch", trained_media_run.parent / "data")
        b.open_tab("Batch")
        b.css(".st-key-batch_table input[type=file]").send_keys(str(table))
        files = sorted((table.parent / "media").iterdir())
        b.css(".st-key-batch_media input[type=file]").send_keys("\n".join(str(p) for p in files))
        # Each finished upload reruns the script. Click once a run has seen every file: a click whose
        # rerun request is superseded by an upload's would be lost.
        count = (By.CSS_SELECTOR, ".st-key-batch_media_count")
        b.wait.until(ec.text_to_be_present_in_element(count, f"{len(files)} media file(s) uploaded"))
        b.click(".st-key-batch_run_table button")
        summary = b.css(".st-key-batch_summary").text
        assert "8 row(s): 6 predicted, 2 with errors" in summary
        b.css(".st-key-batch_download button").click()
        target = b.downloads / "predictions.csv"
        WebDriverWait(b.driver, 30).until(lambda d: target.is_file() and not list(b.downloads.glob("*.crdownload")))
        assert_same_predictions(
            target.read_text(encoding="utf-8"), cli_batch_csv(trained_media_run, table, monkeypatch)
        )
        b.screenshot("batch")

        # Model: metrics and the confusion matrix plot are on the page.
        b.open_tab("Model")
        b.css(".st-key-metrics [data-testid=stDataFrame]")
        # Confusion matrices (dev, test) and training curves, loaded by the browser (not broken images).
        plots = ".st-key-model_plots [data-testid=stImage] img"
        loaded = (
            f"return [...document.querySelectorAll('{plots}')].filter(i => i.complete && i.naturalWidth > 0).length"
        )
        b.wait.until(lambda d: d.execute_script(loaded) >= 3)
        b.screenshot("model")
    for tab in ("analyse", "batch", "model"):
        assert (ARTIFACTS / f"{tab}.png").stat().st_size > 10_000
