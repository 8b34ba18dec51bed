"""Raw media -> features: registered extractors, a content-addressed feature store, and the step
that fills ``Sample.features`` from ``Sample.raw`` as ``data.extract`` says."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from affectfusion.config import DataConfig
from affectfusion.data.types import Sample

# Importing the extractor modules registers them.
from affectfusion.extract import audio, face, signal, text, tokens, video  # noqa: F401
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.store import ExtractionReport, FeatureStore, Item
from affectfusion.registry import validate_options

__all__ = [
    "EXTRACTORS",
    "ExtractionError",
    "ExtractionReport",
    "Extractor",
    "FeatureStore",
    "Item",
    "RawInput",
    "apply_extraction",
    "build_extractor",
]


def build_extractor(name: str, options: dict, where: str) -> Extractor:
    cls = EXTRACTORS.get(name)
    return cls(name, validate_options(cls, options, where))


def apply_extraction(
    samples: Sequence[Sample],
    data: DataConfig,
    console: Console | None = None,
    progress: bool = True,
) -> list[ExtractionReport]:
    """Fill ``features[m]`` from ``raw[m]`` for every modality in ``data.extract`` (cached).

    A sample whose input fails keeps that modality missing; the failure is in the report.
    """
    store = FeatureStore(data.cache_dir)
    reports = []
    for modality, component in data.extract.items():
        extractor = build_extractor(component.name, component.options, f"data.extract.{modality}.options")
        items = [Item(s.id, s.raw[modality], s.source) for s in samples if modality in s.raw]
        if not items:
            continue
        features, report = store.run(extractor, items, workers=data.workers, console=console, progress=progress)
        for s in samples:
            if s.id in features:
                s.features[modality] = features[s.id]
        reports.append(report)
    return reports
