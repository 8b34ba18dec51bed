"""Dataset adapters (registered by name) and the data model they produce."""

from __future__ import annotations

from pathlib import Path

from affectfusion.config import DataConfig, RunConfig

# Importing the adapter modules registers them.
from affectfusion.data import (  # noqa: F401
    daic_woz,
    eav,
    feature_folder,
    images,
    media_table,
    mosi,
    speech,
    synthetic,
    text_corpora,
)
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.tasks import encode_targets
from affectfusion.data.types import Batch, Collator, ModalitySpec, MultimodalDataset, Sample
from affectfusion.errors import AffectFusionError
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
    "load_dataset",
]


def build_adapter(data: DataConfig) -> DatasetAdapter:
    cls = DATASETS.get(data.adapter)
    opts = validate_options(cls, data.options, "data.options")
    return cls(opts)


def extract_features(cfg: RunConfig, samples: list[Sample], where: str) -> list[Sample]:
    """Raw media -> features (cached); samples left with no modality at all are set aside."""
    from rich.console import Console

    from affectfusion.extract import apply_extraction

    console = Console(stderr=True)
    reports = apply_extraction(samples, cfg.data, console, progress=cfg.train.progress)
    for r in reports:
        if r.computed or r.failures:
            console.print(f"{where}: {r.summary()} (report: {r.folder}/failures.csv)", highlight=False)
    kept = [s for s in samples if s.features]
    if not kept:
        raise AffectFusionError(f"{where}: no sample could be turned into features (see the failure reports)")
    if len(kept) < len(samples):
        console.print(f"{where}: {len(samples) - len(kept)} samples have no usable modality and are left out")
    return kept


def load_dataset(
    cfg: RunConfig,
    split: str,
    root: str | Path | None = None,
    modalities: dict[str, ModalitySpec] | None = None,
) -> MultimodalDataset:
    """Load, encode and check one split. ``root`` overrides ``cfg.data.root`` (``test --data``).

    Passing the trained model's ``modalities`` checks feature dimensions against it.
    """
    adapter = build_adapter(cfg.data)
    root = root if root is not None else cfg.data.root
    if adapter.needs_root and root is None:
        raise AffectFusionError(f"data.root is not set; the {cfg.data.adapter!r} adapter reads a folder")
    root_path = Path(root).expanduser() if root is not None else None
    if root_path is not None and not root_path.exists():
        raise AffectFusionError(f"data.root {str(root_path)!r} does not exist")
    samples = adapter.load(root_path, split)
    where = f"{cfg.data.adapter} split {split!r}" + (f" in {root_path}" if root_path else "")
    if not samples:
        raise AffectFusionError(f"{where}: no samples")
    if cfg.data.extract:
        samples = extract_features(cfg, samples, where)
    keep = cfg.model.modalities
    if keep:
        for s in samples:
            s.features = {m: x for m, x in s.features.items() if m in keep}
    required = cfg.data.require_modalities
    if required:
        samples = [s for s in samples if all(m in s.features for m in required)]
        if not samples:
            raise AffectFusionError(f"{where}: no sample has all of {', '.join(required)} (data.require_modalities)")
    encode_targets(samples, cfg.tasks, where)
    return MultimodalDataset(samples, modalities=modalities, name=where)
