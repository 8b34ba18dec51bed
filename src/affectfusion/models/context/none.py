"""No context: each utterance is scored alone (speaker embeddings, if any, still apply)."""

from __future__ import annotations

from torch import Tensor

from affectfusion.data.types import ConversationIndex
from affectfusion.models.context.base import CONTEXTS, ContextStage, Streams


@CONTEXTS.register("none")
class NoContext(ContextStage):
    """Each utterance alone: the fused vector goes to the heads unchanged."""

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor, index: ConversationIndex | None, streams: Streams | None = None) -> Tensor:
        """The base class's result without its scatter into conversations and gather back (an identity
        here): no shape depends on the data, so the model traces (ONNX export) with any batch size."""
        if self.speaker_embedding is None:
            return x
        speaker = index.speaker.clamp(max=self.max_speakers) if index is not None else x.new_zeros(x.shape[0]).long()
        return x + self.speaker_embedding(speaker)
