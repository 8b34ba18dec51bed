"""Weighted fusion: softmax-weighted average of pooled embeddings (P1 v2 dynamic fusion, P2)."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    ModalityWeights,
    presence,
    stack_pooled,
)


@FUSIONS.register("weighted")
class WeightedFusion(Fusion):
    """Softmax-weighted average of pooled embeddings (P1 v2 "dynamic fusion", P2 weighted average).

    The score of a modality is a learned logit plus, with ``dynamic``, a sample-dependent score
    from a small per-modality scorer. The softmax runs over present modalities only, so the
    weights (``modality_weights``, out_dim = H) renormalise when a modality is missing.
    """

    class Options(BaseOptions):
        dynamic: bool = Field(True, description="add a sample-dependent score computed from each embedding")

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.weighting = ModalityWeights(len(self.modalities), dim, options.dynamic)
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        weights = self.weighting(h, p)
        fused = self.drop((weights.unsqueeze(-1) * h).sum(1))
        return FusionOutput(fused, {"modality_weights": weights})
