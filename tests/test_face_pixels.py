"""``face_pixels``: FER2013 crops read as their own grey pixels, the face pipeline's detector for served uploads,
and clear errors for bad options and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, extract_inputs
from affectfusion.extract.build import build_extractor
from affectfusion.extract.face import FacePixelsExtractor, FerCnnExtractor
from affectfusion.extract.face.detect import default_detector


def fer_images(shared_data: Path, n: int = 3) -> list[Path]:
    folder = shared_data / "fer2013_subset" / "train" / "happy"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return sorted(folder.glob("*.jpg"))[:n]


def test_fer_crops_are_read_as_their_own_grey_pixels(shared_data: Path) -> None:
    from PIL import Image

    paths = fer_images(shared_data)
    ex = build_extractor("face_pixels", {"detector": "none"}, "test")
    features = extract_inputs(ex, paths)
    for path, x in zip(paths, features, strict=True):
        assert isinstance(x, np.ndarray) and x.shape == (48 * 48,) and x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
        expected = np.asarray(Image.open(path).convert("L"), dtype=np.float32).reshape(-1) / 255
        np.testing.assert_allclose(x, expected, atol=1.5 / 255)


def test_size_option_resizes_and_changes_the_fingerprint(shared_data: Path) -> None:
    path = fer_images(shared_data, 1)[0]
    small = build_extractor("face_pixels", {"detector": "none", "size": 24}, "test")
    default = build_extractor("face_pixels", {"detector": "none"}, "test")
    assert small.extract(path).shape == (24 * 24,)
    assert small.fingerprint() != default.fingerprint()


def test_crop_trained_extractor_detects_faces_when_served() -> None:
    ex = build_extractor("face_pixels", {"detector": "none"}, "test")
    served = ex.for_serving()
    assert isinstance(served, FacePixelsExtractor) and served is not ex
    assert served.serving_detector == default_detector() and ex.serving_detector == "none"
    kept = build_extractor("face_pixels", {"detector": "none", "serve_detector": "none"}, "test")
    assert kept.for_serving() is kept
    # fer_cnn shares the same serving rule
    fer = build_extractor("fer_cnn", {"detector": "none"}, "test").for_serving()
    assert isinstance(fer, FerCnnExtractor) and fer.serving_detector == default_detector()


def test_bad_options_and_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="size"):
        build_extractor("face_pixels", {"size": 4}, "data.extract.image.options")
    with pytest.raises(AffectFusionError, match="colour"):
        build_extractor("face_pixels", {"colour": True}, "data.extract.image.options")
    text = tmp_path / "note.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    ex = build_extractor("face_pixels", {"detector": "none"}, "test")
    bad = extract_inputs(ex, [text, empty, tmp_path / "missing.jpg"])
    assert all(isinstance(r, ExtractionError) for r in bad)
    assert "not an image" in str(bad[0]) and "empty" in str(bad[1]) and "missing.jpg" in str(bad[2])


def test_whole_frame_policy_reads_a_faceless_image_and_error_names_the_file(tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(blank)
    whole = build_extractor("face_pixels", {"detector": "haar", "no_face": "whole_frame", "size": 16}, "test")
    x = whole.extract(blank)
    assert x.shape == (256,) and np.allclose(x, 128 / 255, atol=1 / 255)
    strict = build_extractor("face_pixels", {"detector": "haar"}, "test")
    with pytest.raises(ExtractionError, match=r"no face found in .*wall\.png"):
        strict.extract(blank)
