"""Interfaces shared by encoders and fusion strategies.

An encoder maps one modality ``[B, T, D]`` to an :class:`Encoded` (a sequence ``[B, T', H]``
with its mask, and a pooled ``[B, H]``). A fusion strategy maps a dict of those, plus a
per-modality presence mask, to a :class:`FusionOutput`. All modalities share the embedding size
``H = model.hidden_dim`` so that any strategy can follow any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from affectfusion.registry import Registry


@dataclass
class Encoded:
    seq: Tensor  # [B, T, H]
    mask: Tensor  # [B, T] bool, True = real step (all False for a missing modality)
    pooled: Tensor  # [B, H]


@dataclass
class FusionOutput:
    fused: Tensor  # [B, out_dim]
    # Whatever the strategy can explain, each [B, ...]: "modality_weights" is [B, M] in
    # ``modalities`` order (0 for missing ones); attention maps, gates, ...
    explanations: dict[str, Tensor] = field(default_factory=dict)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Encoder(nn.Module):
    """Base class for per-modality encoders. Subclasses define ``Options`` and ``forward``."""

    Options: ClassVar[type[BaseModel]] = Options
    # True when forward reads its input only through the masked mean over time: the model then
    # averages the raw steps before standardising them (the same, standardisation being affine)
    # and hands over one step [B, 1, D], so long sequences cost one pass.
    reads_mean: bool = False

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: BaseModel) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:  # pragma: no cover - abstract
        raise NotImplementedError


class Fusion(nn.Module):
    """Base class for fusion strategies.

    ``forward(inputs, present)``: ``inputs[m]`` is the :class:`Encoded` of modality m for every
    name in ``self.modalities``; ``present[m]`` is ``[B]`` bool. A strategy must give a finite
    output for any non-empty subset of present modalities and must not let a missing modality's
    values influence the result.
    """

    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: BaseModel) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.dim = dim
        self.out_dim = dim  # subclasses set their real output size

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:  # pragma: no cover
        raise NotImplementedError


# Each module registers its components when the registry is first read: a new one is a module plus its line here.
ENCODERS: Registry[type[Encoder]] = Registry(
    "encoder",
    modules=(
        "affectfusion.models.cnn2d",
        "affectfusion.models.encoders",
        "affectfusion.models.hf_audio",
        "affectfusion.models.hf_text",
    ),
)
FUSIONS: Registry[type[Fusion]] = Registry(
    "fusion strategy",
    modules=(
        "affectfusion.models.fusions.concat",
        "affectfusion.models.fusions.cross_attention",
        "affectfusion.models.fusions.gated",
        "affectfusion.models.fusions.low_rank",
        "affectfusion.models.fusions.tensor",
        "affectfusion.models.fusions.transformer",
        "affectfusion.models.fusions.weighted",
    ),
)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over time of ``x [B, T, H]`` where ``mask [B, T]``; zero for rows with no valid step.

    One batched product instead of a masked copy of ``x`` (half the time on long sequences), in
    ``x``'s own dtype as an elementwise mask would be, whatever autocast is on."""
    m = mask.to(x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        total = torch.bmm(m.unsqueeze(1), x).squeeze(1)
    return total / m.sum(1, keepdim=True).clamp(min=1.0)
