"""Checks of one input against :class:`~affectfusion.serve.inputs.InputLimits`, read from headers only.

Each check reads what a file *claims* (audio frames, channels and rate; image width and height;
video duration and frames; a ``.npy`` header's dtype and shape) and refuses it with
:class:`~affectfusion.serve.inputs.InputRejected` (413 naming the limit, 422 for an unusable file)
before anything is decoded in full, so a small upload cannot make the server allocate gigabytes.
The Predictor runs them for ``predict`` and the dashboard; the REST API runs them again outside
the model lock, so a refused upload never waits for, or holds, the model.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from affectfusion.inputs import KIND_HINTS
from affectfusion.serve.inputs import InputLimits, InputRejected

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float: what converts to float32 as a number


def over(label: str, what: str, limit: str, value: float | int) -> InputRejected:
    shown = value if isinstance(value, int) else f"{value:g}"
    return InputRejected(413, f"{label}: {what} is over the limit {limit}={shown}")


def _at(label: str) -> str:
    return f"{label}: " if label else ""


def check_text(value: str, limits: InputLimits, label: str = "text") -> None:
    if len(value) > limits.max_text_chars:
        raise over(label, f"{len(value)} characters", "max_text_chars", limits.max_text_chars)


def check_audio(path: Path, limits: InputLimits, label: str = "audio") -> None:
    """Duration, channels and rate from the audio header (soundfile reads only the header here)."""
    import soundfile as sf  # the audio extractors' reader; imported only when audio is served

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputRejected(
            422, f"{label}: not a readable audio file ({detail}); expected {KIND_HINTS['audio']}"
        ) from None
    if info.channels > limits.max_audio_channels:
        raise over(label, f"{info.channels} channels", "max_audio_channels", limits.max_audio_channels)
    if info.samplerate > limits.max_audio_rate:
        raise over(label, f"a rate of {info.samplerate} Hz", "max_audio_rate", limits.max_audio_rate)
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > limits.max_audio_seconds:
        raise over(label, f"{seconds:.1f} s of audio", "max_audio_seconds", limits.max_audio_seconds)


def check_image(path: Path, limits: InputLimits, label: str = "image") -> None:
    """Width x height from the image header (Pillow decodes nothing until asked)."""
    from PIL import Image, UnidentifiedImageError  # the face pipeline's reader

    try:
        with warnings.catch_warnings():  # Pillow warns above ~89 MP; the limit below decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        return  # not an image at all: the face pipeline's reader says so in its own words
    if width * height > limits.max_image_pixels:
        raise over(label, f"{width}x{height} pixels", "max_image_pixels", limits.max_image_pixels)


def check_video(path: Path, limits: InputLimits, label: str = "video") -> None:
    """Duration and frame count from the container (PyAV opens it without decoding frames)."""
    import av  # the video extractor's reader

    try:
        with av.open(str(path)) as container:
            seconds = container.duration / 1_000_000 if container.duration else 0.0
            frames = 0
            if container.streams.video:
                stream = container.streams.video[0]
                frames = stream.frames or 0
                if not frames and stream.average_rate and seconds:
                    frames = int(seconds * float(stream.average_rate))
    except (av.error.FFmpegError, OSError, ValueError):
        raise InputRejected(422, f"{label}: not a readable video; expected {KIND_HINTS['video']}") from None
    if seconds > limits.max_video_seconds:
        raise over(label, f"{seconds:.1f} s of video", "max_video_seconds", limits.max_video_seconds)
    if frames > limits.max_video_frames:
        raise over(label, f"{frames} frames", "max_video_frames", limits.max_video_frames)


def _npy_header(f: BinaryIO, label: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, SyntaxError, TypeError) as e:
        raise InputRejected(422, f"{label}: expected {KIND_HINTS['features']} ({str(e).splitlines()[0]})") from None
    return tuple(shape), dtype


def check_array_header(
    shape: tuple[int, ...], dtype: np.dtype, limits: InputLimits, label: str, ndims: tuple[int, ...] = (1, 2)
) -> None:
    """The dtype and shape an array claims, before any of it is allocated."""
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
        what = {"c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(dtype.kind, str(dtype))
        raise InputRejected(422, f"{_at(label)}{what} values (dtype {dtype}); expected real numbers")
    if len(shape) not in ndims:
        dims = " or ".join(f"{n}-d" for n in ndims)
        raise InputRejected(422, f"{_at(label)}shape {shape}; expected a {dims} array")
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        raise InputRejected(422, f"{_at(label)}the array is empty (shape {shape})")
    if size > limits.max_feature_values:
        raise over(label, f"shape {shape} ({size} values)", "max_feature_values", limits.max_feature_values)


def as_features(x: Any, limits: InputLimits, label: str, dim: int | None = None) -> np.ndarray:
    """An array (from JSON or a file) as float32 features ``[D]`` or ``[T, D]``: real, finite, the right size."""
    x = np.asarray(x)
    check_array_header(x.shape, x.dtype, limits, label)
    if dim is not None and x.shape[-1] != dim:
        raise InputRejected(422, f"{_at(label)}features of dimension {x.shape[-1]}, the model expects {dim}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputRejected(
            422, f"{_at(label)}expected {KIND_HINTS['features']} with finite values (float32: within ±3.4e38)"
        )
    return x


def read_features(path: Path, limits: InputLimits, label: str | None = None, dim: int | None = None) -> np.ndarray:
    """A ``.npy`` file as features: dtype and shape checked from its header before it is read."""
    label = label or str(path)
    try:
        with Path(path).open("rb") as f:
            shape, dtype = _npy_header(f, label)
            check_array_header(shape, dtype, limits, label)
            if dim is not None and shape[-1] != dim:
                raise InputRejected(422, f"{label}: features of dimension {shape[-1]}, the model expects {dim}")
            f.seek(0)
            x = np.load(f, allow_pickle=False)
    except OSError as e:
        raise InputRejected(422, f"{label}: cannot read ({e.strerror or e})") from None
    except ValueError as e:  # truncated data
        raise InputRejected(422, f"{label}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    return as_features(x, limits, label, dim)


def check_signal(path: Path, limits: InputLimits, label: str = "signal") -> None:
    """The ``data`` array's header inside the ``.npz`` (its size and dtype), before it is read."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "data.npy" not in names or "sfreq.npy" not in names:
                raise InputRejected(422, f"{label}: expected {KIND_HINTS['signal']}")
            with z.open("data.npy") as f:
                shape, dtype = _npy_header(f, f"{label} data")  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError):
        raise InputRejected(422, f"{label}: not a .npz file; expected {KIND_HINTS['signal']}") from None
    check_array_header(shape, dtype, limits, f"{label} data", ndims=(1, 2))


def check_npy(path: Path, limits: InputLimits, label: str = "features") -> None:
    """A ``.npy`` file's dtype and shape from its header (what :func:`read_features` checks first)."""
    try:
        with Path(path).open("rb") as f:
            shape, dtype = _npy_header(f, label)
    except OSError as e:
        raise InputRejected(422, f"{label}: cannot read ({e.strerror or e})") from None
    check_array_header(shape, dtype, limits, label)


CHECKS = {
    "audio": check_audio,
    "image": check_image,
    "video": check_video,
    "signal": check_signal,
    "features": check_npy,
}


def check_file(kind: str, path: Path, limits: InputLimits, label: str | None = None) -> None:
    """Refuse a media file whose header promises more work than ``limits`` allow (no-op for other kinds)."""
    check = CHECKS.get(kind)
    if check is not None:
        check(Path(path), limits, label or str(path))
