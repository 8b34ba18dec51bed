"""Low-rank Multimodal Fusion (LMF, Liu et al. 2018): the TFN product with low-rank factors."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    append_one,
    presence,
    stack_pooled,
)


@FUSIONS.register("low_rank")
class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al. 2018): the TFN product with rank-``rank`` factors.

    ``fused = sum_r w_r * prod_m ([h_m; 1] @ W_m[r]) + b`` never builds the outer product, so it
    scales to many modalities. A missing modality is ``[0, ..., 0, 1]`` and contributes only its
    learned constant row ``W_m[r, -1]``, initialised to 1 so that it starts as a no-op. out_dim = H.
    """

    class Options(BaseOptions):
        rank: int = Field(4, ge=1)

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.factors = nn.ParameterList()
        for _ in self.modalities:
            factor = torch.randn(options.rank, dim + 1, dim) * dim**-0.5
            factor[:, -1] = 1.0
            self.factors.append(nn.Parameter(factor))
        self.rank_weights = nn.Parameter(torch.randn(options.rank) * options.rank**-0.5)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        product = h.new_ones(1)
        for i, factor in enumerate(self.factors):
            product = product * torch.einsum("bd,rdo->bro", append_one(h[:, i]), factor)
        fused = torch.einsum("r,bro->bo", self.rank_weights, product) + self.bias
        return FusionOutput(self.drop(fused))
