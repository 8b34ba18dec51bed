"""bc-LSTM-style context (Poria et al., 2017): a recurrent pass over the conversation's utterances."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from affectfusion.models.context.base import CONTEXTS, ContextStage
from affectfusion.models.context.base import Options as BaseOptions


@CONTEXTS.register("gru")
class GruContext(ContextStage):
    """A GRU over each conversation (bidirectional by default), added residually to the utterance."""

    class Options(BaseOptions):
        layers: int = Field(1, ge=1, le=64, description="stacked GRU layers")
        bidirectional: bool = Field(True, description="read later utterances too; false = causal (live use)")

    options: Options

    def __init__(
        self, dim: int, dropout: float, speakers: int, options: Options, modalities: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(dim, dropout, speakers, options, modalities)
        directions = 2 if options.bidirectional else 1
        self.gru = nn.GRU(
            dim,
            dim // directions if dim % directions == 0 else dim,
            num_layers=options.layers,
            batch_first=True,
            bidirectional=options.bidirectional,
            dropout=dropout if options.layers > 1 else 0.0,
        )
        self.proj = nn.Linear(self.gru.hidden_size * directions, dim)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:
        # Packed by length, so padding never enters the backward direction.
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.norm(x + self.drop(self.proj(out)))
