"""Stage 2: each split through every specialist's best checkpoint; pooled embeddings saved with provenance."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

import affectfusion
from affectfusion.config import (
    ModelConfig,
    TaskConfig,
    TrainConfig,
    validate,
)
from affectfusion.data.types import MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.io import atomic_file, file_sha256, read_json, write_csv, write_json
from affectfusion.pipeline import load_dataset
from affectfusion.recipes.specialists.config import EXPORT_FORMAT, SpecialistsConfig, _stage_raw
from affectfusion.rundir import LoadedRun, SpecialistsPaths, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict


def specialist_dataset(run: LoadedRun, split: str) -> MultimodalDataset:
    """A specialist's split: only the samples that have its modality (``data.require_modalities``)."""
    return load_dataset(run.config, split, modalities=run.modalities)


def _splits(cfg: SpecialistsConfig) -> list[str]:
    d = cfg.data
    return list(dict.fromkeys([d.train_split, d.val_split] + ([d.test_split] if d.test_split else [])))


def _specialist_sources(cfg: SpecialistsConfig, out: Path) -> dict[str, dict[str, Any]]:
    """Per fused modality: the specialist checkpoint its embeddings come from, and what they are."""
    sources = {}
    for m in cfg.modalities:
        run = read_run(SpecialistsPaths(out).specialist(m))
        best = run.paths.best
        info = read_json(best.with_suffix(".json"))
        sources[m] = {
            "run_dir": f"specialists/{m}",
            "checkpoint": f"specialists/{m}/checkpoints/{best.name}.safetensors",
            "sha256": file_sha256(best.with_suffix(".safetensors")),
            "epoch": info.get("epoch"),
            "monitor": info.get("monitor"),
            "value": info.get("value"),
            "encoder": run.config.model.encoder_for(m).name,
            "input_dim": run.modalities[m].dim,
            "dim": run.config.model.hidden_dim,
            "embedding": "pooled encoder output (the vector the specialist's fusion and head read)",
        }
    return sources


def _fingerprint(cfg: SpecialistsConfig, sources: dict[str, dict[str, Any]]) -> str:
    key = {
        "format": EXPORT_FORMAT,
        "data": cfg.data.model_dump(mode="json"),
        "tasks": [t.model_dump(mode="json") for t in cfg.tasks],
        "specialists": {m: (s["sha256"], s["dim"]) for m, s in sources.items()},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` keyed by sample id, written atomically. (``np.savez(**arrays)`` would break on an
    id such as ``file``, which collides with its own parameter names.)"""
    with atomic_file(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for key, value in arrays.items():
            with z.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)


def _target_cell(task: TaskConfig, value: Any) -> Any:
    """An encoded target as the manifest writes it: class name, ';'-joined names, number, or empty."""
    if value is None:
        return ""
    classes = task.classes or []
    if task.type == "classification":
        return classes[int(value)]
    if task.type == "multilabel":
        return ";".join(c for c, v in zip(classes, np.asarray(value), strict=True) if v)
    return float(value)


def export_embeddings(cfg: SpecialistsConfig, out: Path, console: Console) -> tuple[dict[str, Any], bool]:
    """Write every split's specialist embeddings to ``<out>/embeddings`` unless an export from the
    same checkpoints is already there. Returns (provenance, whether anything was written)."""
    paths = SpecialistsPaths(out)
    folder = paths.embeddings
    sources = _specialist_sources(cfg, out)
    fingerprint = _fingerprint(cfg, sources)
    prov_path = paths.provenance
    splits = _splits(cfg)
    files = [paths.manifest] + [paths.embedding_file(m, s) for m in cfg.modalities for s in splits]
    if prov_path.is_file() and all(f.is_file() for f in files):
        previous = read_json(prov_path)
        if previous.get("fingerprint") == fingerprint:
            console.print(f"embeddings in {folder} are from the current specialists, reusing them", highlight=False)
            return previous, False
    prov_path.unlink(missing_ok=True)  # written last: an interrupted export is never taken as complete
    runs = {m: read_run(SpecialistsPaths(out).specialist(m)) for m in cfg.modalities}
    models = {m: load_model(run) for m, run in runs.items()}
    base = validate(
        {**_stage_raw(cfg, "export", ModelConfig(), TrainConfig()), "model": {"modalities": cfg.modalities}},
        "export",
    )
    rows, counts = [], {}
    for split in splits:
        ds = load_dataset(base, split)
        kept = [s for s in ds.samples if s.features]
        if len(kept) < len(ds):
            console.print(
                f"{split}: {len(ds) - len(kept)} samples have none of {', '.join(cfg.modalities)}; left out",
                highlight=False,
            )
        counts[split] = {"n": len(kept)}
        for m in cfg.modalities:
            sub = MultimodalDataset(
                [s for s in kept if m in s.features], modalities=runs[m].modalities, name=f"{split} (with {m})"
            )
            if not len(sub):
                raise AffectFusionError(f"data split {split!r}: no sample has modality {m!r}; cannot export it")
            emb = predict(models[m], sub, runs[m].scalers, keep_embeddings=True).embeddings[m]
            write_npz(paths.embedding_file(m, split), {s.id: e for s, e in zip(sub.samples, emb, strict=True)})
            counts[split][m] = len(sub)
        for s in kept:
            row = {"id": s.id, "split": split, "group": s.group or "", "source": s.source or ""}
            row.update({t.name: _target_cell(t, s.targets.get(t.name)) for t in cfg.tasks})
            rows.append(row)
        console.print(
            f"exported {split}: {counts[split]['n']} samples ("
            + ", ".join(f"{m} {counts[split][m]} x {sources[m]['dim']}" for m in cfg.modalities)
            + ")",
            highlight=False,
        )
    write_csv(pd.DataFrame(rows), paths.manifest)
    provenance = {
        "fingerprint": fingerprint,
        "format": "feature_folder: manifest.csv (id, split, group, source, one column per task) + "
        "<modality>_<split>.npz (sample id -> [dim] float32; a missing id = modality missing)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "affectfusion_version": affectfusion.__version__,
        "data": cfg.data.model_dump(mode="json"),
        "splits": counts,
        "specialists": sources,
    }
    write_json(prov_path, provenance)
    return provenance, True
