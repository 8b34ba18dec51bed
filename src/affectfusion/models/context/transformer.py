"""Self-attention over the conversation's utterances (EmoBERTa / CoMPM read the dialogue so;
here over fused utterance vectors), optionally causal for live use."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.models.context.base import CONTEXTS, ContextStage
from affectfusion.models.context.base import Options as BaseOptions


@CONTEXTS.register("transformer")
class TransformerContext(ContextStage):
    """Self-attention over each conversation's utterances (learned positions); causal: earlier ones only.

    With ``causal`` an utterance attends only to itself and earlier ones, so live use gets the same
    outputs as a replay of the whole conversation."""

    class Options(BaseOptions):
        layers: int = Field(1, ge=1, le=64)
        heads: int = Field(4, ge=1, le=64, description="attention heads (1 if they do not divide the fused size)")
        causal: bool = Field(False, description="attend to earlier utterances only (live use)")
        max_positions: int = Field(
            128, ge=1, le=65_536, description="learned positions; later utterances share the last one"
        )

    options: Options

    def __init__(
        self, dim: int, dropout: float, speakers: int, options: Options, modalities: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(dim, dropout, speakers, options, modalities)
        heads = options.heads if dim % options.heads == 0 else 1
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, options.layers, enable_nested_tensor=False)
        self.positions = nn.Embedding(options.max_positions, dim)
        self.norm = nn.LayerNorm(dim)
        self.causal = options.causal

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:
        length = x.shape[1]
        pos = torch.arange(length, device=x.device).clamp(max=self.positions.num_embeddings - 1)
        attn = None
        if self.causal:
            attn = torch.triu(torch.ones(length, length, dtype=torch.bool, device=x.device), diagonal=1)
        out = self.encoder(x + self.positions(pos), mask=attn, src_key_padding_mask=~mask)
        return self.norm(out)
