"""Encoders for pretrained speech backbones: a learnable softmax layer weighting over frozen hidden states, and
a frozen backbone fine-tuned with LoRA on the waveform.

``layer_weighted`` reads the ``[T, L * D]`` frames of ``hf_audio`` with ``layers: all`` and learns one
softmax weight per layer (SUPERB's weighted sum, as EmoBox uses), then projects each frame to
``hidden_dim`` and pools over time (masked mean, or attention pooling).

``hf_audio_lora`` reads the waveform (``[T, 1]`` from ``hf_waveform``), runs a local Hugging Face speech
model (wav2vec2, HuBERT, WavLM, data2vec-audio) with LoRA adapters on its attention projections, weights
its layers the same way and pools. Like ``hf_lora`` for text, only the adapters, the layer weights and the
projection are trained and saved; the frozen base comes from the local folder when a checkpoint loads.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import ENCODERS, Encoded, Encoder, Options, masked_mean
from affectfusion.models.hf_text import BASE, _drop_frozen, _query_value_modules, add_lora_adapters


class LayerWeights(nn.Module):
    """Softmax-normalised weights over ``layers`` stacked hidden states: ``[..., L, D] -> [..., D]``."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))  # uniform at the start, as in SUPERB

    def forward(self, stacked: Tensor) -> Tensor:
        w = torch.softmax(self.logits, 0).to(stacked.dtype)
        return (stacked * w[:, None]).sum(-2)

    def weights(self) -> Tensor:
        """The learned weight of each layer (they sum to 1): which layers the task found useful."""
        return torch.softmax(self.logits.detach(), 0)


class _Pool(nn.Module):
    """Per-frame projection to ``hidden_dim`` and pooling over valid frames (mean or learned attention)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, pooling: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))
        self.score = nn.Linear(out_dim, 1) if pooling == "attention" else None

    def forward(self, frames: Tensor, mask: Tensor) -> Encoded:
        seq = self.proj(self.norm(frames))
        if self.score is None:
            return Encoded(seq=seq, mask=mask, pooled=masked_mean(seq, mask))
        scores = self.score(seq).squeeze(-1).masked_fill(~mask, torch.finfo(seq.dtype).min)
        weights = torch.softmax(scores, 1) * mask.any(1, keepdim=True).to(seq.dtype)  # 0 for a missing modality
        return Encoded(seq=seq, mask=mask, pooled=(seq * weights.unsqueeze(-1)).sum(1))


class _PooledOptions(Options):
    pooling: Literal["mean", "attention"] = Field("mean", description="over frames: masked mean or attention")


@ENCODERS.register("layer_weighted")
class LayerWeightedEncoder(Encoder):
    """Softmax layer weighting over [T, L*D] frames (hf_audio layers: all), projection, pooling."""

    # For the registry-wide contract tests: options that build a working instance on features of any size
    # (one "layer"; tests/test_backbones.py covers real weighting over several).
    example_options: ClassVar[dict] = {"layers": 1}

    class Options(_PooledOptions):
        layers: int = Field(ge=1, description="hidden states stacked per frame (L); the feature size must be L * D")

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        if in_dim % options.layers:
            raise AffectFusionError(
                f"layer_weighted encoder: the features have {in_dim} values per frame, "
                f"not a multiple of layers ({options.layers}); use hf_audio with layers: all"
            )
        self.layers, self.dim = options.layers, in_dim // options.layers
        self.mix = LayerWeights(options.layers)
        self.pool = _Pool(self.dim, out_dim, dropout, options.pooling)

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        return self.pool(self.mix(x.unflatten(-1, (self.layers, self.dim))), mask)


@ENCODERS.register("hf_audio_lora")
class HFAudioLoRAEncoder(Encoder):
    """Frozen local Hugging Face speech model + trainable LoRA adapters and layer weights (pair with hf_waveform)."""

    # The waveform must reach the model unchanged: no input standardisation for this modality.
    raw_input: ClassVar[bool] = True
    # For the registry-wide contract tests: a waveform ([T, 1] samples) into a tiny speech model folder.
    example_input: ClassVar[str] = "waveform"

    class Options(_PooledOptions):
        model_path: str = Field(description="local Hugging Face speech model folder (wav2vec2, HuBERT, WavLM, ...)")
        r: int = Field(8, ge=1, description="LoRA rank")
        alpha: float = Field(16.0, gt=0, description="LoRA scaling alpha (update scaled by alpha / r)")
        lora_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA branch")
        target_modules: list[str] | None = Field(
            None,
            description="module names that get adapters; default: the attention q_proj and v_proj "
            "(WavLM: its feed-forward intermediate_dense and output_dense)",
        )

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        if in_dim != 1:
            raise AffectFusionError(
                f"the hf_audio_lora encoder reads the waveform ([T, 1] features from the hf_waveform extractor), "
                f"but this modality has {in_dim}-dimensional features"
            )
        self.base = _lora_speech_model(options)
        config = self.base.config
        self.mix = LayerWeights(config.num_hidden_layers + 1)
        self.pool = _Pool(config.hidden_size, out_dim, dropout, options.pooling)
        self._register_state_dict_hook(_drop_frozen)
        self.register_load_state_dict_pre_hook(_fill_frozen)

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        wave = x[..., 0] * mask.to(x.dtype)
        model: Any = self.base.get_base_model()  # the transformers model: its length helper is not on nn.Module
        out = self.base(input_values=wave, attention_mask=mask.long(), output_hidden_states=True)
        frames = self.mix(torch.stack(out.hidden_states, dim=-2))  # [B, F, D]
        lengths = model._get_feat_extract_output_lengths(mask.sum(1))
        frame_mask = torch.arange(frames.shape[1], device=x.device)[None] < lengths[:, None]
        return self.pool(frames, frame_mask)

    def frozen_keys(self) -> set[str]:
        """State-dict keys (relative to this module) of everything not trained: base weights and buffers."""
        trainable = {BASE + n for n, p in self.base.named_parameters() if p.requires_grad}
        return {BASE + k for k in self.base.state_dict()} - trainable


def _lora_speech_model(options: HFAudioLoRAEncoder.Options) -> Any:
    """The frozen speech model from the local folder, wrapped with LoRA adapters (Any: as in hf_text)."""
    # deferred: the extractor package (every extractor) loads only when a speech backbone is built
    from affectfusion.extract.hf_audio import load_audio_backbone, model_folder

    folder = model_folder(options.model_path, "hf_audio_lora")
    _, base = load_audio_backbone(folder, "hf_audio_lora")
    if base.config.model_type == "whisper":
        raise AffectFusionError("hf_audio_lora reads waveforms; for Whisper use the frozen hf_audio extractor")
    # LayerDrop skips whole layers in training, so the layer weighting would see fewer hidden states.
    base.config.layerdrop = 0.0
    # SpecAugment's time masks (10 frames) fail on clips under 0.2 s; the frozen base and LoRA dropout regularise.
    base.config.apply_spec_augment = False
    return add_lora_adapters(base, options, options.target_modules or _default_targets(base, folder), folder)


def _default_targets(base: Any, folder: object) -> list[str]:
    """The attention query/value projections; for WavLM its feed-forward layers instead: WavLM's attention
    reads the projection weights directly (F.multi_head_attention_forward), so adapters there would never run."""
    if base.config.model_type == "wavlm":
        return ["intermediate_dense", "output_dense"]
    return _query_value_modules(base, folder)


def _fill_frozen(module: nn.Module, state: dict, prefix: str, *_args: object) -> None:
    """Checkpoints hold no base weights: take them from the freshly loaded local model."""
    assert isinstance(module, HFAudioLoRAEncoder)
    base = module.base.state_dict()
    for key in module.frozen_keys():
        state.setdefault(prefix + key, base[key.removeprefix(BASE)])
