"""Tiny random Hugging Face speech and vision backbones, built from their configs and saved like a
user's local folders (nothing is downloaded): the examples of the ``hf_*`` extractors, their tests and
``benchmarks/gpu_check.py`` run on them. The weights are random: they exercise code paths, not accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEECH_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")
VISION_FAMILIES = ("clip", "siglip", "vit", "dinov2")
_CONV = {"conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
_SMALL: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def save_speech_model(family: str, folder: Path) -> Path:
    """A 2-layer, 32-wide random model of ``family`` with its feature extractor, in ``folder``."""
    # torch and transformers: heavy, loaded only when a tiny model is built
    import torch
    import transformers as t

    torch.manual_seed(0)
    model: t.PreTrainedModel
    processor: t.FeatureExtractionMixin
    if family == "whisper":
        config = t.WhisperConfig(
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=64,
            max_source_positions=100,
            max_target_positions=16,
            vocab_size=64,
            num_mel_bins=80,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
            begin_suppress_tokens=None,
            suppress_tokens=None,
        )
        model = t.WhisperModel(config)
        processor = t.WhisperFeatureExtractor(chunk_length=2)  # 2 s window = 2 * max_source_positions mel frames
    else:
        configs = {
            "wav2vec2": (t.Wav2Vec2Config, t.Wav2Vec2Model),
            "hubert": (t.HubertConfig, t.HubertModel),
            "wavlm": (t.WavLMConfig, t.WavLMModel),
            "data2vec-audio": (t.Data2VecAudioConfig, t.Data2VecAudioModel),
        }
        config_cls, model_cls = configs[family]
        extra: dict[str, Any] = {}
        if family == "data2vec-audio":
            extra |= {"conv_pos_kernel_size": 15, "num_conv_pos_embeddings": 3}
        if family != "wav2vec2":  # wav2vec2 keeps the base model's group norm (batched without padding)
            extra |= {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
        model = model_cls(config_cls(**{**_SMALL, **_CONV, **extra}))
        processor = t.Wav2Vec2FeatureExtractor(return_attention_mask=family != "wav2vec2", do_normalize=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_vision_model(family: str, folder: Path) -> Path:
    """A 2-layer random image encoder of ``family`` (32 px input, 8 px patches) with its image processor."""
    # torch and transformers: heavy, loaded only when a tiny model is built
    import torch
    import transformers as t

    torch.manual_seed(0)
    model: t.PreTrainedModel
    processor: t.ImageProcessingMixin
    vision = {**_SMALL, "image_size": 32, "patch_size": 8}
    if family == "clip":
        text = {**_SMALL, "vocab_size": 64, "max_position_embeddings": 16}
        model = t.CLIPModel(t.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        processor = t.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    elif family == "siglip":
        text = {**_SMALL, "vocab_size": 64, "max_position_embeddings": 16}
        model = t.SiglipModel(t.SiglipConfig(text_config=text, vision_config=vision))
        processor = t.SiglipImageProcessor(size={"height": 32, "width": 32})
    elif family == "vit":
        model = t.ViTModel(t.ViTConfig(**vision))
        processor = t.ViTImageProcessor(size={"height": 32, "width": 32})
    else:
        model = t.Dinov2Model(t.Dinov2Config(**vision))
        processor = t.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
