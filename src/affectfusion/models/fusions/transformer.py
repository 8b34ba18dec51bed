"""Multimodal Transformer (MulT, Tsai et al. 2019): directional pairwise cross-modal attention."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput, masked_mean
from affectfusion.models.base import Options as BaseOptions
from affectfusion.models.fusions.common import (
    CrossBlock,
    check_heads,
    key_padding,
    presence,
    sinusoid,
    valid_steps,
    zero_invalid,
)


@FUSIONS.register("transformer")
class MulTFusion(Fusion):
    """Multimodal Transformer, MulT (Tsai et al. 2019): directional pairwise cross-modal attention.

    For each target modality and each other source modality, ``layers`` cross-modal blocks let the
    target sequence (with sinusoidal positions) query the source sequence. The streams from present
    sources are averaged (no source present: the target sequence itself), then a self-attention
    layer, masked-mean pool, and the per-modality vectors are concatenated, zero for missing
    modalities (out_dim = M * H). ``attention:<target><-<source>`` is the last cross-modal layer's
    head-averaged attention map ``[B, T_target, T_source]`` (zero where either side is invalid).
    """

    class Options(BaseOptions):
        layers: int = Field(2, ge=1, le=64)
        heads: int = Field(4, ge=1, le=64)

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        check_heads("transformer", dim, options.heads)
        n = len(self.modalities)
        self.cross = nn.ModuleDict(
            {
                f"{t}_{s}": nn.ModuleList(CrossBlock(dim, options.heads, dropout) for _ in range(options.layers))
                for t in range(n)
                for s in range(n)
                if s != t
            }
        )
        self.self_attn = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, options.heads, 2 * dim, dropout, batch_first=True) for _ in range(n)
        )
        self.out_dim = n * dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        valids = [valid_steps(inputs[m], p[:, i]) for i, m in enumerate(self.modalities)]
        seqs = [
            zero_invalid(inputs[m].seq + sinusoid(v.shape[1], self.dim, v.device), v)
            for m, v in zip(self.modalities, valids, strict=True)
        ]
        pooled, explanations = [], {}
        for t, target in enumerate(self.modalities):
            streams, used = [], []
            for s, source in enumerate(self.modalities):
                if s == t:
                    continue
                x = seqs[t]
                for block in self.cross[f"{t}_{s}"].children():
                    x, w = block(x, seqs[s], key_padding(valids[s]))
                streams.append(x)
                used.append(valids[s].any(1))
                both = valids[t].unsqueeze(2) & valids[s].unsqueeze(1)
                explanations[f"attention:{target}<-{source}"] = torch.where(both, w, 0.0)
            x = seqs[t]
            if streams:
                u = torch.stack(used).to(x.dtype)[:, :, None, None]  # [S, B, 1, 1]
                total = u.sum(0)
                x = torch.where(total > 0, (u * torch.stack(streams)).sum(0) / total.clamp(min=1), x)
            x = self.self_attn[t](x, src_key_padding_mask=key_padding(valids[t]))
            pooled.append(masked_mean(x, valids[t]))
        return FusionOutput(torch.cat(pooled, dim=1), explanations)
