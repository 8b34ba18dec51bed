"""No context: each utterance is scored alone (speaker embeddings, if any, still apply)."""

from __future__ import annotations

from torch import Tensor

from affectfusion.models.context.base import CONTEXTS, ContextStage


@CONTEXTS.register("none")
class NoContext(ContextStage):
    """Each utterance alone: the fused vector goes to the heads unchanged."""

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:
        return x
