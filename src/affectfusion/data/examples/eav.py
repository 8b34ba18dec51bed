"""A tiny EAV in the published layout: per subject a v5 .mat EEG file and its one-hot label file,
speaking-trial .wav files and (placeholder) .mp4 names, with the authors' file naming.

Trials come in listen/speak pairs of one emotion, in a shuffled class order, as in the EAV
protocol. Each emotion adds its own rhythm to the EEG (band power differs by class) and its own
pitch and loudness to the speech, so both modalities are learnable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.io import savemat

from affectfusion.data.examples import ExampleSpec

EMOTIONS = ["Neutral", "Sadness", "Anger", "Happiness", "Calmness"]  # label rows 2e (listening), 2e+1 (speaking)
RHYTHMS_HZ = {"Neutral": [6.0], "Sadness": [10.0], "Anger": [21.0], "Happiness": [37.0], "Calmness": [6.0, 10.0]}
PITCH_HZ = {"Neutral": 140.0, "Sadness": 110.0, "Anger": 220.0, "Happiness": 260.0, "Calmness": 125.0}
LOUDNESS = {"Neutral": 0.2, "Sadness": 0.08, "Anger": 0.5, "Happiness": 0.35, "Calmness": 0.12}
EEG_SFREQ, CHANNELS, AUDIO_RATE = 500, 30, 16000


def make_eav(
    root: Path,
    n_subjects: int = 4,
    trials_per_class: int = 4,
    seed: int = 0,
    eeg_seconds: float = 2.0,
    audio_seconds: float = 1.0,
    video: bool = True,
) -> Path:
    """Write ``subject01..`` under ``root`` (``trials_per_class`` listen/speak pairs per emotion); returns ``root``.

    Video files are empty placeholders with the real names (no video codec is needed to test paths).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    n_time = int(eeg_seconds * EEG_SFREQ)
    t = np.arange(n_time) / EEG_SFREQ
    for s in range(1, n_subjects + 1):
        subject = root / f"subject{s:02d}"
        for sub in ("EEG", "Audio", "Video"):
            (subject / sub).mkdir(parents=True, exist_ok=True)
        order = rng.permutation(np.repeat(np.arange(len(EMOTIONS)), trials_per_class))
        n_trials = 2 * len(order)
        seg = np.zeros((n_time, CHANNELS, n_trials), dtype=np.float32)
        label = np.zeros((10, n_trials), dtype=np.uint8)
        seen = dict.fromkeys(EMOTIONS, 0)
        for pair, e in enumerate(order):
            emotion = EMOTIONS[e]
            seen[emotion] += 1
            for condition_row, condition in enumerate(("Listening", "Speaking")):
                k = 2 * pair + condition_row  # 0-based EEG trial; media files use k + 1
                label[2 * e + condition_row, k] = 1
                seg[:, :, k] = _eeg(emotion, t, rng).T
                stem = f"{k + 1:03d}_Trial_{seen[emotion]:02d}_{condition}_{emotion}"
                if condition == "Speaking":
                    sf.write(subject / "Audio" / f"{stem}_aud.wav", _speech(emotion, audio_seconds, rng), AUDIO_RATE)
                if video:
                    (subject / "Video" / f"{stem}.mp4").write_bytes(b"")
        savemat(subject / "EEG" / f"subject{s:02d}_eeg.mat", {"seg1": seg})
        savemat(subject / "EEG" / f"subject{s:02d}_eeg_label.mat", {"label": label})
    return root


def eav(root: Path) -> ExampleSpec:
    """Two subjects with one listen/speak pair per emotion (1 s of EEG); subject 2 is the dev split."""
    make_eav(root, n_subjects=2, trials_per_class=1, eeg_seconds=1.0, audio_seconds=0.5)
    return ExampleSpec("dev", ("emotion", "condition"), {"splits": {"train": [1], "dev": [2]}})


def _eeg(emotion: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[channels, time] in microvolts: 1/f-ish background plus the emotion's rhythms on every channel."""
    noise = np.cumsum(rng.normal(0, 1.0, (CHANNELS, t.size)), axis=1) * 0.3
    noise -= noise.mean(axis=1, keepdims=True)
    x = noise + rng.normal(0, 2.0, (CHANNELS, t.size))
    for f in RHYTHMS_HZ[emotion]:
        amp = rng.uniform(4.0, 6.0, (CHANNELS, 1))
        x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (CHANNELS, 1)))
    return x


def _speech(emotion: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-like harmonic tone with vibrato at the emotion's pitch and loudness, plus noise."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    f0 = PITCH_HZ[emotion] * rng.uniform(0.95, 1.05) * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE
    y = sum(np.sin(h * phase) / h for h in range(1, 6)) * LOUDNESS[emotion]
    return (y + rng.normal(0, 0.005, t.size)).astype(np.float32)
