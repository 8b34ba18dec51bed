"""Model zoo: encoders, fusion strategies and context stages (registered by name) and the model that joins them."""

from affectfusion.models.base import ENCODERS, FUSIONS, Encoded, Encoder, Fusion, FusionOutput
from affectfusion.models.context import CONTEXTS, ContextStage
from affectfusion.models.model import Head, ModelOutput, MultimodalModel

__all__ = [
    "CONTEXTS",
    "ENCODERS",
    "FUSIONS",
    "ContextStage",
    "Encoded",
    "Encoder",
    "Fusion",
    "FusionOutput",
    "Head",
    "ModelOutput",
    "MultimodalModel",
]
