"""Raw media -> features: registered extractors, a content-addressed feature store, and the step
that fills ``Sample.features`` from ``Sample.raw`` as ``data.extract`` says."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console

from affectfusion.config import DataConfig
from affectfusion.data.types import Sample
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput, extract_inputs
from affectfusion.extract.build import build_extractor, shared_extractor
from affectfusion.extract.engines import Engine, LocalEngine
from affectfusion.extract.store import ExtractionReport, FeatureStore, Item

__all__ = [
    "EXTRACTORS",
    "Engine",
    "ExtractionError",
    "ExtractionReport",
    "Extractor",
    "FeatureStore",
    "Item",
    "LocalEngine",
    "RawInput",
    "apply_extraction",
    "build_extractor",
    "extract_inputs",
    "pack_extracted",
]


def apply_extraction(
    samples: Sequence[Sample],
    data: DataConfig,
    console: Console | None = None,
    progress: bool = True,
    device: str | None = None,
    engine: Engine | None = None,
) -> list[ExtractionReport]:
    """Fill ``features[m]`` from ``raw[m]`` for every modality in ``data.extract`` (cached).

    A sample whose input fails keeps that modality missing; the failure is in the report (under
    ``absent`` when the extractor's options call it an absent modality, e.g. ``no_face: missing_modality``).
    ``engine`` runs the extractors (default: a local pool of ``data.workers`` processes).
    """
    store = FeatureStore(data.cache_dir)
    reports = []
    for modality, component in data.extract.items():
        options = json.dumps(component.options, sort_keys=True)
        extractor = shared_extractor(component.name, options, f"data.extract.{modality}.options", device)
        items = [Item(s.id, s.raw[modality], s.source) for s in samples if modality in s.raw]
        if not items:
            continue
        features, report = store.run(
            extractor, items, workers=data.workers, console=console, progress=progress, engine=engine
        )
        report.absent = [f for f in report.failures if extractor.absent(str(f["error"]))]
        report.failures = [f for f in report.failures if f not in report.absent]
        for s in samples:
            if s.id in features:
                s.features = {**s.features, modality: features[s.id]}  # raw samples hold a dict
        reports.append(report)
    return reports


def pack_extracted(data: DataConfig, console: Console | None = None) -> list[tuple[str, int, str]]:
    """Move the loose cache entries of every extractor in ``data.extract`` into pack files:
    ``(extractor, entries packed, its packs folder)`` for each."""
    store = FeatureStore(data.cache_dir)
    done = []
    for modality, component in data.extract.items():
        options = json.dumps(component.options, sort_keys=True)
        extractor = shared_extractor(component.name, options, f"data.extract.{modality}.options")
        done.append((extractor.name, store.pack(extractor, console), str(store.folder(extractor) / "packs")))
    return done
