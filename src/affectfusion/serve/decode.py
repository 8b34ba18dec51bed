"""Checks of one input against :class:`~affectfusion.serve.input_limits.InputLimits`, read from headers only.

Each check reads what a file *claims* (audio frames, channels and rate; image width and height;
video size, and duration and frames counted over its packets, which are demuxed but not decoded;
every ``.npy`` header and zip entry size of an EEG ``.npz``; a ``.npy`` header's dtype and shape)
and refuses it with
:class:`~affectfusion.serve.input_limits.InputRejected` (413 naming the limit, 422 for an unusable file)
before anything is decoded in full, so a small upload cannot make the server allocate gigabytes.
The Predictor runs them for ``predict`` and the dashboard; the REST API runs them again outside
the model lock, so a refused upload never waits for, or holds, the model. Each returns the
:class:`~affectfusion.serve.input_limits.Work` it admitted, so a request's files can be bounded together.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from affectfusion.data.types import Signal
from affectfusion.inputs import KIND_HINTS
from affectfusion.serve.input_limits import InputLimits, InputRejected, Work

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float: what converts to float32 as a number


def over(label: str, what: str, limit: str, value: float | int) -> InputRejected:
    shown = value if isinstance(value, int) else f"{value:g}"
    return InputRejected(413, f"{label}: {what} is over the limit {limit}={shown}")


def _at(label: str) -> str:
    return f"{label}: " if label else ""


def check_text(value: str, limits: InputLimits, label: str = "text") -> None:
    if len(value) > limits.max_text_chars:
        raise over(label, f"{len(value)} characters", "max_text_chars", limits.max_text_chars)


def check_audio(path: Path, limits: InputLimits, label: str = "audio") -> Work:
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
    return Work(seconds=seconds)


def check_image(path: Path, limits: InputLimits, label: str = "image") -> Work:
    """Width x height from the image header (Pillow decodes nothing until asked)."""
    from PIL import Image, UnidentifiedImageError  # the face pipeline's reader

    try:
        with warnings.catch_warnings():  # Pillow warns above ~89 MP; the limit below decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        return Work()  # not an image at all: the face pipeline's reader says so in its own words
    if width * height > limits.max_image_pixels:
        raise over(label, f"{width}x{height} pixels", "max_image_pixels", limits.max_image_pixels)
    return Work(pixels=width * height)


def check_video(path: Path, limits: InputLimits, label: str = "video") -> Work:
    """Frame size from the stream header, then duration and frames counted over the packets.

    The packets are demuxed, not decoded (a fraction of a second for the largest upload), so a
    container that states no duration, or a wrong one, is measured all the same; counting stops
    as soon as a limit is passed.
    """
    import av  # the video extractor's reader

    try:
        with av.open(str(path)) as container:
            width = height = 0
            if container.streams.video:
                ctx = container.streams.video[0].codec_context
                width, height = ctx.width or 0, ctx.height or 0
            if width * height > limits.max_video_pixels:
                raise over(label, f"{width}x{height} pixels per frame", "max_video_pixels", limits.max_video_pixels)
            seconds, frames = _demuxed(container, limits)
    except (av.error.FFmpegError, OSError, ValueError):
        raise InputRejected(422, f"{label}: not a readable video; expected {KIND_HINTS['video']}") from None
    if seconds > limits.max_video_seconds:
        raise over(label, f"{seconds:.1f} s of video", "max_video_seconds", limits.max_video_seconds)
    if frames > limits.max_video_frames:
        raise over(label, f"{frames} frames", "max_video_frames", limits.max_video_frames)
    megapixels = frames * width * height / 1e6
    if megapixels > limits.max_video_megapixels:
        what = f"{frames} frames of {width}x{height} ({megapixels:.0f} megapixels)"
        raise over(label, what, "max_video_megapixels", limits.max_video_megapixels)
    return Work(seconds=seconds)


def _demuxed(container: Any, limits: InputLimits) -> tuple[float, int]:
    """The longest track's seconds and the video track's packets (frames), stopping past a limit."""
    video = container.streams.video[0] if container.streams.video else None
    spans: dict[int, list[float]] = {}  # stream index -> [first time, last end, summed durations]
    frames, seconds = 0, 0.0
    for packet in container.demux():
        base = packet.time_base or packet.stream.time_base
        if base is None:
            continue
        duration = float((packet.duration or 0) * base)
        stamp = packet.pts if packet.pts is not None else packet.dts
        span = spans.setdefault(packet.stream.index, [np.inf, -np.inf, 0.0])
        span[2] += duration
        if stamp is not None:
            t = float(stamp * base)
            span[0], span[1] = min(span[0], t), max(span[1], t + duration)
        if video is not None and packet.stream.index == video.index and packet.size:
            frames += 1
        seconds = max((max(e - s, d) if e > s else d for s, e, d in spans.values()), default=0.0)
        if seconds > limits.max_video_seconds or frames > limits.max_video_frames:
            break
    return seconds, frames


def _npy_header(f: IO[bytes], label: str) -> tuple[tuple[int, ...], np.dtype]:
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


def check_signal(path: Path, limits: InputLimits, label: str = "signal") -> Work:
    """Every member of the ``.npz`` checked before any is read (:func:`_signal_members`)."""
    with _open_zip(path, label) as z:
        _signal_members(z, limits, label)
    return Work()


def read_signal(path: Path, limits: InputLimits, label: str | None = None) -> Signal:
    """An EEG ``.npz`` as a :class:`Signal`: members checked first, each read at most the bytes its header
    declares (a zip entry that inflates to more is refused, whatever its zip header said)."""
    label = label or str(path)
    with _open_zip(path, label) as z:
        members = _signal_members(z, limits, label)
        arrays = {}
        for key in ("data", "sfreq"):
            shape, dtype, offset = members[key]
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            try:
                with z.open(f"{key}.npy") as f:
                    raw = f.read(offset + nbytes + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as e:  # a bad CRC, a corrupt stream
                raise InputRejected(422, f"{label} {key}: not readable ({e})") from None
            if len(raw) != offset + nbytes:
                raise InputRejected(422, f"{label} {key}: {len(raw) - offset} bytes of data, its header says {nbytes}")
            arrays[key] = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    sfreq = float(arrays["sfreq"].reshape(-1)[0])
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise InputRejected(422, f"{label} sfreq: {sfreq:g}; expected a positive sampling rate in Hz")
    return Signal(arrays["data"].astype(np.float64), sfreq)


def _open_zip(path: Path, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InputRejected(422, f"{label}: not a .npz file; expected {KIND_HINTS['signal']}") from None


def _signal_members(z: zipfile.ZipFile, limits: InputLimits, label: str) -> dict[str, tuple]:
    """Name -> (shape, dtype, header length) of every ``.npy`` member: each entry's uncompressed size
    (zip header) must be what its ``.npy`` header declares, and both within ``max_feature_values``."""
    cap = limits.max_feature_values * 8 + 2**16  # float64 values and the largest .npy header
    members: dict[str, tuple] = {}
    infos = z.infolist()
    if len(infos) > 64:
        raise InputRejected(422, f"{label}: {len(infos)} zip members; expected {KIND_HINTS['signal']}")
    for info in infos:
        key, name = info.filename.removesuffix(".npy"), f"{label} {info.filename}"
        if info.file_size > cap:
            what = f"{info.file_size} bytes uncompressed (~{info.file_size // 8} float64 values)"
            raise over(name, what, "max_feature_values", limits.max_feature_values)
        try:
            with z.open(info) as f:
                shape, dtype = _npy_header(f, name)
                offset = f.tell()
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:  # encrypted
            raise InputRejected(422, f"{name}: not readable ({e})") from None
        ndims = (0, 1) if key == "sfreq" else (1, 2)
        check_array_header(shape, dtype, limits, name, ndims=ndims)
        values = int(np.prod(shape, dtype=np.int64))
        if key == "sfreq" and values != 1:
            raise InputRejected(422, f"{name}: shape {shape}; expected one number (the sampling rate in Hz)")
        if info.file_size != offset + values * dtype.itemsize:
            raise InputRejected(
                422, f"{name}: {info.file_size} bytes uncompressed, its .npy header declares {values} x {dtype}"
            )
        members[key] = (shape, dtype, offset)
    if "data" not in members or "sfreq" not in members:
        raise InputRejected(422, f"{label}: expected {KIND_HINTS['signal']}")
    return members


def check_npy(path: Path, limits: InputLimits, label: str = "features") -> Work:
    """A ``.npy`` file's dtype and shape from its header (what :func:`read_features` checks first)."""
    try:
        with Path(path).open("rb") as f:
            shape, dtype = _npy_header(f, label)
    except OSError as e:
        raise InputRejected(422, f"{label}: cannot read ({e.strerror or e})") from None
    check_array_header(shape, dtype, limits, label)
    return Work()


def add_work(total: Work, work: Work, limits: InputLimits) -> Work:
    """``total + work``: the work of one request's files so far, refused (413) past ``max_request_*``."""
    seconds, pixels = total.seconds + work.seconds, total.pixels + work.pixels
    if seconds > limits.max_request_media_seconds:
        what, limit, value = (
            f"{seconds:.0f} s of audio/video",
            "max_request_media_seconds",
            limits.max_request_media_seconds,
        )
    elif pixels > limits.max_request_pixels:
        what, limit, value = f"{pixels} image pixels", "max_request_pixels", limits.max_request_pixels
    else:
        return Work(seconds, pixels)
    raise InputRejected(413, f"the request's files hold {what} or more, over the limit {limit}={value:g}; split it")


CHECKS = {
    "audio": check_audio,
    "image": check_image,
    "video": check_video,
    "signal": check_signal,
    "features": check_npy,
}


def check_file(kind: str, path: Path, limits: InputLimits, label: str | None = None) -> Work:
    """Refuse a media file whose header promises more work than ``limits`` allow; else the work it admits."""
    check = CHECKS.get(kind)
    return check(Path(path), limits, label or str(path)) if check is not None else Work()
