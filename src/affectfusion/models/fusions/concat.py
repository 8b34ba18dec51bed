"""Concatenation fusions: pooled embeddings side by side, missing ones zeroed (P1 v0), optionally layer-normed."""

from __future__ import annotations

from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    presence,
    stack_pooled,
)


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenation of pooled embeddings, missing ones zeroed (P1 v0); the task head adds the MLP."""

    class Options(BaseOptions):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.out_dim = len(self.modalities) * dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        return FusionOutput(stack_pooled(inputs, self.modalities, p).flatten(1))


@FUSIONS.register("concat_ln")
class ConcatLayerNormFusion(Fusion):
    """Concatenation -> LayerNorm -> dropout (P1 v1): puts modalities of different scale on par."""

    class Options(BaseOptions):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.out_dim = len(self.modalities) * dim
        self.norm = nn.LayerNorm(self.out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        return FusionOutput(self.drop(self.norm(stack_pooled(inputs, self.modalities, p).flatten(1))))
