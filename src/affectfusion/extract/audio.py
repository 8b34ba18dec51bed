"""Audio extractors: a speech file -> eGeMAPS functionals / low-level descriptors, MFCC or log-mel frames.

Every extractor reads the file with soundfile, mixes it to mono, resamples it (soxr) to its own
``sample_rate``, optionally trims leading and trailing non-speech with silero-vad and cuts it to
``max_seconds``. The heavy libraries (openSMILE, librosa, silero) are imported lazily so that
registering the extractors costs nothing. A file that cannot be read, holds no samples or is too
short for the features raises :class:`ExtractionError` with one line naming the file.
"""

from __future__ import annotations

import importlib
import warnings
from abc import abstractmethod
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.examples import Example

VAD_RATES = (8000, 16000)  # the rates silero-vad runs at


def _require(module: str, package: str) -> ModuleType:
    """Import an optional audio dependency, or say exactly what to install (a config-level error)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AffectFusionError(f"this audio extractor needs the {package!r} package: pip install {package}") from None


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    soxr = _require("soxr", "soxr")
    return soxr.resample(x, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def read_audio(item: RawInput) -> tuple[np.ndarray, int]:
    """A mono float32 signal and its rate from a file path or an in-memory :class:`Signal`."""
    if isinstance(item, Signal):
        data = np.asarray(item.data, dtype=np.float32)
        mono = data if data.ndim == 1 else data.mean(axis=0)
        return np.ascontiguousarray(mono), int(item.sfreq)
    sf = _require("soundfile", "soundfile")
    path = Path(item)
    if not path.is_file():
        raise ExtractionError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExtractionError(f"{path}: not a readable audio file ({detail})") from None
    if data.shape[0] == 0:
        raise ExtractionError(f"{path}: audio file has no samples")
    return np.ascontiguousarray(data.mean(axis=1)), int(rate)


def _name(item: RawInput) -> str:
    return "signal" if isinstance(item, Signal) else str(item)


class AudioExtractor(Extractor):
    """Shared loading: mono mix, resampling, optional VAD trimming, length cap."""

    kind = "audio"
    packages: ClassVar[tuple[str, ...]] = ("soundfile", "soxr", "silero-vad")

    class Options(Extractor.Options):
        sample_rate: int = Field(16000, ge=8000, description="audio is resampled to this rate (Hz) before extraction")
        vad: bool = Field(
            False,
            description="trim leading/trailing non-speech with silero-vad (pauses inside the utterance are kept: "
            "they are part of its prosody); a file with no detected speech is kept whole",
        )
        max_seconds: float | None = Field(None, gt=0, description="keep at most this many seconds (after VAD)")

    options: Options

    def setup(self) -> None:
        """Loads silero-vad's bundled model (no download) when VAD is on."""
        self._vad: Any = None
        if self.options.vad:
            silero = _require("silero_vad", "silero-vad")
            with warnings.catch_warnings():  # its loader uses APIs that torch/importlib deprecate
                warnings.simplefilter("ignore", DeprecationWarning)
                self._vad = silero.load_silero_vad()
            self._speech_timestamps = silero.get_speech_timestamps

    def load(self, item: RawInput) -> np.ndarray:
        """The preprocessed mono signal at ``sample_rate``; raises ExtractionError for unusable input."""
        self.ensure_ready()
        x, rate = read_audio(item)
        if x.size == 0:
            raise ExtractionError(f"{_name(item)}: audio has no samples")
        if not np.isfinite(x).all():
            raise ExtractionError(f"{_name(item)}: audio contains NaN or infinite samples")
        sr = self.options.sample_rate
        x = _resample(x, rate, sr)
        if self._vad is not None:
            x = self._trim_silence(x)
        if self.options.max_seconds is not None:
            x = x[: round(self.options.max_seconds * sr)]
        return x

    def _trim_silence(self, x: np.ndarray) -> np.ndarray:
        # torch is needed only for the optional silero-vad trimming
        import torch

        sr = self.options.sample_rate
        vad_rate = sr if sr in VAD_RATES else 16000
        y = _resample(x, sr, vad_rate)
        with torch.no_grad():
            spans = self._speech_timestamps(torch.from_numpy(y), self._vad, sampling_rate=vad_rate)
        if not spans:
            return x
        start = spans[0]["start"] * sr // vad_rate
        end = -(-spans[-1]["end"] * sr // vad_rate)  # ceil: never cut the last speech sample
        return x[start:end]

    def extract(self, item: RawInput) -> np.ndarray:
        x = self.load(item)
        feats = self.features(x)
        if feats.size == 0 or not np.isfinite(feats).all():
            raise ExtractionError(
                f"{_name(item)}: audio too short for {self.name} features ({x.size / self.options.sample_rate:.3f} s)"
            )
        return feats

    @abstractmethod
    def features(self, x: np.ndarray) -> np.ndarray:
        """Features of a preprocessed mono signal at ``sample_rate``."""


class _OpenSmileExtractor(AudioExtractor):
    """openSMILE eGeMAPSv02 at one feature level."""

    packages: ClassVar[tuple[str, ...]] = (*AudioExtractor.packages, "opensmile")
    level: ClassVar[str]

    def setup(self) -> None:
        super().setup()
        opensmile = _require("opensmile", "opensmile")
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=getattr(opensmile.FeatureLevel, self.level)
        )

    def features(self, x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # "segment too short" becomes NaN, reported by extract()
            warnings.simplefilter("ignore", UserWarning)
            df = self._smile.process_signal(x, self.options.sample_rate)
        return df.to_numpy(dtype=np.float32)


@EXTRACTORS.register("egemaps")
class EGeMAPSExtractor(_OpenSmileExtractor):
    """openSMILE eGeMAPSv02 functionals: one 88-d vector per file."""

    example = Example("speech_wav", dim=88, options={"vad": True})  # silero-vad runs too

    level = "Functionals"

    def features(self, x: np.ndarray) -> np.ndarray:
        return super().features(x)[0]


@EXTRACTORS.register("egemaps_lld")
class EGeMAPSLLDExtractor(_OpenSmileExtractor):
    """openSMILE eGeMAPSv02 low-level descriptors: [frames, 25], 10 ms hop, 20/60 ms windows."""

    example = Example("speech_wav", dim=25)

    level = "LowLevelDescriptors"


class _FrameOptions(AudioExtractor.Options):
    win_ms: float = Field(25.0, gt=0, description="analysis window (ms); the FFT size is the next power of two")
    hop_ms: float = Field(10.0, gt=0, description="frame hop (ms)")
    n_mels: int = Field(64, ge=1, description="mel bands")
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = Field(None, gt=0, description="highest mel frequency (default: sample_rate / 2)")
    cmvn: bool = Field(False, description="subtract each coefficient's per-file mean (removes channel/speaker offsets)")


class _LibrosaExtractor(AudioExtractor):
    packages: ClassVar[tuple[str, ...]] = (*AudioExtractor.packages, "librosa")
    options: _FrameOptions

    def setup(self) -> None:
        super().setup()
        self._librosa = _require("librosa", "librosa")

    def _mel_power(self, x: np.ndarray) -> np.ndarray:
        """Mel power spectrogram ``[n_mels, frames]`` with the configured window and hop.

        A signal shorter than one window gives no frames (reported as too short), not one padded frame.
        """
        o = self.options
        win = max(1, round(o.win_ms * o.sample_rate / 1000))
        hop = max(1, round(o.hop_ms * o.sample_rate / 1000))
        if x.size < win:
            return np.empty((o.n_mels, 0), dtype=np.float32)
        n_fft = 1 << (win - 1).bit_length()
        return self._librosa.feature.melspectrogram(
            y=x,
            sr=o.sample_rate,
            n_fft=n_fft,
            hop_length=hop,
            win_length=win,
            n_mels=o.n_mels,
            fmin=o.fmin,
            fmax=o.fmax,
            power=2.0,
        )

    def _finish(self, frames: np.ndarray) -> np.ndarray:
        """``[D, frames]`` -> ``[frames, D]`` float32, per-file mean removed if ``cmvn``."""
        out = frames.T.astype(np.float32)
        return out - out.mean(axis=0, keepdims=True) if self.options.cmvn else out


@EXTRACTORS.register("mfcc")
class MFCCExtractor(_LibrosaExtractor):
    """librosa MFCC sequence [frames, n_mfcc * (1 + deltas)]."""

    example = Example("speech_wav", dim=20)

    class Options(_FrameOptions):
        n_mels: int = Field(40, ge=1, description="mel bands the cepstrum is computed from")
        n_mfcc: int = Field(20, ge=1, description="cepstral coefficients per frame")
        deltas: int = Field(0, ge=0, le=2, description="1 = append deltas, 2 = also delta-deltas")

        @model_validator(mode="after")
        def _check(self) -> MFCCExtractor.Options:
            if self.n_mfcc > self.n_mels:
                raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
            return self

    options: Options

    def features(self, x: np.ndarray) -> np.ndarray:
        o = self.options
        db = self._librosa.power_to_db(self._mel_power(x), top_db=None)
        mfcc = self._librosa.feature.mfcc(S=db, n_mfcc=o.n_mfcc)
        blocks = [mfcc]
        # delta() needs at least `width` (9) frames; shorter files get no deltas -> reported as too short.
        if o.deltas and mfcc.shape[1] >= 9:
            blocks += [self._librosa.feature.delta(mfcc, order=k) for k in range(1, o.deltas + 1)]
        elif o.deltas:
            return np.empty((0, o.n_mfcc * (1 + o.deltas)), dtype=np.float32)
        return self._finish(np.concatenate(blocks, axis=0))


@EXTRACTORS.register("logmel")
class LogMelExtractor(_LibrosaExtractor):
    """librosa log-mel spectrogram sequence [frames, n_mels] in dB (absolute, floored at -100 dB)."""

    example = Example("speech_wav", dim=64)

    class Options(_FrameOptions):
        pass

    options: Options

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._finish(self._librosa.power_to_db(self._mel_power(x), ref=1.0, amin=1e-10, top_db=None))
