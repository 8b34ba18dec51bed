"""Face extractors that read one square crop per face: the ``no_face`` policy, and serving a run trained on
face crops (``detector: none``) with a detector, so an upload that is a whole photo still gives its face.

``fer_cnn`` (the shipped FER CNN) and ``face_pixels`` (grey pixels for a CNN trained here) share it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from affectfusion.config import no_face_alias
from affectfusion.extract.base import RawInput
from affectfusion.extract.face.detect import (
    CROP_FILL,
    FaceExtractor,
    FaceOptions,
    FacePipeline,
    NoFaceError,
    NoFacePolicy,
    default_detector,
)
from affectfusion.extract.face.images import load_image

Detector = Literal["mediapipe", "haar", "none"]


class ServedFaceOptions(FaceOptions):
    """The face pipeline's options plus what to do without a face and which detector serving runs."""

    no_face: NoFacePolicy = Field(
        "error",
        description="when no face is found: error (the image fails), whole_frame (read the whole image) or "
        "missing_modality (the image counts as absent; other modalities still predict). "
        "Old configs' on_no_face: full_image|error is read as whole_frame|error",
    )
    serve_detector: Literal["auto", "mediapipe", "haar", "none"] = Field(
        "auto",
        description="detector when serving (predict, API, dashboard): auto = the training detector, or for "
        "detector: none (face crops) the default detector, an image mostly filled by its face read whole",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        return no_face_alias(data)


class ServedFaceExtractor(FaceExtractor):
    """Reads the largest face of an image as a ``crop_size`` square and turns it into features.

    Without a face, ``no_face`` decides: ``error`` (the default: that image fails, "no face found in
    <file>"; in training it is named with the other unusable media), ``whole_frame`` (the whole image is
    read, and the prediction says no face was found) or ``missing_modality`` (the image counts as absent:
    training keeps the row's other modalities, serving predicts from them, or fails if there are none).

    A run trained on face crops (``detector: none``, FER2013) still detects at serving time
    (:meth:`for_serving`): an upload is not known to be a crop. ``serve_detector: auto`` then uses the
    default detector; an image whose largest face covers at least :data:`CROP_FILL` of it is a face crop
    and is read whole, as in training; in any other photo the face is cropped. ``serve_detector: none``
    keeps reading whole images.
    """

    kind = "image"
    options: ServedFaceOptions
    # set on the serving copy of a crop-trained extractor
    _serve_detector: Detector | None = None

    @property
    @abstractmethod
    def crop_size(self) -> int:
        """Side in pixels of the square face crop the features are made from."""

    @abstractmethod
    def features(self, crop: np.ndarray) -> np.ndarray:
        """Features of one ``crop_size`` x ``crop_size`` RGB face crop (``uint8``)."""

    def setup(self) -> None:
        crop_fill = CROP_FILL if self._serve_detector is not None and self.options.detector == "none" else None
        self._pipeline = FacePipeline(self.options, self._serve_detector, crop_fill)

    def for_serving(self) -> ServedFaceExtractor:
        detector = self.options.serve_detector
        if detector == "auto":
            detector = default_detector() if self.options.detector == "none" else self.options.detector
        if detector == self.options.detector:
            return self
        served = type(self)(self.name, self.options, self.device, self.threads)
        served._serve_detector = detector
        return served

    @property
    def serving_detector(self) -> Detector:
        """The detector this extractor runs (on a serving copy, the one :meth:`for_serving` chose)."""
        return self._serve_detector or self.options.detector

    def extract_with_faces(self, item: RawInput) -> tuple[np.ndarray, dict[str, Any]]:
        self.ensure_ready()
        crop, report = self._pipeline.read(load_image(item), self.crop_size, self.options.no_face)
        if crop is None:
            raise NoFaceError(item, report)
        return self.features(crop), report.to_dict()

    def extract_each_face(self, item: RawInput, max_faces: int) -> list[tuple[np.ndarray | None, dict[str, Any]]]:
        """Per face in the image (largest first; more than ``max_faces`` is an error before any is read) its
        features and report; with no face, one entry: the whole image's features under ``whole_frame``,
        else None."""
        self.ensure_ready()
        found = self._pipeline.read_all(load_image(item), self.crop_size, self.options.no_face, max_faces)
        return [(None if crop is None else self.features(crop), report.to_dict()) for crop, report in found]
