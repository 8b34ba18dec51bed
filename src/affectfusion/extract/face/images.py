"""Loading images for the face pipeline: format and size checks, EXIF orientation, and the optional
OpenCV and MediaPipe libraries, loaded on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import ExtractionError, RawInput
from affectfusion.inputs import IMAGE_FORMATS
from affectfusion.quiet import native_output_silenced

MAX_IMAGE_BYTES = 50 * 2**20  # P4's upload limit; also stops a huge file from stalling a batch


def cv2_module() -> Any:
    try:
        import cv2
    except ImportError:
        raise AffectFusionError(
            "face extraction needs OpenCV: pip install 'opencv-python-headless<5' (5.x ships no Haar cascades)"
        ) from None
    return cv2


def mediapipe_module() -> Any:
    # optional and heavy; protobuf prints a harmless AttributeError while mediapipe loads
    try:
        with native_output_silenced():
            import mediapipe  # optional: only the MediaPipe detector and face mesh need it
    except ImportError:
        raise AffectFusionError(
            "this face extractor needs MediaPipe with its bundled models: "
            "pip install --no-deps mediapipe==0.10.21 (plus absl-py, attrs, flatbuffers, protobuf); "
            "or set detector: haar"
        ) from None
    return mediapipe


def load_image(item: RawInput) -> np.ndarray:
    """An RGB ``uint8`` array ``[H, W, 3]`` from a JPG/PNG/BMP file, upright per its EXIF orientation.

    Anything else (text renamed to .jpg, an empty or truncated file, a GIF) is an ExtractionError.
    """
    # Pillow loads on the first image, not when extractors register
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not isinstance(item, str | Path):
        raise ExtractionError(f"expected an image file path, got {type(item).__name__}")
    path = Path(item)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ExtractionError(f"cannot read {path}: {e.strerror}") from None
    if size == 0:
        raise ExtractionError(f"not an image: {path} (empty file)")
    if size > MAX_IMAGE_BYTES:
        raise ExtractionError(f"{path}: {size / 2**20:.0f} MB is over the {MAX_IMAGE_BYTES // 2**20} MB image limit")
    try:
        with Image.open(path) as im:
            if im.format not in IMAGE_FORMATS:
                raise ExtractionError(f"{path}: unsupported image format {im.format} (expected JPG, PNG or BMP)")
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except UnidentifiedImageError:
        raise ExtractionError(f"not an image: {path}") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:  # truncated / corrupt data
        raise ExtractionError(
            f"{path}: corrupt image ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    return np.asarray(rgb)


def to_grey(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (OpenCV's and Pillow's weights, as the FER CNN was trained on)."""
    return image if image.ndim == 2 else cv2_module().cvtColor(image, cv2_module().COLOR_RGB2GRAY)
