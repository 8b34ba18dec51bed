"""The ``cross_attention`` fusion strategy: bidirectional cross-modal attention (P1 v2 with 6 layers, P2, P5)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput, masked_mean
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    CrossBlock,
    ModalityWeights,
    check_heads,
    key_padding,
    mean_over_present,
    presence,
    valid_steps,
    zero_invalid,
)


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(Fusion):
    """Bidirectional cross-modal attention (P1 v2 with 6 layers, P2, P5).

    In every layer each modality's sequence (plus a learned modality-type embedding) attends to the
    valid steps of all *other* present modalities; with no other modality present it attends to
    itself. Each modality is masked-mean-pooled and the pooled vectors are *averaged* over present
    modalities (out_dim = H). ``modality_attention [B, M, M]``: row i is how modality i's queries
    split their last-layer attention over the modalities (zero row for a missing modality).
    ``combine: weighted`` replaces the average by learned softmax modality weights (P1 v2's
    dynamic fusion after its cross-modal attention), reported as ``modality_weights``.
    """

    class Options(BaseOptions):
        layers: int = Field(2, ge=1, le=64)
        heads: int = Field(4, ge=1, le=64)
        combine: Literal["mean", "weighted"] = Field("mean", description="how pooled modalities are joined")

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        check_heads("cross_attention", dim, options.heads)
        n = len(self.modalities)
        self.type_emb = nn.Parameter(0.02 * torch.randn(n, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList(CrossBlock(dim, options.heads, dropout) for _ in range(n)) for _ in range(options.layers)
        )
        self.weighting = ModalityWeights(n, dim, dynamic=True) if options.combine == "weighted" else None
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        valids = [valid_steps(inputs[m], p[:, i]) for i, m in enumerate(self.modalities)]
        seqs = [zero_invalid(inputs[m].seq + self.type_emb[i], valids[i]) for i, m in enumerate(self.modalities)]
        # All modalities' steps side by side as one key sequence; owner[s] = modality of key s.
        valid = torch.cat(valids, dim=1)
        owner = torch.cat([torch.full((v.shape[1],), i, device=p.device) for i, v in enumerate(valids)])
        paddings = []
        for i in range(len(self.modalities)):
            others, own = valid & (owner != i), valid & (owner == i)
            has_others = others.any(1, keepdim=True)  # boolean algebra, not torch.where: ONNX Where takes no bools
            paddings.append(key_padding((others & has_others) | (own & ~has_others)))
        for blocks in self.layers:
            kv = torch.cat(seqs, dim=1)
            outs = [block(x, kv, pad) for block, x, pad in zip(blocks.children(), seqs, paddings, strict=True)]
            seqs = [zero_invalid(x, v) for (x, _), v in zip(outs, valids, strict=True)]
        pooled = torch.stack([masked_mean(x, v) for x, v in zip(seqs, valids, strict=True)], dim=1)
        attention = torch.stack(
            [
                masked_mean(w.new_zeros(*w.shape[:2], len(self.modalities)).index_add(2, owner, w), v)
                for (_, w), v in zip(outs, valids, strict=True)
            ],
            dim=1,
        )
        explanations = {"modality_attention": attention}
        if self.weighting is None:
            return FusionOutput(mean_over_present(pooled, p), explanations)
        weights = self.weighting(torch.where(p.unsqueeze(-1), pooled, 0.0), p)
        explanations["modality_weights"] = weights
        return FusionOutput((weights.unsqueeze(-1) * pooled).sum(1), explanations)
