"""The dashboard's parts beyond one upload (issue #14, issue #11): webcam / microphone capture, audio
playback, each input alone next to the fused answer, the no-face and low-confidence banners, example
inputs, a video's timeline, the run's reports and the Conversation tab; and the capture widgets in a real
headless Chromium with fake media devices (screenshots in ``test-artifacts/dashboard/``).

The run is the media fixture with MediaPipe face detection and a GRU context stage
(``trained_face_context_run``): its training images are noise, so an image of them has no face.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from affectfusion.data.examples.media import write_clip
from affectfusion.errors import AffectFusionError
from affectfusion.extract import examples
from affectfusion.serve import Predictor
from affectfusion.serve.dashboard.backends import InputSlot, PredictorBackend, no_face
from affectfusion.serve.dashboard.extras import (
    MAX_TURNS,
    banners,
    example_inputs,
    pick_example,
    run_conversation,
    run_reports,
)
from affectfusion.serve.dashboard.timeline import MAX_SEGMENTS, video_timeline
from affectfusion.serve.dashboard.widgets import EXAMPLE_TURNS
from affectfusion.serve.input_limits import InputLimits, InputRejected
from tests.dashboard_helpers import ARTIFACTS, TEXT, Browser, new_app, submit_analysis
from tests.fixtures_serve import bright_face
from tests.helpers import SHARED_DATA

REAL_FACE = SHARED_DATA / "muxspace_faces_subset/dev/anger/Jan_Ullrich_0002.jpg"


@pytest.fixture(scope="module")
def predictor(trained_face_context_run: Path) -> Predictor:
    return Predictor.load(trained_face_context_run)


@pytest.fixture
def app(trained_face_context_run: Path) -> AppTest:
    return new_app(trained_face_context_run)


@pytest.fixture(scope="module")
def face_rgb() -> np.ndarray:
    """A real photo when ../shared/data is there, else the library's drawn face (both found by MediaPipe)."""
    from PIL import Image

    from affectfusion.data.examples.media import draw_face

    if REAL_FACE.is_file():
        return np.asarray(Image.open(REAL_FACE).convert("RGB"))
    return draw_face(480)


def jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def analyse_button(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Analyse").click()
    at.run()
    assert not at.exception, at.exception


# -- capture, playback, per-modality view ---------------------------------------------------------


def test_webcam_and_microphone_captures_predict_like_files(
    app: AppTest, predictor: Predictor, face_rgb: np.ndarray, media: Path, tmp_path: Path
) -> None:
    photo, clip = jpeg(face_rgb), (media / "test001.wav").read_bytes()
    app.text_area(key="in_text").set_value(TEXT)
    app.camera_input(key="camera_image").set_value(("image.jpg", photo, "image/jpeg"))
    app.audio_input(key="mic_audio").set_value(("audio.wav", clip, "audio/wav"))
    analyse_button(app)
    (tmp_path / "image.jpg").write_bytes(photo)
    (tmp_path / "audio.wav").write_bytes(clip)
    files = {"image": str(tmp_path / "image.jpg"), "audio": str(tmp_path / "audio.wav")}
    expected = predictor.predict_one({"text": TEXT, **files}, explain=True)
    analysis = app.session_state["analysis"]
    assert analysis.raw == expected.to_dict() and expected.modalities_used == ["audio", "image", "text"]
    assert not app.error and analysis.no_face == []  # the photo's face is found: no banner
    [player] = app.get("audio")  # the recorded clip, played back next to its result
    assert player.proto.url
    # Each input alone, the others missing: what the Predictor says for that input only.
    alone = predictor.predict([{"text": TEXT}, {"image": files["image"]}, {"audio": files["audio"]}])
    assert [analysis.alone[k]["tasks"] for k in ("text", "image", "audio")] == [p.tasks for p in alone]
    [table] = [t.value for t in app.table]
    assert list(table.index) == [
        "fused (all inputs)",
        "Text (transcript, post, utterance) alone",
        "Face image (JPG/PNG/BMP) alone",
        "Audio (WAV/FLAC/OGG/MP3) alone",
    ]
    labels = [expected.tasks["emotion"]["label"], *(p.tasks["emotion"]["label"] for p in alone)]
    assert list(table["emotion"]) == labels
    attribution = expected.tasks["emotion"]["attribution"]["values"]
    assert table["emotion: attribution"].iloc[1:].to_numpy() == pytest.approx(
        [attribution[m] for m in ("text", "image", "audio")], abs=1e-6
    )


def test_an_upload_wins_over_a_capture_and_single_inputs_have_no_per_modality_view(
    app: AppTest, predictor: Predictor, face_rgb: np.ndarray, media: Path
) -> None:
    app.camera_input(key="camera_image").set_value(("image.jpg", jpeg(face_rgb), "image/jpeg"))
    app.file_uploader(key="in_image").upload("noise.png", (media / "test001.png").read_bytes())
    analyse_button(app)
    expected = predictor.predict_one({"image": str(media / "test001.png")}, explain=True)
    analysis = app.session_state["analysis"]
    assert analysis.raw == expected.to_dict() and analysis.alone == {}
    assert not app.table
    assert not app.get("audio")


def test_captures_are_checked_like_uploads(app: AppTest) -> None:
    """A photo over the pixel limit and a recording that is no audio: readable errors, nothing decoded."""
    huge = jpeg(np.zeros((4100, 4100, 3), np.uint8))
    app.camera_input(key="camera_image").set_value(("image.jpg", huge, "image/jpeg"))
    analyse_button(app)
    [error] = app.error
    assert "image.jpg" in error.value and "pixels" in error.value and "/tmp" not in error.value
    app.camera_input(key="camera_image").set_value(None)
    app.audio_input(key="mic_audio").set_value(("audio.wav", b"RIFF but not a wave file" * 4, "audio/wav"))
    analyse_button(app)
    [error] = app.error
    assert error.value.startswith("Could not analyse this input:") and "audio.wav" in error.value


# -- banners --------------------------------------------------------------------------------------


def test_no_face_and_low_confidence_banners(app: AppTest, media: Path) -> None:
    submit_analysis(app, TEXT, {"image": ("noise.png", (media / "test001.png").read_bytes())})
    [error] = app.error
    assert error.value == "No face found in the image input: this prediction does not rest on a face."
    top = max(app.session_state["analysis"].raw["tasks"]["emotion"]["probabilities"].values())
    assert not app.warning  # the default threshold (0.5) is below this run's top probability
    app.slider(key="low_confidence").set_value(1.0)
    app.run()
    [warning] = app.warning
    assert warning.value == f"Low confidence for emotion: the top class has probability {top:.2f} (< 1.00)."
    app.slider(key="low_confidence").set_value(0.0)
    app.run()
    assert not app.warning


def test_no_face_reads_the_prediction_faces_field_when_there_is_one() -> None:
    preview = SimpleNamespace(modality="image", found=False)
    assert no_face(SimpleNamespace(), [preview]) == ["image"]  # today: the face preview's detection
    found = SimpleNamespace(faces={"image": {"found": True, "count": 2, "used": 0}})
    assert no_face(found, [preview]) == []  # the prediction's own field wins
    lost = SimpleNamespace(faces={"image": {"found": False, "count": 0, "used": None}, "frame": {"found": True}})
    assert no_face(lost, []) == ["image"]
    analysis = SimpleNamespace(
        no_face=[], error=None, raw={"tasks": {"y": {"label": "a", "probabilities": {"a": 0.4}}}}
    )
    assert banners(analysis, 0.5) == [("warning", "Low confidence for y: the top class has probability 0.40 (< 0.50).")]
    assert banners(analysis, 0.4) == []
    analysis.raw["tasks"]["y"]["trust_warnings"] = ["conformal.json was fitted at another temperature; not used"]
    assert banners(analysis, 0.4) == [("warning", "y: conformal.json was fitted at another temperature; not used")]


# -- examples -------------------------------------------------------------------------------------


def test_example_inputs_are_samples_of_the_runs_data(
    app: AppTest, predictor: Predictor, trained_face_context_run: Path
) -> None:
    """The example is a real sample of the run's test split (a generated input made the model look more
    confident than on anything real), the caption says which, and each press moves to the next sample."""
    labels = [
        "all inputs",
        "Text (transcript, post, utterance)",
        "Face image (JPG/PNG/BMP)",
        "Audio (WAV/FLAC/OGG/MP3)",
    ]
    assert app.selectbox(key="example_pick").options == labels
    app.button(key="example_run").click()
    app.run()
    # the fixture's images are noise: the one error shown is the no-face banner, as for any such upload
    assert not app.exception and [e.value for e in app.error] == [
        "No face found in the image input: this prediction does not rest on a face."
    ]
    data = trained_face_context_run.parent / "data"
    table = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False)
    full = table[(table["text"] != "") & (table["audio"] != "") & (table["image"] != "")]
    first, second = full.iloc[0], full.iloc[1]
    assert app.text_area(key="in_text").value == first["text"]
    note = app.session_state["example_note"]
    assert "of the test split" in note and f"emotion = {first['emotion']}" in note
    inputs = {"text": first["text"], "image": str(data / first["image"]), "audio": str(data / first["audio"])}
    expected = predictor.predict_one(inputs, explain=True)
    assert app.session_state["analysis"].raw == expected.to_dict()
    assert len(app.get("audio")) == 1 and app.metric
    app.button(key="example_run").click()
    app.run()
    assert app.text_area(key="in_text").value == second["text"]
    app.selectbox(key="example_pick").set_value("audio")
    app.button(key="example_run").click()
    app.run()
    assert app.session_state["analysis"].raw["modalities_used"] == ["audio"]


def test_example_falls_back_to_a_generated_input_and_says_so(trained_face_context_run: Path, tmp_path: Path) -> None:
    import yaml

    backend = PredictorBackend(trained_face_context_run)
    config = yaml.safe_load((trained_face_context_run / "config.yaml").read_text())
    config["data"]["root"] = str(tmp_path / "moved")  # the run's data is not on this machine
    example = pick_example(config, backend.slots(), ["text"], 0)
    assert example.values == {"text": examples.INPUTS["text"][0](tmp_path)}
    assert "generated example" in example.note and "not from this run's data" in example.note
    with pytest.raises(KeyError):
        example_inputs([InputSlot("x", "features", "x")], ["y"])


# -- reports --------------------------------------------------------------------------------------


def test_reports_are_offered_for_download_and_inline(trained_media_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(trained_media_run, tmp_path / "run")
    html = run / "analysis" / "test" / "report.html"
    html.parent.mkdir(parents=True)
    html.write_text("<html><body><h1>Analysis of test</h1></body></html>")
    assert run_reports(run) == [("Run report (Markdown)", run / "report.md"), ("Analysis of test (HTML)", html)]
    at = new_app(run)
    downloads = [d.proto.label for d in at.get("download_button")]
    assert downloads == ["Download Run report (Markdown)", "Download Analysis of test (HTML)"]
    [frame] = at.get("iframe")
    assert "Analysis of test" in frame.proto.srcdoc
    assert run_reports(tmp_path / "nothing") == []


# -- conversation ---------------------------------------------------------------------------------


def test_conversation_tab_predicts_each_turn_in_context(
    app: AppTest, predictor: Predictor, trained_media_run: Path
) -> None:
    assert [t.label for t in app.tabs] == ["Analyse", "Batch", "Model", "Conversation"]
    assert [t.label for t in new_app(trained_media_run).tabs] == ["Analyse", "Batch", "Model"]  # no context stage
    turns = ["I hate this, it is terrible", "oh no, so lonely", "", "what wonderful joy"]
    app.session_state["conversation_turns"] = {
        "edited_rows": {0: {"text": turns[0]}, 1: {"text": turns[1]}, 2: {"text": turns[2]}},
        "added_rows": [{"speaker": "B", "text": turns[3]}],
        "deleted_rows": [],
    }
    app.run()
    app.button(key="conversation_run").click()
    app.run()
    assert not app.exception and not app.error
    [table] = [t.value for t in app.table]
    said = [t for t in turns if t]
    expected = predictor.predict_conversation([{"text": t} for t in said], speakers=["A", "B", "B"])
    assert list(table["text"]) == said and list(table["speaker"]) == ["A", "B", "B"]
    assert list(table["emotion"]) == [p.tasks["emotion"]["label"] for p in expected]
    probs = [max(p.tasks["emotion"]["probabilities"].values()) for p in expected]
    assert table["emotion: probability"].to_numpy() == pytest.approx(probs, abs=1e-6)
    alone = predictor.predict([{"text": t} for t in said])
    assert [p.tasks for p in alone] != [p.tasks for p in expected]  # the context stage reads the other turns


def test_conversation_limits_are_messages(trained_face_context_run: Path) -> None:
    backend = PredictorBackend(trained_face_context_run)
    with pytest.raises(AffectFusionError, match="at least one turn"):
        run_conversation(backend, pd.DataFrame({"speaker": ["A"], "text": ["  "]}))
    many = pd.DataFrame({"speaker": ["A"] * (MAX_TURNS + 1), "text": ["hello"] * (MAX_TURNS + 1)})
    with pytest.raises(AffectFusionError, match=f"{MAX_TURNS + 1} turns: at most {MAX_TURNS}"):
        run_conversation(backend, many)


# -- video timeline -------------------------------------------------------------------------------


class BrightnessBackend:
    """A stand-in video model: P(bright) = a segment's mean brightness, so the timeline's truth is known."""

    def __init__(self, limits: InputLimits | None = None) -> None:
        self.limits = limits or InputLimits()
        self.clips: list[Path] = []

    def predict_files(self, slot: InputSlot, paths: list[Path], ids: list[str]) -> pd.DataFrame:
        from affectfusion.extract.video import sample_frames

        self.clips += paths
        bright = [float(np.mean(sample_frames(p, 100.0))) / 255 for p in paths]
        return pd.DataFrame(
            {"id": ids, "y": "", "y_prob_bright": bright, "y_prob_dark": [1 - b for b in bright], "error": ""}
        )


def test_video_timeline_follows_the_video_within_bounds(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 20 if k < 30 else 230, np.uint8) for k in range(60)]  # 6 s: dark, then bright
    video = write_clip(tmp_path / "clip.mp4", frames, 10)
    backend = BrightnessBackend()
    table = video_timeline(backend, InputSlot("video", "video", "Video"), video)  # type: ignore[arg-type]
    bright = table[table["class"] == "bright"].sort_values("start_s")
    assert len(backend.clips) == MAX_SEGMENTS == len(bright)
    assert bright["start_s"].iloc[-1] == pytest.approx(5.5)
    assert (bright["probability"].iloc[:5] < 0.2).all() and (bright["probability"].iloc[-5:] > 0.8).all()
    short = BrightnessBackend(InputLimits(max_video_seconds=2.0))
    with pytest.raises(InputRejected, match="2"):
        video_timeline(short, InputSlot("video", "video", "Video"), video)  # type: ignore[arg-type]
    assert short.clips == []  # refused from the header, before any segment was cut
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(AffectFusionError):
        video_timeline(BrightnessBackend(), InputSlot("video", "video", "Video"), tmp_path / "bad.mp4")  # type: ignore[arg-type]


def test_video_upload_gets_a_timeline_of_its_segments(trained_video_run: Path, tmp_path: Path) -> None:
    """3 s of video, bright ("happy") then dark: each segment's point is the model's answer for those frames."""
    frames = [bright_face(60 if k < 15 else -60) for k in range(30)]
    video = write_clip(tmp_path / "clip.mp4", frames, 10)
    at = new_app(trained_video_run)
    submit_analysis(at, files={"video": ("clip.mp4", video.read_bytes())})
    assert not at.error
    table, error = at.session_state["timeline"]
    happy = table[table["class"] == "happy"].sort_values("start_s")["probability"]
    assert error is None and list(table[table["class"] == "happy"]["start_s"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    from affectfusion.extract.video import sample_frames

    decoded = sample_frames(video, 4.0)  # 2 frames per 0.5 s segment, as the timeline cuts them
    stills = [write_clip(tmp_path / f"segment{k}.mp4", decoded[2 * k : 2 * k + 2], 4) for k in (0, 5)]
    first, last = (
        p.tasks["emotion"]["probabilities"]["happy"]
        for p in Predictor.load(trained_video_run).predict([{"video": str(v)} for v in stills])
    )
    assert happy.iloc[0] == pytest.approx(first, abs=1e-5) and happy.iloc[-1] == pytest.approx(last, abs=1e-5)
    assert happy.iloc[:3].min() > happy.iloc[-2:].max()  # the timeline follows the video
    assert sum("segment start (s)" in c.proto.spec for c in at.get("vega_lite_chart")) == 1
    submit_analysis(at, files={"video": ("broken.mp4", b"not a video" * 50)})
    table, error = at.session_state["timeline"]
    assert table is None and "broken.mp4" in error and "/tmp" not in error
    assert "No timeline for this video" in at.error[-1].value


def test_timeline_renders_as_a_line_chart() -> None:
    def page(ok: bool) -> None:
        import pandas as pd

        from affectfusion.serve.dashboard.widgets import render_timeline

        rows = [{"task": "y", "start_s": t, "class": c, "probability": 0.5} for t in (0.0, 1.0) for c in "ab"]
        render_timeline(pd.DataFrame(rows) if ok else None, None if ok else "clip.mp4: no segment could be predicted")

    at = AppTest.from_function(page, args=(True,)).run()
    assert not at.exception and not at.error
    [chart] = at.get("vega_lite_chart")
    assert '"mark": {"type": "line"' in chart.proto.spec and "start_s" in chart.proto.spec
    at = AppTest.from_function(page, args=(False,)).run()
    assert at.error[0].value == "No timeline for this video: clip.mp4: no segment could be predicted"


# -- the real thing: the capture widgets in headless Chromium with fake media devices --------------


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 10, size: tuple[int, int] = (640, 480)) -> Path:
    """One image as a YUV4MPEG2 (4:2:0) clip: the file Chromium's fake camera reads."""
    from PIL import Image

    ycbcr = np.asarray(Image.fromarray(rgb).convert("RGB").resize(size).convert("YCbCr"))
    y = ycbcr[..., 0]
    cb, cr = (np.asarray(Image.fromarray(ycbcr[..., c]).resize((size[0] // 2, size[1] // 2))) for c in (1, 2))
    frame = b"FRAME\n" + y.tobytes() + cb.tobytes() + cr.tobytes()
    path.write_bytes(f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


def test_dashboard_capture_in_headless_chromium(
    trained_face_context_run: Path, predictor: Predictor, face_rgb: np.ndarray, media: Path, tmp_path: Path
) -> None:
    """Take a photo with the webcam widget and record with the microphone widget (Chromium's fake devices
    play a face photo and a speech-like WAV), see the prediction, the per-modality view and the audio
    player; then upload an image without a face and see the no-face banner; then predict the example
    conversation on the Conversation tab. Screenshots of each."""
    camera = write_y4m(tmp_path / "face.y4m", face_rgb)
    microphone = examples.INPUTS["speech_wav"][0](tmp_path)
    fake_devices = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with Browser(trained_face_context_run, tmp_path, fake_devices, failure="capture_failure") as b:
        from selenium.webdriver.common.by import By

        b.open()
        b.css(".st-key-in_text textarea").send_keys(TEXT)
        b.take_photo("camera_image")
        b.click(".st-key-mic_audio [aria-label=Record]")
        time.sleep(1.5)
        b.click(".st-key-mic_audio [aria-label='Stop recording']")
        b.css(".st-key-mic_audio [aria-label=Play]")  # the recording is ready
        b.click("[data-testid=stFormSubmitButton] button")
        label = b.css(".st-key-prediction [data-testid=stMetricValue]").text
        assert label in ("happy", "sad", "angry")
        b.css(".st-key-per_modality table")
        rows = [r.text for r in b.driver.find_elements(By.CSS_SELECTOR, ".st-key-per_modality tbody tr")]
        sources = ("fused (all inputs)", "Text (transcript", "Face image", "Audio")
        assert [r.startswith(s) for r, s in zip(rows, sources, strict=True)] == [True] * 4
        assert label in rows[0]  # the fused row is the headline
        b.css(".st-key-playback audio")  # the recorded clip, playable next to its result
        assert not b.driver.find_elements(By.CSS_SELECTOR, ".st-key-banners [data-testid=stAlert]")
        b.screenshot("capture")

        # An upload wins over the photo: an image without a face gets the banner.
        b.css(".st-key-in_image input[type=file]").send_keys(str(media / "test001.png"))
        b.css(".st-key-in_image [data-testid=stFileChipName]")
        b.click("[data-testid=stFormSubmitButton] button")
        banner = b.css(".st-key-banners [data-testid=stAlert]").text
        assert "No face found in the image input" in banner
        b.screenshot("no_face")

        # Conversation: the example turns, each predicted in its context.
        b.open_tab("Conversation")
        b.click(".st-key-conversation_run button")
        b.css(".st-key-conversation_result table")
        cells = b.driver.find_elements(By.CSS_SELECTOR, ".st-key-conversation_result tbody tr td:nth-of-type(3)")
        said = [{"text": text} for _, text in EXAMPLE_TURNS]
        expected = predictor.predict_conversation(said, speakers=["A", "B", "A"])
        assert [c.text for c in cells] == [p.tasks["emotion"]["label"] for p in expected]
        b.screenshot("conversation")
    for name in ("capture", "no_face", "conversation"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
