"""Context stages, one module per strategy (each registers itself when :data:`CONTEXTS` is first read)."""

from affectfusion.models.context.base import CONTEXTS, ContextStage, Streams

__all__ = ["CONTEXTS", "ContextStage", "Streams"]
