"""The specialists recipe: train each specialist, export, train the fusion, score every subset; resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from affectfusion.config import (
    RunConfig,
    validate,
)
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json, write_json, write_text
from affectfusion.recipes.specialists.config import (
    SpecialistsConfig,
    check_data_modalities,
    fusion_run_config,
    load_specialists_config,
    specialist_run_config,
    validate_specialists,
)
from affectfusion.recipes.specialists.export import export_embeddings
from affectfusion.recipes.specialists.subsets import print_subsets, score_subsets, write_subsets
from affectfusion.rundir import RunPaths, SpecialistsPaths, default_run_dir
from affectfusion.runkinds import TrainRequest
from affectfusion.training.distributed import init_distributed
from affectfusion.training.trainer import Trainer


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg.get("train", {}).pop("progress", None)
    return cfg


def _same_config(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether the run in ``run_dir`` was trained with ``cfg`` (up to the progress bar switch)."""
    path = RunPaths(run_dir).config
    try:
        saved = validate(yaml.safe_load(path.read_text()), str(path)).to_dict()
    except (AffectFusionError, OSError, yaml.YAMLError):
        return False
    return _comparable(saved) == _comparable(cfg.to_dict())


def run_finished(run_dir: Path, cfg: RunConfig) -> bool:
    """True if ``run_dir`` holds a finished, evaluated run of exactly ``cfg``."""
    paths = RunPaths(run_dir)
    last = paths.last.with_suffix(".json")
    if not (paths.config.is_file() and last.is_file() and read_json(last).get("finished")):
        return False
    if not _same_config(run_dir, cfg):
        return False  # Trainer.fit reports the mismatch
    splits = [cfg.data.val_split] + ([cfg.data.test_split] if cfg.data.test_split else [])
    return all(paths.metrics(s).is_file() for s in splits)


def train_specialist(
    cfg: SpecialistsConfig, modality: str, out: Path, overwrite: bool, console: Console
) -> dict[str, Any] | None:
    """Train one specialist unless a finished run of the same config is there; its val metrics."""
    run_cfg = specialist_run_config(cfg, modality)
    run_dir = SpecialistsPaths(out).specialist(modality)
    if not overwrite and run_finished(run_dir, run_cfg):
        console.print(f"specialist {modality}: {run_dir} is already trained, skipping", highlight=False)
        return read_json(RunPaths(run_dir).metrics(cfg.data.val_split))
    return Trainer(run_cfg, run_dir, console).fit(overwrite=overwrite).get(cfg.data.val_split)


def train_fusion(
    cfg: SpecialistsConfig, out: Path, provenance: dict[str, Any], overwrite: bool, console: Console
) -> Path:
    """Train the fusion on the exported embeddings; a fusion trained on another export starts afresh."""

    dist = init_distributed()
    paths = SpecialistsPaths(out)
    run_dir = paths.fusion
    run_cfg = fusion_run_config(cfg, paths.embeddings.resolve())
    marker = paths.fusion_embeddings
    if RunPaths(run_dir).config.is_file() and not overwrite:
        if not _same_config(run_dir, run_cfg):
            raise AffectFusionError(
                f"{run_dir} holds a fusion of a different config; delete that folder to train only the fusion "
                "again (the specialists and their embeddings are reused), or pass --overwrite to retrain everything"
            )
        trained_on = read_json(marker).get("fingerprint") if marker.is_file() else None
        if trained_on != provenance["fingerprint"]:
            if dist.is_main:
                console.print("the specialist embeddings changed since the fusion was trained; training it afresh")
            overwrite = True
    dist.barrier()  # every rank has read the marker before rank 0 replaces it
    if dist.is_main:
        marker_info = {
            "fingerprint": provenance["fingerprint"],
            "embeddings": str(paths.embeddings.resolve()),
            "specialists": provenance["specialists"],
        }
        write_json(marker, marker_info)
    if not overwrite and run_finished(run_dir, run_cfg):
        console.print(f"fusion: {run_dir} is already trained, skipping", highlight=False)
    else:
        Trainer(run_cfg, run_dir, console).fit(overwrite=overwrite)
    return run_dir


def train_kind(request: TrainRequest) -> Path:
    """``affectfusion train`` for a ``kind: specialists`` config (read once, by the request)."""
    cfg = validate_specialists(request.merged, request.where, request.overrides)
    return fit_specialists(cfg, request.out, request.overwrite, request.view.console if request.view else None)


def train_specialists(
    config: str, overrides: dict[str, Any], out: Path | None, overwrite: bool, console: Console | None = None
) -> Path:
    """Train a ``kind: specialists`` config (a file or shipped name, with ``--set`` overrides)."""
    return fit_specialists(load_specialists_config(config, overrides), out, overwrite, console)


def fit_specialists(cfg: SpecialistsConfig, out: Path | None, overwrite: bool, console: Console | None = None) -> Path:
    """Specialists, export, fusion, subsets. Returns the output folder (default ``runs/<name>``)."""
    log = console or Console(stderr=True)
    check_data_modalities(cfg)
    out = Path(out) if out is not None else default_run_dir(cfg.name)
    dist = init_distributed()
    if dist.is_main:
        write_text(RunPaths(out).config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    for m in cfg.specialists:
        log.print(f"[bold]specialist {m}[/]", highlight=False)
        train_specialist(cfg, m, out, overwrite, log)
    provenance: dict[str, Any] = {}
    if dist.is_main:
        provenance, _ = export_embeddings(cfg, out, log)
    dist.barrier()
    if not dist.is_main:
        provenance = read_json(SpecialistsPaths(out).provenance)
    log.print("[bold]fusion[/] of the frozen specialist embeddings", highlight=False)
    train_fusion(cfg, out, provenance, overwrite, log)
    if dist.is_main:
        wide = write_subsets(cfg, out, score_subsets(cfg, out))
        print_subsets(wide, f"{cfg.name}: per modality subset ({SpecialistsPaths(out).subsets})", Console(width=160))
    return out
