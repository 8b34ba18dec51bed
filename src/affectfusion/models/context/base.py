"""The context stage: fused utterance vectors ``[B, F]`` in, context-aware vectors ``[B, out_dim]`` out.

Rows of a batch are utterances; a :class:`ConversationIndex` says which window and position each
sits at. A strategy sees them as padded conversations ``[C, L, F]`` with a mask, so one written
for sequences (GRU, self-attention) needs no bookkeeping; :meth:`ContextStage.forward` scatters
rows in and gathers them back. Without an index (a single utterance, or a dataset that was not
grouped), every row is a conversation of its own.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from affectfusion.data.types import ConversationIndex
from affectfusion.registry import Registry


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextStage(nn.Module):
    """Base class: subclasses define ``Options``, set ``out_dim`` and implement :meth:`contextualise`."""

    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, dim: int, dropout: float, speakers: int, options: BaseModel) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = dim
        # Speaker numbers are per window (0 = unknown, 1.. by first appearance), so they generalise
        # to unseen people: the model learns "same speaker as two turns ago", not "Ross".
        self.speaker_embedding = nn.Embedding(speakers + 1, dim) if speakers > 0 else None
        self.max_speakers = speakers

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``x [C, L, F]`` with ``mask [C, L]`` (True = real utterance) -> ``[C, L, out_dim]``."""
        raise NotImplementedError

    def forward(self, x: Tensor, index: ConversationIndex | None) -> Tensor:
        if index is None:
            index = single_utterances(x.shape[0], x.device)
        if self.speaker_embedding is not None:
            x = x + self.speaker_embedding(index.speaker.clamp(max=self.max_speakers))
        c = int(index.conversation.max()) + 1 if x.shape[0] else 0
        length = int(index.position.max()) + 1 if x.shape[0] else 0
        padded = x.new_zeros(c, length, x.shape[-1])
        padded[index.conversation, index.position] = x
        mask = torch.zeros(c, length, dtype=torch.bool, device=x.device)
        mask[index.conversation, index.position] = True
        return self.contextualise(padded, mask)[index.conversation, index.position]

    @staticmethod
    def example_input(dim: int = 8, seed: int = 0) -> tuple[Tensor, ConversationIndex]:
        """Three conversations of lengths 4, 1 and 3 in shuffled row order, two speakers and one
        unknown: what the registry-wide contract test feeds every strategy."""
        g = torch.Generator().manual_seed(seed)
        conv = torch.tensor([0, 2, 0, 1, 2, 0, 2, 0])
        pos = torch.tensor([0, 1, 1, 0, 0, 2, 2, 3])
        speaker = torch.tensor([1, 2, 2, 0, 1, 1, 1, 2])
        scored = torch.ones(8, dtype=torch.bool)
        return torch.randn(8, dim, generator=g), ConversationIndex(conv, pos, speaker, scored)


def single_utterances(n: int, device: torch.device) -> ConversationIndex:
    """Every row its own conversation of length one, speaker unknown."""
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    scored = torch.ones(n, dtype=torch.bool, device=device)
    return ConversationIndex(torch.arange(n, device=device), zeros, zeros, scored)


CONTEXTS: Registry[type[ContextStage]] = Registry(
    "context stage",
    modules=(  # each registers its stage when the registry is first read
        "affectfusion.models.context.gru",
        "affectfusion.models.context.none",
        "affectfusion.models.context.transformer",
    ),
)
