"""Small example inputs for extractors: what the registry-wide contract test
(``tests/test_extractor_contract.py``) runs every registered extractor on.

Declaring one is a line in the extractor class::

    example = Example("speech_wav", dim=88)

naming one of :data:`INPUTS` (a short text, a 1 s synthetic speech-like WAV, a drawn face image, a 1 s
H.264 clip of that face with an AAC tone, a 4-channel EEG :class:`Signal`) and the feature dimension the
extractor gives on it with its default options (``options`` may set some for the example). Each input
comes with a corrupt one of the same kind, which the extractor must report as an ``ExtractionError``.
A registered extractor without its own ``example`` fails the contract test, so a new one cannot slip
through. Every input is synthetic and written on demand; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from affectfusion.data.examples import media
from affectfusion.data.types import Signal

InputName = Literal["text", "speech_wav", "face_image", "face_video", "eeg_signal"]
EEG_CHANNELS, EEG_SFREQ = 4, 128.0


@dataclass(frozen=True)
class Example:
    """An extractor's example: which input (:data:`INPUTS`), the feature dimension ``D`` of its ``[D]`` or
    ``[T, D]`` output on it, and options that differ from the defaults for the example."""

    input: InputName
    dim: int
    options: dict[str, Any] = field(default_factory=dict)
    # ("speech" | "vision", family): a tiny random model of that family is built and passed as model_path
    model: tuple[str, str] | None = None

    def options_in(self, folder: Path) -> dict[str, Any]:
        """The example's options, with ``model_path`` pointing at its tiny model (built under ``folder`` once)."""
        if self.model is None:
            return dict(self.options)
        # deferred: building a model needs torch and transformers
        from affectfusion.extract.tiny_models import save_speech_model, save_vision_model

        kind, family = self.model
        path = folder / f"tiny_{kind}_{family}"
        if not (path / "config.json").is_file():
            (save_speech_model if kind == "speech" else save_vision_model)(family, path)
        return {**self.options, "model_path": str(path)}

    def make(self, folder: Path) -> str | Path | Signal:
        """The example input, written under ``folder`` if it is a file."""
        return INPUTS[self.input][0](folder)

    def make_corrupt(self, folder: Path) -> str | Path | Signal:
        """An input of the same kind that cannot be turned into features."""
        return INPUTS[self.input][1](folder)


def _text(folder: Path) -> str:
    return "I am so happy to see you again, this is wonderful news!"


def _blank_text(folder: Path) -> str:
    return "   "


def _speech_wav(folder: Path) -> Path:
    """1 s of a voiced-like tone (five harmonics with vibrato around 180 Hz, plus a little noise) at 16 kHz."""
    import soundfile as sf  # media library: only when writing a file

    rng = np.random.default_rng(0)
    t = np.arange(media.SR) / media.SR
    phase = 2 * np.pi * np.cumsum(180.0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / media.SR
    y = 0.3 * sum(np.sin(h * phase) / h for h in range(1, 6)) * np.hanning(t.size) ** 0.25
    path = folder / "speech.wav"
    sf.write(path, (y + 0.003 * rng.standard_normal(t.size)).astype(np.float32), media.SR)
    return path


def _garbage(name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(b"this is not a media file\x00\xff" * 8)
        return path

    return write


def _face_image(folder: Path) -> Path:
    return media.write_face(folder / "face.png")


def _face_video(folder: Path) -> Path:
    return media.write_video(folder / "face.mp4", media.draw_face(128), seconds=1.0)


def _eeg_signal(folder: Path) -> Signal:
    """2 s of 4-channel EEG-like noise with a 10 Hz alpha rhythm."""
    rng = np.random.default_rng(0)
    t = np.arange(int(2 * EEG_SFREQ)) / EEG_SFREQ
    data = rng.normal(0, 2.0, (EEG_CHANNELS, t.size)) + 5 * np.sin(2 * np.pi * 10 * t)
    return Signal(data.astype(np.float32), EEG_SFREQ)


def _broken_eeg_signal(folder: Path) -> Signal:
    data = _eeg_signal(folder).data.copy()
    data[0, 10] = np.nan
    return Signal(data, EEG_SFREQ)


INPUTS: dict[str, tuple[Callable[[Path], str | Path | Signal], Callable[[Path], str | Path | Signal]]] = {
    "text": (_text, _blank_text),
    "speech_wav": (_speech_wav, _garbage("broken.wav")),
    "face_image": (_face_image, _garbage("broken.png")),
    "face_video": (_face_video, _garbage("broken.mp4")),
    "eeg_signal": (_eeg_signal, _broken_eeg_signal),
}
