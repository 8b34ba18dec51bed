"""Dataset adapters (registered by name) and the data model they produce."""

from __future__ import annotations

from affectfusion.config import DataConfig

# Importing the adapter modules registers them.
from affectfusion.data import (  # noqa: F401
    daic_woz,
    eav,
    feature_folder,
    images,
    media_table,
    mmsa,
    mosi,
    speech,
    synthetic,
    synthetic_conversation,
    text_corpora,
)
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
