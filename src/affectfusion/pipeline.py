"""Data and extraction together: a config's split as a ready ``MultimodalDataset``.

``data`` knows adapters and samples, ``extract`` turns raw media into features; this module is the
one place that runs both, so neither package imports the other's upper half.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from affectfusion.config import RunConfig, apply_overrides, validate
from affectfusion.data import build_adapter
from affectfusion.data.conversation import dataset_for
from affectfusion.data.shards import restrict, split_samples
from affectfusion.data.tasks import encode_targets
from affectfusion.data.types import ModalitySpec, MultimodalDataset, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.extract import apply_extraction
from affectfusion.extract.face import NO_FACE

SHOWN_BAD_ROWS = 10


def bad_media_error(where: str, bad: list[str], stage: str) -> AffectFusionError:
    more = len(bad) - SHOWN_BAD_ROWS
    shown = "; ".join(bad[:SHOWN_BAD_ROWS]) + (f"; ... and {more} more" if more > 0 else "")
    return AffectFusionError(
        f"{where}: {len(bad)} unusable media file(s) {stage}: {shown}. Fix or remove those rows, or set "
        "data.bad_media: drop_modality to keep each such row with its other modalities"
    )


def check_media_files(cfg: RunConfig, samples: list[Sample], where: str, console: Console) -> None:
    """Before any extraction: every media path exists and is a non-empty file, else per data.bad_media."""
    bad = []
    for s in samples:
        for modality, item in list(s.raw.items()):
            if not isinstance(item, Path):
                continue
            problem = "missing" if not item.exists() else "not a file" if not item.is_file() else None
            if problem is None and item.stat().st_size == 0:
                problem = "empty"
            if problem:
                bad.append(f"{s.id} {modality} {item} ({problem})")
                if cfg.data.bad_media == "drop_modality":
                    del s.raw[modality]
    if bad and cfg.data.bad_media == "error":
        raise bad_media_error(where, bad, "found before extraction")
    if bad:
        console.print(f"{where}: {len(bad)} missing or empty media file(s) left out (data.bad_media: drop_modality)")


def extract_features(cfg: RunConfig, samples: list[Sample], where: str) -> list[Sample]:
    """Raw media -> features (cached); samples left with no modality at all are set aside."""
    console = Console(stderr=True)
    check_media_files(cfg, samples, where, console)
    reports = apply_extraction(samples, cfg.data, console, progress=cfg.train.progress)
    for r in reports:  # one line per extractor that did work; the report file only when something failed
        if r.failures or r.absent:
            console.print(f"{where}: {r.summary()} (report: {r.folder}/failures.csv)", highlight=False)
        elif r.computed:
            console.print(f"{where}: {r.summary()}", highlight=False)
    failed = [f"{f['id']} ({f['source']}): {f['error']}" for r in reports for f in r.failures]
    if failed and cfg.data.bad_media == "error":
        faceless = {r.extractor for r in reports if any(str(f["error"]).startswith(NO_FACE) for f in r.failures)}
        keys = [f"data.extract.{m}.options.no_face" for m, c in cfg.data.extract.items() if c.name in faceless]
        key = " / ".join(keys)
        stage = (
            f"could not be used: no face was found, and {key}: error (the default) fails such an input; "
            f"{key}: whole_frame reads the whole image instead (face crops), "
            f"{key}: missing_modality predicts from the other inputs"
            if keys
            else "could not be decoded"
        )
        raise bad_media_error(where, failed, stage)
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
    where = f"{cfg.data.adapter} split {split!r}" + (f" in {root_path}" if root_path else "")
    samples = split_samples(cfg.data, adapter, root_path, split, where)
    if not samples:
        raise AffectFusionError(f"{where}: no samples")
    encode_targets(samples, cfg.tasks, where)  # a bad label is reported before any extraction
    if cfg.data.extract:
        samples = extract_features(cfg, samples, where)
    keep = cfg.model.modalities
    if keep:
        for s in samples:
            s.features = restrict(s.features, keep)
    required = cfg.data.require_modalities
    if required:
        samples = [s for s in samples if all(m in s.features for m in required)]
        if not samples:
            raise AffectFusionError(f"{where}: no sample has all of {', '.join(required)} (data.require_modalities)")
    return dataset_for(cfg.model.context, samples, modalities, where)


def config_modalities(cfg: RunConfig) -> list[str]:
    """The modalities a model of ``cfg`` uses, in the config's order (subset names follow it).

    Synthetic data declares them in ``data.options.modalities``; for any other adapter only the
    data knows, so the train split is loaded once. ``model.modalities``, if set, selects among them.
    """
    declared = getattr(build_adapter(cfg.data).options, "modalities", None)
    if cfg.data.adapter == "synthetic" and declared is not None:
        found = list(declared)
    else:
        unfiltered = validate(apply_overrides(cfg.to_dict(), {"model.modalities": None}), "config")
        found = list(load_dataset(unfiltered, cfg.data.train_split).modalities)
    wanted = cfg.model.modalities
    if wanted:
        unknown = [m for m in wanted if m not in found]
        if unknown:
            raise AffectFusionError(
                f"model.modalities names unknown modality {', '.join(unknown)}; the data has: {', '.join(found)}"
            )
        return list(dict.fromkeys(wanted))
    order = [m for m in (declared or []) if m in found]
    return order + [m for m in found if m not in order]
