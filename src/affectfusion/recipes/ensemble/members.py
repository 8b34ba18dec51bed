"""An ensemble's manifest (``ensemble.json``) and its member runs, checked to be one model's copies.

The manifest is read and its member count bounded before any member is opened; the members are then
read (config and metadata, no weights) and must agree on what the ensemble serves: the same tasks and
classes, the same modalities and feature sizes, and the same data (so that one extraction and one
dataset serve every member). A disagreement is a one-line error naming the member folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from affectfusion.config import RunConfig, apply_overrides, format_validation_error, validate
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json, write_json
from affectfusion.rundir import LoadedRun, RunPaths, declared_kind, is_run, read_run

MAX_MEMBERS = 16  # every member's model is held in memory while serving and run once per input
FORMAT = 1


class Manifest(BaseModel):
    """``ensemble.json``: the member run folders (relative to the manifest's folder, or absolute)."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    name: str = Field(min_length=1)
    members: list[str] = Field(min_length=1, max_length=MAX_MEMBERS)
    source: str = Field("", description="what wrote it (train --seeds, cv, a kind: ensemble config)")
    data: dict[str, Any] | None = Field(
        None, description="the data it is scored on when its members read parts of it (cv folds); else theirs"
    )


def write_manifest(root: Path, members: list[Path], name: str, source: str, data: dict[str, Any] | None = None) -> Path:
    """Write ``<root>/ensemble.json`` once its members are checked; members inside ``root`` are stored relative
    to it (the folder moves whole). ``data``: the data config it is scored on, where the members were trained
    on parts of it."""
    root = Path(root)
    if not 1 <= len(members) <= MAX_MEMBERS:
        raise AffectFusionError(f"an ensemble has 1 to {MAX_MEMBERS} members, got {len(members)}")
    names = [
        os.path.relpath(m.resolve(), root.resolve()) if m.resolve().is_relative_to(root.resolve()) else str(m.resolve())
        for m in map(Path, members)
    ]
    manifest = Manifest(name=name, members=names, source=source, data=data)
    check_members([read_run(d) for d in member_dirs(root, manifest)], same_data=data is None)  # before writing
    path = RunPaths(root).ensemble
    write_json(path, manifest.model_dump(exclude_none=True))
    return path


def read_manifest(root: Path) -> Manifest:
    """The manifest of an ensemble folder, validated (member count included) before any member is read."""
    path = RunPaths(Path(root)).ensemble
    if not path.is_file():
        raise AffectFusionError(f"{root} is not an ensemble (expected {path.name} in it)")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise AffectFusionError(f"{path}: expected a JSON object with name and members")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, str(path), Manifest)) from None
    if manifest.format != FORMAT:
        raise AffectFusionError(f"{path}: format {manifest.format} is not readable here (expected {FORMAT})")
    return manifest


def member_dirs(root: Path, manifest: Manifest) -> list[Path]:
    """The members' folders, each a trained fusion run (else a one-line error naming it)."""
    out = []
    for name in manifest.members:
        folder = (Path(root) / name).resolve()
        if not is_run(folder):
            raise AffectFusionError(
                f"ensemble member {folder} (in {RunPaths(Path(root)).ensemble}) is not a trained run "
                "(expected config.yaml and meta.json)"
            )
        if declared_kind(folder) != "fusion":
            raise AffectFusionError(
                f"ensemble member {folder} is a {declared_kind(folder)} run; members are fusion runs"
            )
        out.append(folder)
    if len(set(out)) != len(out):
        raise AffectFusionError(f"{RunPaths(Path(root)).ensemble} lists a member twice")
    return out


def _signature(run: LoadedRun, same_data: bool) -> dict[str, Any]:
    """What every member must share: tasks (name, type, classes), modalities and feature sizes, and the
    data (``same_data``; else only its extraction: cv folds read other parts of the same data)."""
    data = run.config.data.model_dump(mode="json")
    return {
        "tasks": [(t.name, t.type, t.classes) for t in run.config.tasks],
        "modalities": {m: spec.dim for m, spec in run.modalities.items()},
        "data": data if same_data else {"extract": data.get("extract")},
    }


def check_members(runs: list[LoadedRun], same_data: bool = True) -> None:
    """Refuse members that are not copies of one model (module docstring), naming the first that differs."""
    first = _signature(runs[0], same_data)
    for run in runs[1:]:
        other = _signature(run, same_data)
        for key, what in (("tasks", "tasks or classes"), ("modalities", "modalities or feature sizes")):
            if other[key] != first[key]:
                raise AffectFusionError(
                    f"ensemble member {run.paths.root} has other {what} than {runs[0].paths.root}: "
                    f"{other[key]} vs {first[key]}"
                )
        differ = sorted(
            k for k in first["data"].keys() | other["data"].keys() if first["data"].get(k) != other["data"].get(k)
        )
        if differ:
            raise AffectFusionError(
                f"ensemble member {run.paths.root} reads other data than {runs[0].paths.root} "
                f"(data.{', data.'.join(differ)} differ); members must be trained on the same data"
            )


def read_members(root: Path) -> tuple[Manifest, list[LoadedRun]]:
    """The manifest and its members' configs and metadata (no weights), checked to be one model's copies."""
    manifest = read_manifest(root)
    runs = [read_run(d) for d in member_dirs(root, manifest)]
    check_members(runs, same_data=manifest.data is None)
    return manifest, runs


def scoring_config(root: Path, manifest: Manifest, first: LoadedRun) -> RunConfig:
    """The config the ensemble's splits are read with: its first member's, on the manifest's data if it
    names one (the whole data the cv folds were cut from)."""
    if manifest.data is None:
        return first.config
    where = f"{RunPaths(Path(root)).ensemble}: data"
    return validate(apply_overrides(first.config.to_dict(), {"data": manifest.data}), where)


def scored_splits(root: Path) -> list[str]:
    """The validation and test splits an ensemble is scored on by default (its scoring config's)."""
    manifest, runs = read_members(root)
    data = scoring_config(root, manifest, runs[0]).data
    return [s for s in (data.val_split, data.test_split) if s]
