"""Audio extractors on synthetic files written here (always) and on a real RAVDESS file (with shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

import affectfusion.extract.audio  # noqa: F401  (registers the audio extractors)
from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, FeatureStore, Item, build_extractor

SR = 16000
RAVDESS_WAV = "ravdess_speech_16k/train/Actor_01/03-01-05-02-01-01-01.wav"
VOWEL_FORMANTS = [(700, 1220, 2600), (300, 2300, 3000), (500, 900, 2400), (350, 800, 2300)]


def tone_and_noise(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic tone in noise: enough signal for every feature, no speech needed."""
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = sum(0.3 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 6)) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def speech_like(n_syllables: int, rate: int = SR) -> np.ndarray:
    """Pulse train through vowel formant filters, one vowel per 250 ms syllable: silero-vad takes it for speech."""
    out = []
    for k in range(n_syllables):
        t = np.arange(rate // 4) / rate
        f0 = 130 * (1 + 0.15 * np.sin(2 * np.pi * 2 * t + k))
        y = (np.diff(np.floor(np.cumsum(f0) / rate), prepend=0) > 0).astype(float)
        for fc in VOWEL_FORMANTS[k % len(VOWEL_FORMANTS)]:
            r, theta = np.exp(-np.pi * 100 / rate), 2 * np.pi * fc / rate
            y = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], y)
        out.append(y / np.abs(y).max() * np.sin(np.pi * t / t[-1]) ** 0.5)
    return (0.5 * np.concatenate(out)).astype(np.float32)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, tone_and_noise(1.5), SR)
    return path


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(1).bytes(4000))
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    return {"corrupt": corrupt, "empty": empty}


def real_wav(shared_data: Path) -> Path:
    path = shared_data / RAVDESS_WAV
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


SHAPES = [
    ("egemaps", {}, None, 88),
    ("egemaps_lld", {}, "frames", 25),
    ("mfcc", {"n_mfcc": 13}, "frames", 13),
    ("mfcc", {"n_mfcc": 13, "deltas": 2}, "frames", 39),
    ("logmel", {"n_mels": 32}, "frames", 32),
]


@pytest.mark.parametrize(("name", "options", "frames", "dim"), SHAPES)
def test_shapes_on_synthetic_wav(wav: Path, name: str, options: dict, frames: str | None, dim: int) -> None:
    x = build_extractor(name, options, "test").extract(wav)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    if frames is None:
        assert x.shape == (dim,)
    else:
        assert x.ndim == 2 and x.shape[1] == dim
        assert abs(x.shape[0] - 150) <= 5  # 1.5 s at a 10 ms hop


@pytest.mark.parametrize(("name", "options", "frames", "dim"), SHAPES)
def test_shapes_on_real_ravdess_wav(shared_data: Path, name: str, options: dict, frames: str | None, dim: int) -> None:
    path = real_wav(shared_data)
    seconds = sf.info(path).duration
    x = build_extractor(name, options, "test").extract(path)
    assert np.isfinite(x).all()
    if frames is None:
        assert x.shape == (dim,)
    else:
        assert x.shape[1] == dim and abs(x.shape[0] - seconds * 100) <= 5


def test_stereo_other_rate_is_mixed_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "stereo_44k.wav"
    x = tone_and_noise(1.0, rate=44100)
    sf.write(path, np.stack([x, -x * 0.5], axis=1), 44100)
    ex = build_extractor("logmel", {"sample_rate": 16000}, "test")
    signal = ex.load(path)
    assert signal.ndim == 1 and abs(signal.size - 16000) <= 1
    np.testing.assert_allclose(signal.std(), (x * 0.25).std(), rtol=0.05)  # mean of the channels


def test_in_memory_signal_and_max_seconds() -> None:
    ex = build_extractor("mfcc", {"n_mfcc": 13, "max_seconds": 0.5}, "test")
    x = ex.extract(Signal(tone_and_noise(2.0)[None, :], SR))
    assert x.shape[1] == 13 and abs(x.shape[0] - 50) <= 3


def test_bad_inputs_fail_alone_in_a_batch(wav: Path, bad_files: dict[str, Path]) -> None:
    for name in ("egemaps", "mfcc"):
        ex = build_extractor(name, {}, "test")
        out = ex.extract_batch([wav, bad_files["corrupt"], bad_files["empty"], wav])
        assert isinstance(out[0], np.ndarray) and isinstance(out[3], np.ndarray)
        corrupt, empty = out[1], out[2]
        assert isinstance(corrupt, ExtractionError) and "corrupt.wav: not a readable audio file" in str(corrupt)
        assert isinstance(empty, ExtractionError) and "empty.wav: audio file has no samples" in str(empty)
        assert "\n" not in str(corrupt) + str(empty)


def test_too_short_audio_is_an_extraction_error() -> None:
    click = Signal(tone_and_noise(0.002), SR)  # shorter than one analysis window
    for name in ("egemaps", "egemaps_lld", "mfcc", "logmel"):
        with pytest.raises(ExtractionError, match=f"too short for {name} features"):
            build_extractor(name, {}, "test").extract(click)
    with pytest.raises(ExtractionError, match="too short"):  # a few frames: too few for deltas
        build_extractor("mfcc", {"deltas": 1}, "test").extract(Signal(tone_and_noise(0.05), SR))


def test_invalid_options_are_config_errors() -> None:
    with pytest.raises(AffectFusionError, match="n_mfcc"):
        build_extractor("mfcc", {"n_mfcc": 50, "n_mels": 40}, "data.extract.audio.options")
    with pytest.raises(AffectFusionError, match="unknown config key"):
        build_extractor("egemaps", {"hop_ms": 10}, "data.extract.audio.options")


def test_feature_store_second_run_computes_nothing(wav: Path, bad_files: dict[str, Path], tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "cache")
    ex = build_extractor("egemaps", {}, "test")
    other = tmp_path / "other.wav"
    sf.write(other, tone_and_noise(1.0, seed=3), SR)
    items = [Item("a", wav), Item("b", other), Item("bad", bad_files["corrupt"], "corrupt.wav")]
    first, r1 = store.run(ex, items, progress=False)
    assert sorted(first) == ["a", "b"] and r1.computed == 2 and r1.cached == 0
    assert [f["id"] for f in r1.failures] == ["bad"]
    second, r2 = store.run(ex, items, progress=False)
    assert r2.computed == 0 and r2.cached == 2 and len(r2.failures) == 1
    np.testing.assert_array_equal(first["a"], second["a"])


def test_vad_trims_leading_silence_of_speech_like_signal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    speech = speech_like(8)  # 2 s
    silence = 0.001 * rng.standard_normal(SR).astype(np.float32)
    path = tmp_path / "silence_then_speech.wav"
    sf.write(path, np.concatenate([silence, speech, silence[: SR // 2]]), SR)
    plain = build_extractor("logmel", {}, "test")
    vad = build_extractor("logmel", {"vad": True}, "test")
    trimmed = vad.load(path)
    assert trimmed.size < 3.5 * SR - 0.8 * SR  # most of the 1.5 s of silence is gone
    assert np.sqrt(np.mean(trimmed[: SR // 10] ** 2)) > 10 * silence.std()  # starts at the speech
    assert vad.extract(path).shape[0] < plain.extract(path).shape[0] - 80


def test_vad_keeps_a_file_without_speech(wav: Path) -> None:
    ex = build_extractor("egemaps_lld", {"vad": True}, "test")
    assert abs(ex.extract(wav).shape[0] - 150) <= 5


def test_vad_on_real_speech_with_added_silence(shared_data: Path, tmp_path: Path) -> None:
    x, rate = sf.read(real_wav(shared_data), dtype="float32")
    path = tmp_path / "padded.wav"
    sf.write(path, np.concatenate([np.zeros(2 * rate, dtype=np.float32), x]), rate)
    ex = build_extractor("mfcc", {"vad": True}, "test")
    trimmed = ex.load(path)
    assert trimmed.size <= x.size  # the 2 s of added silence (and the file's own lead-in) are gone
    assert trimmed.size > 0.5 * x.size
