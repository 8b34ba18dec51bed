"""Raw media -> features: registered extractors, a content-addressed feature store, and the step
that fills ``Sample.features`` from ``Sample.raw`` as ``data.extract`` says."""

from __future__ import annotations

import functools
import json
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


@functools.lru_cache(maxsize=16)
def _shared_extractor(name: str, options_json: str, where: str) -> Extractor:
    """One extractor (and one loaded model) per setting for the whole process: train, dev and test
    splits are extracted one after another, and a text model should not load three times."""
    return build_extractor(name, json.loads(options_json), where)


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
        options = json.dumps(component.options, sort_keys=True)
        extractor = _shared_extractor(component.name, options, f"data.extract.{modality}.options")
        items = [Item(s.id, s.raw[modality], s.source) for s in samples if modality in s.raw]
        if not items:
            continue
        features, report = store.run(extractor, items, workers=data.workers, console=console, progress=progress)
        for s in samples:
            if s.id in features:
                s.features[modality] = features[s.id]
        reports.append(report)
    return reports
