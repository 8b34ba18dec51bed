"""Tensor Fusion Network (TFN, Zadeh et al. 2017): outer product of ``[proj(h_m); 1]``."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    append_one,
    presence,
    stack_pooled,
)


@FUSIONS.register("tensor")
class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al. 2017): outer product of ``[proj(h_m); 1]`` over modalities.

    The appended 1 keeps every unimodal and lower-order term in the product; a missing modality
    contributes ``[0, ..., 0, 1]`` so the product reduces to the other modalities' terms. The
    flattened ``(rank_dim + 1) ** M`` product goes through dropout and a linear map to out_dim.
    """

    class Options(BaseOptions):
        rank_dim: int = Field(16, ge=1, description="size each modality is projected to before the product")
        out_dim: int | None = Field(None, ge=1, description="output size (default: model.hidden_dim)")

    max_product = 2**20

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        size = (options.rank_dim + 1) ** len(self.modalities)
        if size > self.max_product:
            raise AffectFusionError(
                f"tensor fusion: (model.fusion.options.rank_dim + 1) ** {len(self.modalities)} modalities = "
                f"{size} features is too large; lower rank_dim or use low_rank"
            )
        self.proj = nn.ModuleList(nn.Linear(dim, options.rank_dim) for _ in self.modalities)
        self.drop = nn.Dropout(dropout)
        self.out_dim = options.out_dim or dim
        self.out = nn.Linear(size, self.out_dim)

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        product = h.new_ones(h.shape[0], 1)
        for i, proj in enumerate(self.proj):
            z = append_one(torch.where(p[:, i, None], proj(h[:, i]), 0.0))
            product = torch.einsum("bi,bj->bij", product, z).flatten(1)
        return FusionOutput(self.out(self.drop(product)))
