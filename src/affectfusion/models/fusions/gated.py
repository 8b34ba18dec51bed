"""Gated fusion: per-modality sigmoid gates computed from all embeddings (P2/P5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    presence,
    stack_pooled,
)


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Per-modality sigmoid gate vectors from all embeddings, gated embeddings summed (P2/P5).

    The gates see the concatenation of the (zeroed) embeddings plus the presence flags, so a gate
    knows which modalities are missing; a missing modality's gate is forced to 0 and the sum runs
    over present modalities only (out_dim = H). ``modality_weights`` is each modality's mean gate,
    normalised over the present ones; ``gates`` is the full ``[B, M, H]`` gate tensor.
    """

    class Options(BaseOptions):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        n = len(self.modalities)
        self.gate = nn.Linear(n * dim + n, n * dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        gates = torch.sigmoid(self.gate(torch.cat([h.flatten(1), p.to(h.dtype)], dim=1))).view_as(h)
        gates = torch.where(p.unsqueeze(-1), gates, 0.0)
        strength = gates.mean(-1)
        weights = strength / strength.sum(1, keepdim=True).clamp(min=torch.finfo(h.dtype).tiny)
        fused = self.drop((gates * h).sum(1))
        return FusionOutput(fused, {"modality_weights": weights, "gates": gates})
