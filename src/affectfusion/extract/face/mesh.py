"""``face_mesh``: geometry of MediaPipe's 478-point face mesh (mouth, eyes, brows, head pose), in units
of the inter-ocular distance so that it does not depend on image size or distance to the camera.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.examples import Example
from affectfusion.extract.face.detect import FaceExtractor, FaceReport, NoFaceError
from affectfusion.extract.face.images import load_image, mediapipe_module
from affectfusion.quiet import native_output_silenced

FACE_MESH_FEATURES = (
    "mouth_open",
    "mouth_width",
    "smile",
    "eye_open_left",
    "eye_open_right",
    "brow_raise_left",
    "brow_raise_right",
    "yaw",
    "pitch",
    "roll",
)


MESH_MAX_FACES = 20  # meshes found (and counted) per image; the largest is read

# MediaPipe face-mesh landmark indices; "left"/"right" are the subject's.
_LIP_UPPER, _LIP_LOWER, _MOUTH_RIGHT, _MOUTH_LEFT = 13, 14, 61, 291
_EYE_RIGHT_CORNERS, _EYE_LEFT_CORNERS = (33, 133), (362, 263)
_EYE_RIGHT_LIDS, _EYE_LEFT_LIDS = (159, 145), (386, 374)
_BROW_RIGHT, _BROW_LEFT = (70, 63, 105, 66, 107), (300, 293, 334, 296, 336)


def face_mesh_features(points: np.ndarray) -> np.ndarray:
    """The :data:`FACE_MESH_FEATURES` of one face from its mesh landmarks ``[N, 3]`` in pixels.

    Distances are divided by the inter-ocular distance (between the eye centres); vertical offsets are
    measured along the face's own up axis (perpendicular to the eye line), so head roll does not leak
    into smile or brow features. Head pose (degrees) comes from the face's 3-D axes: x = right eye ->
    left eye outer corner, y = mouth-corner midpoint -> eye midpoint (made orthogonal to x), z = their
    cross product (out of the face). yaw > 0: the face turns towards the image's right; pitch > 0: it
    looks up; roll > 0: the eye line rises towards the image's right (counter-clockwise on screen).
    The eye-mouth axis gives a median pitch of 1 degree on 200 mostly frontal LFW photos (muxspace);
    forehead -> chin would give -7, its points not lying in the face's frontal plane.
    """
    p2 = points[:, :2]
    eye_r = p2[list(_EYE_RIGHT_CORNERS)].mean(axis=0)
    eye_l = p2[list(_EYE_LEFT_CORNERS)].mean(axis=0)
    iod = float(np.linalg.norm(eye_l - eye_r))
    if iod < 1e-6:
        raise ExtractionError("face mesh has coincident eyes")
    across = (eye_l - eye_r) / iod
    down = np.array([-across[1], across[0]])  # the face's downward axis in the image (y points down)

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(p2[a] - p2[b])) / iod

    def height(pt: np.ndarray) -> float:  # position along the face's down axis, in IODs
        return float(pt @ down) / iod

    lip_centre = (p2[_LIP_UPPER] + p2[_LIP_LOWER]) / 2
    corners = (p2[_MOUTH_RIGHT] + p2[_MOUTH_LEFT]) / 2
    geometry = [
        dist(_LIP_UPPER, _LIP_LOWER),
        dist(_MOUTH_RIGHT, _MOUTH_LEFT),
        height(lip_centre) - height(corners),  # > 0: corners above the lip centre
        dist(*_EYE_LEFT_LIDS),
        dist(*_EYE_RIGHT_LIDS),
        height(eye_l) - height(p2[list(_BROW_LEFT)].mean(axis=0)),
        height(eye_r) - height(p2[list(_BROW_RIGHT)].mean(axis=0)),
    ]
    # Camera frame with y up and z towards the viewer (MediaPipe: y down, smaller z = closer).
    cam = points * np.array([1.0, -1.0, -1.0])
    x_axis = cam[_EYE_LEFT_CORNERS[1]] - cam[_EYE_RIGHT_CORNERS[0]]
    x_axis /= np.linalg.norm(x_axis)
    y_axis = cam[[*_EYE_RIGHT_CORNERS, *_EYE_LEFT_CORNERS]].mean(axis=0) - cam[[_MOUTH_RIGHT, _MOUTH_LEFT]].mean(axis=0)
    y_axis -= (y_axis @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    yaw = math.degrees(math.atan2(z_axis[0], z_axis[2]))
    pitch = math.degrees(math.atan2(z_axis[1], math.hypot(z_axis[0], z_axis[2])))
    roll = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    return np.array([*geometry, yaw, pitch, roll], dtype=np.float32)


@EXTRACTORS.register("face_mesh")
class FaceMeshExtractor(FaceExtractor):
    """MediaPipe face-mesh geometry (10-d): mouth/eye openness, smile, brow raise, head pose (yaw/pitch/roll).

    The largest of the (up to :data:`MESH_MAX_FACES`) meshes found is read; its report says how many
    there were. Without a face, ``no_face`` decides: ``error`` or ``missing_modality`` (``whole_frame``
    does not apply: without a face there is no mesh).
    """

    example = Example("face_image", dim=10)

    kind = "image"
    packages: ClassVar[tuple[str, ...]] = ("mediapipe", "pillow")

    class Options(Extractor.Options):
        min_confidence: float = Field(0.5, gt=0, lt=1, description="MediaPipe face detection threshold")
        no_face: Literal["error", "missing_modality"] = Field(
            "error",
            description="when no face is found: error (the image fails) or missing_modality (the image counts as "
            "absent; other modalities still predict)",
        )

    options: Options

    def setup(self) -> None:
        with native_output_silenced():
            self._mesh = mediapipe_module().solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=MESH_MAX_FACES,
                refine_landmarks=True,
                min_detection_confidence=self.options.min_confidence,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # its graph starts (and logs) on the first image

    def meshes(self, image: np.ndarray) -> list[np.ndarray]:
        """Mesh landmarks ``[478, 3]`` per face in pixels (z on the x scale, as MediaPipe defines it),
        largest face first.

        The image is padded to a square (bottom/right) first: MediaPipe's legacy graph projects
        landmarks correctly only for a square region of interest.
        """
        height, width = image.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), dtype=np.uint8)
        square[:height, :width] = image
        result = self._mesh.process(square)
        found = [
            np.array([(p.x * side, p.y * side, p.z * side) for p in face.landmark], dtype=np.float64)
            for face in result.multi_face_landmarks or []
        ]
        return sorted(found, key=lambda pts: -np.prod(np.ptp(pts[:, :2], axis=0)))

    def extract_with_faces(self, item: RawInput) -> tuple[np.ndarray, dict[str, Any]]:
        self.ensure_ready()
        image = load_image(item)
        meshes = self.meshes(image)
        policy = self.options.no_face
        if not meshes:
            raise NoFaceError(item, FaceReport(False, 0, None, None, policy, "mediapipe", None))
        (x0, y0), (x1, y1) = meshes[0][:, :2].min(axis=0), meshes[0][:, :2].max(axis=0)
        height, width = image.shape[:2]
        x0, y0 = max(0, round(x0)), max(0, round(y0))
        box = (x0, y0, min(width, round(x1)) - x0, min(height, round(y1)) - y0)
        report = FaceReport(True, len(meshes), 0, box, policy, "mediapipe", "face")
        return face_mesh_features(meshes[0]), report.to_dict()
