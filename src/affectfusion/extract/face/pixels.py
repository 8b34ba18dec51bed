"""``face_pixels``: the face as a grey ``size`` x ``size`` image in [0, 1], flattened, for a CNN trained on the
pixels themselves (the ``cnn2d`` encoder) rather than on a shipped network's outputs.

The face is found, aligned and cropped by the same pipeline as ``fer_cnn`` (``detector: none`` for images that
are already face crops, as FER2013's 48 x 48 ones are); the image is read within the same size limits.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from affectfusion.extract.base import EXTRACTORS
from affectfusion.extract.examples import Example
from affectfusion.extract.face.images import to_grey
from affectfusion.extract.face.served import ServedFaceExtractor, ServedFaceOptions


@EXTRACTORS.register("face_pixels")
class FacePixelsExtractor(ServedFaceExtractor):
    """The largest face (or the whole crop, ``detector: none``) as ``size * size`` grey values in [0, 1], row by
    row: ``[size * size]``. The ``cnn2d`` encoder reads it back as a square image."""

    example = Example("face_image", dim=48 * 48)

    packages: ClassVar[tuple[str, ...]] = ("mediapipe", "opencv-python-headless", "pillow")

    class Options(ServedFaceOptions):
        size: int = Field(48, ge=8, le=256, description="side of the square grey face image, in pixels")

    options: Options

    @property
    def crop_size(self) -> int:
        return self.options.size

    def features(self, crop: np.ndarray) -> np.ndarray:
        return (to_grey(crop).astype(np.float32) / 255.0).reshape(-1)
