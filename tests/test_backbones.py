"""Pretrained-backbone extractors and encoders on tiny random models built from their configs: hf_audio for every
speech family, hf_image / hf_video for every vision family, the layer weighting and the LoRA speech encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from affectfusion.config import validate
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, build_extractor
from affectfusion.models.hf_audio import HFAudioLoRAEncoder, LayerWeightedEncoder
from affectfusion.rundir import read_run
from affectfusion.training.checkpoint import load_tensors
from affectfusion.training.loading import load_model
from affectfusion.training.trainer import Trainer
from tests.fixtures_backbones import SPEECH_FAMILIES, VISION_FAMILIES, tiny_speech, tiny_vision  # noqa: F401
from tests.fixtures_media import make_media_table, media_config

SR = 16000


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    out = {}
    for name, seconds in (("long", 1.5), ("short", 0.6), ("tiny", 0.01)):
        out[name] = folder / f"{name}.wav"
        sf.write(out[name], (0.1 * rng.standard_normal(round(seconds * SR))).astype(np.float32), SR)
    return out


def _audio(model: Path, **options):
    return build_extractor("hf_audio", {"model_path": str(model), **options}, "data.extract.audio.options", "cpu")


@pytest.mark.parametrize("family", SPEECH_FAMILIES)
def test_hf_audio_frames_per_family(family: str, tiny_speech, clips: dict[str, Path]) -> None:  # noqa: F811
    model = tiny_speech(family)
    per_second = 50  # every family here: one frame per 20 ms
    last = _audio(model).extract_batch([clips["long"], clips["short"], clips["tiny"]])
    assert isinstance(last[2], ExtractionError) and "too short" in str(last[2])
    for array, seconds in ((last[0], 1.5), (last[1], 0.6)):
        assert array.shape[1] == 32 and abs(array.shape[0] - per_second * seconds) <= 2
    stacked = _audio(model, layers="all").extract_batch([clips["long"], clips["short"]])
    assert [a.shape for a in stacked] == [(last[0].shape[0], 3 * 32), (last[1].shape[0], 3 * 32)]
    np.testing.assert_allclose(stacked[0][:, -32:], last[0], atol=1e-5, err_msg="last of all layers = layers: last")
    single = _audio(model).extract(clips["short"])
    np.testing.assert_allclose(single, last[1], atol=1e-4, err_msg="batched with a mask = alone, unpadded")
    assert _audio(model, layers=1).extract(clips["short"]).shape == single.shape
    assert _audio(model, output="mean").extract(clips["short"]).shape == (32,)


def test_hf_audio_chunks_long_recordings(tiny_speech, clips: dict[str, Path]) -> None:  # noqa: F811
    frames = _audio(tiny_speech("wavlm"), chunk_seconds=0.5).extract(clips["long"])
    assert abs(frames.shape[0] - 75) <= 3, "three 0.5 s windows, ~25 frames each, joined"


def test_hf_audio_errors(tiny_speech, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(AffectFusionError, match="not a folder"):
        _audio(tmp_path / "missing").ensure_ready()
    with pytest.raises(AffectFusionError, match="sample_rate: 16000"):
        _audio(tiny_speech("hubert"), sample_rate=8000).ensure_ready()
    with pytest.raises(AffectFusionError, match="out of range"):
        _audio(tiny_speech("hubert"), layers=7).ensure_ready()
    with pytest.raises(AffectFusionError, match="cannot load"):
        (tmp_path / "empty").mkdir()
        _audio(tmp_path / "empty").ensure_ready()


def test_layer_weighting() -> None:
    enc = LayerWeightedEncoder(3 * 8, 16, 0.0, LayerWeightedEncoder.Options(layers=3, pooling="attention"))
    x = torch.randn(2, 5, 24)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out = enc(x, mask)
    assert out.seq.shape == (2, 5, 16) and out.pooled.shape == (2, 16)
    assert torch.allclose(enc.mix.weights().sum(), torch.tensor(1.0))
    out.pooled.sum().backward()
    assert enc.mix.logits.grad is not None and enc.mix.logits.grad.abs().sum() > 0, "the layer weights learn"
    # A layer with all the weight passes that layer through unchanged.
    with torch.no_grad():
        enc.mix.logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    torch.testing.assert_close(enc.mix(x.unflatten(-1, (3, 8))), x[..., 8:16])
    # Padded frames do not change the pooled vector.
    x2 = x.clone()
    x2[1, 2:] = 100.0
    enc.eval()
    torch.testing.assert_close(enc(x2, mask).pooled[1], enc(x, mask).pooled[1])
    with pytest.raises(AffectFusionError, match="not a multiple of layers"):
        LayerWeightedEncoder(25, 16, 0.0, LayerWeightedEncoder.Options(layers=3))


def _speech_config(tmp_path: Path, extract: dict, encoder: dict) -> dict:
    raw = media_config(make_media_table(tmp_path / "data"), tmp_path / "cache")
    raw["data"]["options"]["inputs"] = {"audio": "audio"}
    raw["data"]["extract"] = {"audio": extract}
    raw["model"]["encoders"] = {"audio": encoder}
    raw["train"].update(epochs=3, device="cpu")
    return raw


def test_layer_weighted_training_on_all_layers(tiny_speech, tmp_path: Path) -> None:  # noqa: F811
    model = str(tiny_speech("wavlm"))
    raw = _speech_config(
        tmp_path,
        {"name": "hf_audio", "options": {"model_path": model, "layers": "all"}},
        {"name": "layer_weighted", "options": {"layers": 3}},
    )
    Trainer(validate(raw), tmp_path / "run").fit()
    weights = load_tensors(tmp_path / "run/checkpoints/last.safetensors")
    logits = weights["encoders.audio.mix.logits"]
    assert logits.shape == (3,) and logits.abs().sum() > 0, "layer weights were trained and saved"


@pytest.mark.parametrize("family", ["hubert", "wavlm"])  # attention adapters; WavLM: feed-forward adapters
def test_lora_speech_encoder_trains_adapters_only(family: str, tiny_speech, tmp_path: Path) -> None:  # noqa: F811
    model = str(tiny_speech(family))
    raw = _speech_config(
        tmp_path,
        {"name": "hf_waveform", "options": {"max_seconds": 1.0}},
        {"name": "hf_audio_lora", "options": {"model_path": model, "r": 4}},
    )
    cfg = validate(raw)
    Trainer(cfg, tmp_path / "run").fit()
    saved = load_tensors(tmp_path / "run/checkpoints/best.safetensors")
    base = [k for k in saved if k.startswith("encoders.audio.base.")]
    assert base and all(".lora_" in k for k in base), "only adapters of the backbone are saved"
    run = read_run(tmp_path / "run")
    loaded = load_model(run)
    enc = loaded.encoders["audio"]
    fresh = HFAudioLoRAEncoder(1, cfg.model.hidden_dim, 0.0, HFAudioLoRAEncoder.Options(model_path=model, r=4))
    now = dict(enc.base.named_parameters())
    for name, p in fresh.base.named_parameters():
        if ".lora_" not in name:
            assert torch.equal(p, now[name]), f"frozen weight {name} changed"
    assert any(p.abs().sum() > 0 for n, p in enc.base.named_parameters() if "lora_B" in n), "adapters trained"
    with pytest.raises(AffectFusionError, match="waveform"):
        HFAudioLoRAEncoder(32, 8, 0.0, HFAudioLoRAEncoder.Options(model_path=model))


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "face.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("family", VISION_FAMILIES)
def test_hf_image_per_family(family: str, tiny_vision, picture: Path, tmp_path: Path) -> None:  # noqa: F811
    folder = str(tiny_vision(family))
    emb = build_extractor("hf_image", {"model_path": folder}, "x", "cpu")
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    good, bad = emb.extract_batch([picture, not_image])
    assert good.shape == ((16,) if family == "clip" else (32,)) and np.isfinite(good).all()
    assert isinstance(bad, ExtractionError) and "not an image" in str(bad)
    patches = build_extractor("hf_image", {"model_path": folder, "output": "patches"}, "x", "cpu").extract(picture)
    assert patches.ndim == 2 and patches.shape[1] == 32 and patches.shape[0] >= 16  # 4x4 patches (+ CLS)


def test_hf_video_per_frame(tiny_vision, tmp_path: Path) -> None:  # noqa: F811
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(20):  # 2 s at 10 fps
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 12, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    ex = build_extractor("hf_video", {"model_path": str(tiny_vision("vit")), "fps": 2.0}, "x", "cpu")
    frames = ex.extract(path)
    assert frames.shape == (4, 32)
    assert not np.allclose(frames[0], frames[-1]), "frames differ, so do their embeddings"
