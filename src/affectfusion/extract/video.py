"""Video files -> features, decoded with PyAV: per-frame face expression sequences and audio-track eGeMAPS.

- ``video_faces``: frames sampled at ``fps``, each through the face pipeline (detect, align, crop)
  and the FER2013 CNN of ``fer_cnn`` -> ``[T, D]``; frames without a face are dropped.
- ``video_audio``: the audio track decoded to mono at ``sample_rate`` and passed to the ``egemaps``
  extractor of :mod:`affectfusion.extract.audio` (same options, same 88 functionals), so a video's
  audio gets exactly the features a speech file would.

Decoding is bounded whatever the file claims: frames are converted scaled down to :data:`MAX_SIDE`
(a 4096x4096 clip is never held as full-size RGB), and under a :class:`DecodeBudget` (the server
sets one from its input limits) decoding stops with an error once more seconds of a track, or more
frames, were decoded than allowed -- a container whose header states no duration is caught here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract.audio import EGeMAPSExtractor
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.examples import Example
from affectfusion.extract.face import FER_INPUT_SIZE, FacePipeline, FerModel, FerOptions

MAX_SIDE = 1280  # frames are converted to RGB at most this long on their longer side (1280x720 stays as it is)


@dataclass(frozen=True)
class DecodeBudget:
    """The most one video may decode: seconds of any track, video frames, pixels per frame (None: no bound)."""

    seconds: float | None = None
    frames: int | None = None
    pixels: int | None = None  # a stream may change its frame size after the header

    def check_seconds(self, path: Path, seconds: float, track: str) -> None:
        if self.seconds is not None and seconds > self.seconds:
            raise ExtractionError(
                f"{path}: the {track} track decodes to more than the limit max_video_seconds={self.seconds:g}"
            )

    def check_frames(self, path: Path, frames: int, width: int, height: int) -> None:
        if self.frames is not None and frames > self.frames:
            raise ExtractionError(f"{path}: more than the limit max_video_frames={self.frames} frames decoded")
        if self.pixels is not None and width * height > self.pixels:
            raise ExtractionError(f"{path}: a {width}x{height} frame is over the limit max_video_pixels={self.pixels}")


_BUDGET: ContextVar[DecodeBudget | None] = ContextVar("video_decode_budget", default=None)


@contextmanager
def decode_budget(budget: DecodeBudget) -> Iterator[None]:
    """Bound every video decoded in this thread (context) by ``budget`` while the block runs."""
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def scaled_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``width x height`` shrunk (aspect kept, even sizes) so that its longer side is at most ``max_side``."""
    side = max(width, height)
    if side <= max_side:
        return width, height
    return max(2, round(width * max_side / side) // 2 * 2), max(2, round(height * max_side / side) // 2 * 2)


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise AffectFusionError("video extraction needs PyAV: pip install av") from None
    return av


def _video_path(item: RawInput) -> Path:
    if not isinstance(item, str | Path):
        raise ExtractionError(f"expected a video file path, got {type(item).__name__}")
    path = Path(item)
    if not path.is_file():
        raise ExtractionError(f"{path}: no such video file")
    return path


def _decode_error(path: Path, e: Exception) -> ExtractionError:
    detail = getattr(e, "strerror", None) or (str(e).strip().splitlines() or [type(e).__name__])[0]
    return ExtractionError(f"{path}: not a readable video ({detail})")


def sample_frames(item: RawInput, fps: float, max_frames: int | None = None) -> list[np.ndarray]:
    """RGB frames ``[H, W, 3]`` taken every ``1 / fps`` seconds from the first video stream.

    The frame shown at each sampling time is taken (the first frame whose timestamp reaches it), so a
    variable-frame-rate file is sampled evenly in time, and converted at most :data:`MAX_SIDE` pixels
    long. Decoding stops at ``max_frames``, and with an error past the current :class:`DecodeBudget`.
    """
    av = _av()
    path = _video_path(item)
    budget = _BUDGET.get() or DecodeBudget()
    step = 1.0 / fps
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ExtractionError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start: float | None = None
            next_time = 0.0
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / float(stream.average_rate or 25)
                start = t if start is None else start
                budget.check_frames(path, index + 1, frame.width, frame.height)
                budget.check_seconds(path, t - start, "video")
                if t - start + 1e-6 < next_time:
                    continue
                width, height = scaled_size(frame.width, frame.height)
                frames.append(frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA"))
                while next_time <= t - start + 1e-6:
                    next_time += step
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as e:
        raise _decode_error(path, e) from None
    if not frames:
        raise ExtractionError(f"{path}: no decodable video frames")
    return frames


def decode_audio(item: RawInput, sample_rate: int) -> np.ndarray:
    """The first audio stream as mono float32 at ``sample_rate`` (PyAV/FFmpeg resampling); decoded
    samples are counted, so the current :class:`DecodeBudget` holds whatever the header says."""
    av = _av()
    path = _video_path(item)
    budget = _BUDGET.get() or DecodeBudget()
    chunks: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ExtractionError(f"{path}: no audio track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(container.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
                decoded += frame.samples
                budget.check_seconds(path, decoded / (frame.sample_rate or sample_rate), "audio")
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as e:
        raise _decode_error(path, e) from None
    if not chunks or sum(c.size for c in chunks) == 0:
        raise ExtractionError(f"{path}: audio track has no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)


@EXTRACTORS.register("video_faces")
class VideoFacesExtractor(Extractor):
    """Per-frame FER2013 CNN features of the face in frames sampled at `fps`: [T, D] (faceless frames dropped)."""

    example = Example("face_video", dim=135)

    kind = "video"
    version = "2"  # 2: frames converted at most MAX_SIDE pixels long
    packages: ClassVar[tuple[str, ...]] = ("av", "fer", "ai-edge-litert", "mediapipe", "opencv-python-headless")

    class Options(FerOptions):
        fps: float = Field(2.0, gt=0, description="frames sampled per second of video")
        max_frames: int | None = Field(64, ge=1, description="sample at most this many frames (from the start)")

    options: Options

    def setup(self) -> None:
        self._pipeline = FacePipeline(self.options)
        self._model = FerModel(self.options.output, self.options.flip_average)

    def extract(self, item: RawInput) -> np.ndarray:
        self.ensure_ready()
        frames = sample_frames(item, self.options.fps, self.options.max_frames)
        rows = []
        for frame in frames:
            face = self._pipeline.face_crop(frame, FER_INPUT_SIZE)
            if face is not None:
                rows.append(self._model.features(face))
        if not rows:
            raise ExtractionError(f"{item}: no face in any of the {len(frames)} sampled frames")
        return np.stack(rows)


@EXTRACTORS.register("video_audio")
class VideoAudioExtractor(EGeMAPSExtractor):
    """openSMILE eGeMAPSv02 functionals (88-d) of a video's audio track (decoded with PyAV, mono)."""

    example = Example("face_video", dim=88)

    kind = "video"  # type: ignore[assignment]  # mypy narrows AudioExtractor's kind to "audio"; any kind fits
    packages: ClassVar[tuple[str, ...]] = (*EGeMAPSExtractor.packages, "av")

    def load(self, item: RawInput) -> np.ndarray:
        rate = self.options.sample_rate
        return super().load(Signal(decode_audio(item, rate), float(rate)))
