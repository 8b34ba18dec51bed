"""The context stage: fused utterance vectors ``[B, F]`` in, context-aware vectors ``[B, out_dim]`` out.

Rows of a batch are utterances; a :class:`ConversationIndex` says which window and position each
sits at. A strategy sees them as padded conversations ``[C, L, F]`` with a mask, so one written
for sequences (GRU, self-attention) needs no bookkeeping; :meth:`ContextStage.forward` scatters
rows in and gathers them back. Without an index (a single utterance, or a dataset that was not
grouped), every row is a conversation of its own. A stage that reads each modality's utterance
sequence itself (``reads_streams``) also gets the per-modality vectors, padded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from affectfusion.data.types import ConversationIndex
from affectfusion.registry import Registry


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Streams:
    """Each modality's own utterance vectors beside the fused one: ``values[m]`` is ``[..., H_m]``
    (rows, or padded conversations), ``present[m]`` is ``[...]`` bool (False = the utterance lacks m)."""

    values: dict[str, Tensor]
    present: dict[str, Tensor]


class ContextStage(nn.Module):
    """Base class: subclasses define ``Options``, set ``out_dim`` and implement :meth:`contextualise`.

    ``modalities`` (name -> embedding size) is for stages that read each modality (``reads_streams``);
    the others ignore it."""

    Options: ClassVar[type[BaseModel]] = Options
    reads_streams: ClassVar[bool] = False

    def __init__(
        self, dim: int, dropout: float, speakers: int, options: BaseModel, modalities: Mapping[str, int] | None = None
    ) -> None:
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

    def contextualise_streams(self, x: Tensor, mask: Tensor, streams: Streams | None) -> Tensor:
        """What a ``reads_streams`` stage implements: :meth:`contextualise` plus the padded
        per-modality streams (``[C, L, H_m]`` and ``[C, L]``; None when the caller has none)."""
        return self.contextualise(x, mask)

    def forward(self, x: Tensor, index: ConversationIndex | None, streams: Streams | None = None) -> Tensor:
        if index is None:
            index = single_utterances(x.shape[0], x.device)
        if self.speaker_embedding is not None:
            x = x + self.speaker_embedding(index.speaker.clamp(max=self.max_speakers))
        c = int(index.conversation.max()) + 1 if x.shape[0] else 0
        length = int(index.position.max()) + 1 if x.shape[0] else 0
        rows = (index.conversation, index.position)

        def pad(v: Tensor) -> Tensor:
            out = v.new_zeros(c, length, *v.shape[1:])
            out[rows] = v
            return out

        mask = pad(torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
        if not self.reads_streams:
            return self.contextualise(pad(x), mask)[rows]
        padded = None
        if streams is not None:
            padded = Streams(
                {m: pad(v) for m, v in streams.values.items()}, {m: pad(p.bool()) for m, p in streams.present.items()}
            )
        return self.contextualise_streams(pad(x), mask, padded)[rows]

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

    @staticmethod
    def example_streams(dim: int = 8, seed: int = 0) -> Streams:
        """Three modalities' vectors for :meth:`example_input`'s rows; ``b`` is missing from two rows
        (one of them conversation 0's second utterance) and ``c`` from conversation 1's only one."""
        g = torch.Generator().manual_seed(seed + 1)
        values = {m: torch.randn(8, dim, generator=g) for m in "abc"}
        present = {m: torch.ones(8, dtype=torch.bool) for m in "abc"}
        present["b"][torch.tensor([2, 6])] = False
        present["c"][3] = False
        return Streams(values, present)


def single_utterances(n: int, device: torch.device) -> ConversationIndex:
    """Every row its own conversation of length one, speaker unknown."""
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    scored = torch.ones(n, dtype=torch.bool, device=device)
    return ConversationIndex(torch.arange(n, device=device), zeros, zeros, scored)


CONTEXTS: Registry[type[ContextStage]] = Registry(
    "context stage",
    modules=(  # each registers its stage when the registry is first read
        "affectfusion.models.context.gru",
        "affectfusion.models.context.mmmu_ba",
        "affectfusion.models.context.none",
        "affectfusion.models.context.transformer",
    ),
)
