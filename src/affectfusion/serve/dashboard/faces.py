"""The face preview of the dashboard: the detected face drawn on a display-sized copy, and the crop
the model reads (computed by the same calls as the extractor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from affectfusion.serve.decode import check_image
from affectfusion.serve.input_limits import InputLimits

if TYPE_CHECKING:
    from affectfusion.extract.face import FaceOptions

DISPLAY_SIDE = 640  # the page shows faces 320 px wide: twice that is plenty for a sharp preview


@dataclass
class FacePreview:
    """The detected face drawn on the input, and exactly the crop the model reads."""

    modality: str
    annotated: np.ndarray
    model_input: np.ndarray | None  # None: no face and the model refuses the image
    caption: str
    model_caption: str
    found: bool | None = None  # None: no detector ran (the whole image is the face)


def face_preview(
    path: Path,
    options: FaceOptions,
    size: int,
    no_face: str,
    grey: bool,
    modality: str = "image",
    limits: InputLimits | None = None,
) -> FacePreview:
    """Run the face pipeline on one image the way the model's extractor does, for display.

    The crop comes from :meth:`FacePipeline.face_crop` (or the whole image when no face is found and
    the run allows that), the same calls the extractor makes, so it is the model's input. The
    annotated copy is at most :data:`DISPLAY_SIDE` pixels a side: a session keeps no full-size image.
    Raises :class:`ExtractionError` for a file that is not a readable image and
    :class:`InputRejected` for one over ``limits`` (checked from its header, before decoding).
    """
    # the face stack (OpenCV, MediaPipe) loads only when a face is previewed
    from affectfusion.extract.face import FacePipeline, detect_faces, full_image_crop, load_image, to_grey

    check_image(path, limits or InputLimits(), path.name)
    image = load_image(path)
    annotated, scale = display_copy(image)
    pipeline = FacePipeline(options)
    crop: np.ndarray | None
    found: bool | None = None
    if options.detector == "none":
        crop = full_image_crop(image, size)
        caption = "no face detector (the run's images are face crops): the whole image is used"
    else:
        faces = detect_faces(image, options.detector, options.min_confidence)
        found = bool(faces)
        if faces:
            box = tuple(round(v * scale) for v in faces[0].box)
            eyes = [(x * scale, y * scale) for x, y in faces[0].eyes] if faces[0].eyes else None
            _draw_face(annotated, box, eyes)
            crop = pipeline.face_crop(image, size)
            aligned = options.align and faces[0].eyes is not None
            caption = (
                f"{options.detector} detector: {len(faces)} face(s), the largest used"
                f"{', rotated so the eyes are level' if aligned else ' (no eyes found: not rotated)'}"
            )
        elif no_face == "whole_frame":
            crop = full_image_crop(image, size)
            caption = f"{options.detector} detector found no face: the whole image is used"
        else:
            crop = None
            caption = f"{options.detector} detector found no face: the model does not use this image"
    if crop is not None and grey:
        crop = to_grey(crop)
    model_caption = f"model input: {size}×{size}{' grey' if grey else ''}"
    if options.detector != "none":
        model_caption += f", face box enlarged by {options.margin:.0%}"
    return FacePreview(modality, annotated, crop, caption, model_caption, found)


def display_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy at most :data:`DISPLAY_SIDE` pixels a side (what the page shows), and its scale."""
    import cv2  # OpenCV comes with the face pipeline, which is optional

    scale = min(1.0, DISPLAY_SIDE / max(image.shape[:2]))
    if scale == 1.0:
        return image.copy(), scale
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _draw_face(image: np.ndarray, box: tuple[int, ...], eyes: Any) -> None:
    import cv2  # OpenCV comes with the face pipeline, which is optional

    x, y, w, h = box
    thickness = max(1, round(min(image.shape[:2]) / 150))
    cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), thickness)
    for ex, ey in eyes or ():
        cv2.circle(image, (round(ex), round(ey)), 2 * thickness + 1, (255, 60, 0), -1)
