"""The face pipeline (P4's preprocessing made reusable): detect faces with MediaPipe or Haar
cascades, rotate so the eyes are level, crop a square around the face; and the report of what it
found (:class:`FaceReport`), which every face-based prediction carries.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from abc import abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import ExtractionError, Extractor, RawInput
from affectfusion.extract.face.images import cv2_module, mediapipe_module, to_grey
from affectfusion.quiet import native_output_silenced

Point = tuple[float, float]


Box = tuple[int, int, int, int]  # x, y, width, height in pixels

NoFacePolicy = Literal["error", "whole_frame", "missing_modality"]
NO_FACE = "no face found in"  # how a no-face error starts (the feature store keeps errors as text)
# A crop-trained run served with a detector: an image whose largest face covers at least this fraction is
# itself a face crop and is read whole, as in training (FER2013 crops: 5th percentile 0.47; faces in a
# group or street photo: a few percent).
CROP_FILL = 0.3


def default_detector() -> Literal["mediapipe", "haar"]:
    """MediaPipe where installed (it finds far more faces: 80/81 muxspace photos vs 76 for Haar)."""
    return "mediapipe" if importlib.util.find_spec("mediapipe") is not None else "haar"


@dataclass(frozen=True)
class Face:
    """A detected face: box, score (MediaPipe confidence, or the number of merged Haar detections) and
    the eye centres (image-left eye first) if found."""

    box: Box
    score: float
    eyes: tuple[Point, Point] | None


@dataclass(frozen=True)
class FaceReport:
    """What the face step found in one image and what was read: every face-based prediction carries it.

    ``found``/``count``: faces detected; ``used``: index (largest first) of the face the model read, or
    None; ``box``: that face's ``[x, y, w, h]`` in pixels of the input image; ``policy``: the run's
    ``no_face`` policy (what is done when none is found); ``detector``: which one ran (``none``: the image
    is taken to be a face crop); ``region``: what the model read, ``face`` (the face, cropped), ``whole_frame``
    or None (nothing: no face).
    """

    found: bool
    count: int
    used: int | None
    box: Box | None
    policy: str
    detector: str
    region: Literal["face", "whole_frame"] | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"] = list(self.box) if self.box is not None else None
        return d


class NoFaceError(ExtractionError):
    """No face in an image whose policy is ``error`` or ``missing_modality``; ``report`` says what was seen."""

    def __init__(self, item: object, report: FaceReport) -> None:
        super().__init__(f"{NO_FACE} {item}")
        self.report = report.to_dict()


class FaceExtractor(Extractor):
    """An extractor whose features come from a face it finds in the image (``fer_cnn``, ``face_mesh``): it
    reports that face with its features, and its options' ``no_face: missing_modality`` turns a
    faceless image into an absent modality."""

    reads_faces = True

    @abstractmethod
    def extract_with_faces(self, item: RawInput) -> tuple[np.ndarray, dict[str, Any]]: ...

    def extract(self, item: RawInput) -> np.ndarray:
        return self.extract_with_faces(item)[0]

    def absent(self, error: str) -> bool:
        # every face extractor's Options has a no_face policy (with its own choices)
        return getattr(self.options, "no_face", None) == "missing_modality" and error.startswith(NO_FACE)


@functools.cache  # one detector per process and setting: models load once
def _mediapipe_detector(min_confidence: float) -> Any:
    # model_selection=0 (short range, faces within ~2 m) finds 80/81 muxspace photos and 174/200 FER2013
    # crops; the full-range model (1) finds 6/81 of those close-up portraits.
    with native_output_silenced():  # its graph starts (and logs) on the first image: start it here
        detector = mediapipe_module().solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence
        )
        detector.process(np.zeros((64, 64, 3), np.uint8))
    return detector


@functools.cache
def _haar(name: str) -> Any:
    cv2 = cv2_module()
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
    if cascade.empty():
        raise AffectFusionError(f"OpenCV ships no {name}; install opencv-python-headless<5")
    return cascade


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box | None:
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def _detect_mediapipe(image: np.ndarray, min_confidence: float) -> list[Face]:
    height, width = image.shape[:2]
    result = _mediapipe_detector(min_confidence).process(np.ascontiguousarray(image))
    faces = []
    for det in result.detections or []:
        rel = det.location_data.relative_bounding_box
        box = _clip_box(rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height, width, height)
        if box is None:
            continue
        kp = det.location_data.relative_keypoints  # 0 = right eye, 1 = left eye (the subject's)
        eyes = sorted(((kp[0].x * width, kp[0].y * height), (kp[1].x * width, kp[1].y * height)))
        faces.append(Face(box, float(det.score[0]), (eyes[0], eyes[1])))
    return faces


def _detect_haar(image: np.ndarray) -> list[Face]:
    grey = to_grey(image)
    height, width = grey.shape
    min_side = max(20, min(height, width) // 10)
    boxes, neighbours = _haar("haarcascade_frontalface_default.xml").detectMultiScale2(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    return [
        Face((int(x), int(y), int(w), int(h)), float(n), _haar_eyes(grey, (int(x), int(y), int(w), int(h))))
        for (x, y, w, h), n in zip(boxes, neighbours, strict=True)
    ]


def _haar_eyes(grey: np.ndarray, box: Box) -> tuple[Point, Point] | None:
    """The two largest eyes in the upper half of the face, one on each side of its centre (as in P4)."""
    x, y, w, h = box
    roi = grey[y : y + h // 2 + h // 10, x : x + w]
    found = _haar("haarcascade_eye.xml").detectMultiScale(
        roi, scaleFactor=1.1, minNeighbors=5, minSize=(w // 10, h // 10)
    )
    if len(found) < 2:
        return None
    (ax, ay, aw, ah), (bx, by, bw, bh) = sorted(found, key=lambda e: -e[2] * e[3])[:2]
    a, b = sorted(((x + ax + aw / 2, y + ay + ah / 2), (x + bx + bw / 2, y + by + bh / 2)))
    if not a[0] < x + w / 2 < b[0]:
        return None  # both on one side: a false eye (nostril, brow); no rotation is safer than a wrong one
    return (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))


def detect_faces(
    image: np.ndarray, backend: Literal["mediapipe", "haar"] | None = None, min_confidence: float = 0.5
) -> list[Face]:
    """Faces in an RGB image, largest first; backend None = MediaPipe where installed, else Haar.

    ``min_confidence`` applies to MediaPipe only.
    """
    backend = backend or default_detector()
    faces = _detect_mediapipe(image, min_confidence) if backend == "mediapipe" else _detect_haar(image)
    return sorted(faces, key=lambda f: -f.box[2] * f.box[3])


def eye_angle(eyes: tuple[Point, Point]) -> float:
    """Angle of the eye line in degrees, counter-clockwise as seen on screen (image y points down)."""
    (lx, ly), (rx, ry) = eyes
    return math.degrees(math.atan2(ly - ry, rx - lx))


def align_face(image: np.ndarray, box: Box, eyes: tuple[Point, Point] | None) -> np.ndarray:
    """The image rotated about the face-box centre so the eye line is level (unchanged without eyes).

    Rotating about the box centre keeps the face inside its box, so the box can be cropped afterwards.
    """
    if eyes is None:
        return image
    cv2 = cv2_module()
    x, y, w, h = box
    # OpenCV's positive angle turns the picture counter-clockwise; turning it by minus the eye line's
    # counter-clockwise tilt levels the eyes.
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), -eye_angle(eyes), 1.0)
    return cv2.warpAffine(
        image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def crop_face(image: np.ndarray, box: Box, size: int, margin: float = 0.0) -> np.ndarray:
    """A ``size`` x ``size`` square around the box centre, side ``max(w, h) * (1 + margin)``.

    Parts outside the image are filled by repeating its border, so a face at the edge keeps its
    position and scale in the crop (no stretching).
    """
    cv2 = cv2_module()
    x, y, w, h = box
    side = max(2, round(max(w, h) * (1 + margin)))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    square = image[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


class FaceOptions(Extractor.Options):
    """Options of the face pipeline, shared by every extractor that uses it."""

    detector: Literal["mediapipe", "haar", "none"] = Field(
        default_factory=default_detector,
        description="face detector: mediapipe (default where installed), haar (OpenCV, as in P4), or none: "
        "the image is already a face crop (FER2013)",
    )
    min_confidence: float = Field(0.5, gt=0, lt=1, description="MediaPipe detection threshold")
    align: bool = Field(True, description="rotate so the eyes are level before cropping")
    margin: float = Field(0.2, ge=0, le=2, description="enlarge the face box by this fraction before cropping")


class FacePipeline:
    """Detect -> align -> crop, on RGB arrays, so image and video extractors share one behaviour.

    ``detector`` overrides the options' (serving a crop-trained run); ``crop_fill`` (with it) makes an
    image whose largest face covers at least that fraction count as a face crop, read whole.
    """

    def __init__(
        self,
        options: FaceOptions,
        detector: Literal["mediapipe", "haar", "none"] | None = None,
        crop_fill: float | None = None,
    ) -> None:
        self.options = options
        self.detector = detector or options.detector
        self.crop_fill = crop_fill

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces, largest first ([] with detector ``none``)."""
        if self.detector == "none":
            return []
        return detect_faces(image, self.detector, self.options.min_confidence)

    def crop(self, image: np.ndarray, face: Face, size: int) -> np.ndarray:
        """One detected face, aligned and cropped to ``size`` x ``size``."""
        if self.options.align:
            image = align_face(image, face.box, face.eyes)
        return crop_face(image, face.box, size, self.options.margin)

    def face_crop(self, image: np.ndarray, size: int) -> np.ndarray | None:
        """The largest face, aligned and cropped to ``size`` x ``size``; None if no face is found."""
        crop, _ = self.read(image, size, "error")
        return crop

    def read(self, image: np.ndarray, size: int, policy: str) -> tuple[np.ndarray | None, FaceReport]:
        """The crop the model reads (the largest face; the whole image with detector ``none``, for a face
        crop, or with no face under ``whole_frame``; None with no face otherwise) and its report."""
        return self._read(image, self.detect(image), 0, size, policy)

    def read_all(
        self, image: np.ndarray, size: int, policy: str, max_faces: int
    ) -> list[tuple[np.ndarray | None, FaceReport]]:
        """Every face's crop and report, largest first (one whole-image or no-face entry if none is
        found); more than ``max_faces`` faces is an error before any is cropped."""
        faces = self.detect(image)
        if len(faces) > max_faces:
            raise ExtractionError(f"{len(faces)} faces found, over the limit of {max_faces} (max_faces)")
        return [self._read(image, faces, k, size, policy) for k in range(max(1, len(faces)))]

    def _read(
        self, image: np.ndarray, faces: list[Face], k: int, size: int, policy: str
    ) -> tuple[np.ndarray | None, FaceReport]:
        height, width = image.shape[:2]
        if self.detector == "none":
            return full_image_crop(image, size), FaceReport(
                True, 1, 0, (0, 0, width, height), policy, "none", "whole_frame"
            )
        if not faces:
            whole = policy == "whole_frame"
            report = FaceReport(False, 0, None, None, policy, self.detector, "whole_frame" if whole else None)
            return (full_image_crop(image, size) if whole else None), report
        face = faces[k]
        whole = self.crop_fill is not None and face.box[2] * face.box[3] >= self.crop_fill * width * height
        report = FaceReport(True, len(faces), k, face.box, policy, self.detector, "whole_frame" if whole else "face")
        return (full_image_crop(image, size) if whole else self.crop(image, face, size)), report


def full_image_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image as a square (centred, borders repeated if not square), resized to ``size``."""
    return crop_face(image, (0, 0, image.shape[1], image.shape[0]), size)
