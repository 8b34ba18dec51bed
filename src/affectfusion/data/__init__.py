"""Dataset adapters (registered by name) and the data model they produce."""

from __future__ import annotations

from affectfusion.config import DataConfig
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Batch, Collator, ModalitySpec, MultimodalDataset, Sample
from affectfusion.registry import validate_options

__all__ = [
    "DATASETS",
    "Batch",
    "Collator",
    "DatasetAdapter",
    "ModalitySpec",
    "MultimodalDataset",
    "Sample",
    "build_adapter",
]


def build_adapter(data: DataConfig) -> DatasetAdapter:
    cls = DATASETS.get(data.adapter)
    opts = validate_options(cls, data.options, "data.options")
    return cls(opts)
