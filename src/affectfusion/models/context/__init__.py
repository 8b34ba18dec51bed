"""Context stages, one module per strategy (importing this package registers them all)."""

from affectfusion.models.context import gru, none, transformer  # noqa: F401
from affectfusion.models.context.base import CONTEXTS, ContextStage

__all__ = ["CONTEXTS", "ContextStage"]
