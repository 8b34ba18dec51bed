"""Reading run folders: is it a run (or a cross-validation, a tuning), which kind it declares, its metrics,
its validated config and metadata, or whatever files a partial run holds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from affectfusion.config import RunConfig, load_raw, validate
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json, read_jsonl
from affectfusion.rundir.paths import CvPaths, RunPaths, TunePaths

if TYPE_CHECKING:  # the data package loads torch: reading paths, metrics and locks must not
    from affectfusion.data.tasks import TargetScaler
    from affectfusion.data.types import ModalitySpec


def is_cv(path: Path) -> bool:
    """A folder holding a finished cross-validation (its cv.json)."""
    return CvPaths(Path(path)).summary.is_file()


def is_tune(path: Path) -> bool:
    """A folder written by ``affectfusion tune`` (its summary is there)."""
    return TunePaths(Path(path)).summary.is_file()


def enclosing_tune(run_dir: Path) -> Path | None:
    """The tune folder a run belongs to (``<tune>/trials/trial<k>``, ``<tune>/best/seed<k>``), if any."""
    for parent in Path(run_dir).resolve().parents[:2]:
        if is_tune(parent):
            return parent
    return None


def is_run(path: Path) -> bool:
    """A folder holding a trained run (its config and metadata)."""
    paths = RunPaths(Path(path))
    return paths.config.is_file() and paths.meta.is_file()


def run_dirs_or_none(path: Path) -> list[Path]:
    """The run at ``path``, or the variant runs directly inside it; empty if neither."""
    path = Path(path)
    return [path] if is_run(path) else sorted(p for p in path.glob("*") if is_run(p))


def run_dirs(path: Path) -> list[Path]:
    """The run at ``path``, or the variant runs inside it; an error if there are none."""
    found = run_dirs_or_none(path)
    if not found:
        raise AffectFusionError(f"{path} is not a run directory and holds none (expected config.yaml and meta.json)")
    return found


def declared_kind(path: Path) -> str | None:
    """The ``kind`` its config.yaml declares (``fusion`` when absent); None without a readable config."""
    config = RunPaths(Path(path)).config
    if not config.is_file():
        return None
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return str(raw.get("kind", "fusion")) if isinstance(raw, dict) else None


def read_metrics(run_dir: Path, split: str) -> dict[str, Any]:
    """The metrics.json a run wrote for ``split``."""
    path = RunPaths(Path(run_dir)).metrics(split)
    if not path.is_file():
        raise AffectFusionError(f"{run_dir} has no evaluation of split {split!r} (expected {path})")
    return read_json(path)


@dataclass
class LoadedRun:
    paths: RunPaths
    config: RunConfig
    meta: dict
    modalities: dict[str, ModalitySpec]
    scalers: dict[str, TargetScaler]


def read_run(run_dir: str | Path) -> LoadedRun:
    """Validated config and metadata of a trained fusion run (weights: ``training.loading.load_model``)."""
    # the data package loads torch: only a run that is read whole pays for it
    from affectfusion.data.tasks import TargetScaler
    from affectfusion.data.types import ModalitySpec

    paths = RunPaths(Path(run_dir))
    if not is_run(paths.root):
        raise AffectFusionError(f"{run_dir} is not a run directory (expected config.yaml and meta.json in it)")
    cfg = validate(load_raw(paths.config), str(paths.config))
    meta = read_json(paths.meta)
    modalities = {m: ModalitySpec(**spec) for m, spec in meta["modalities"].items()}
    scalers = {t: TargetScaler(**s) for t, s in meta.get("scalers", {}).items()}
    return LoadedRun(paths, cfg, meta, modalities, scalers)


@dataclass
class RunFolder:
    """The raw files of a run folder, tolerant of a partial run: a missing file leaves its field empty."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> metrics dict
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)  # multilabel task -> tuned thresholds

    @property
    def has_config(self) -> bool:
        return RunPaths(self.path).config.is_file()

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def fusion(self) -> str | None:
        fusion = ((self.config.get("model") or {}).get("fusion") or {}).get("name")
        return fusion or self.meta.get("fusion")

    def seconds_per_epoch(self) -> float | None:
        seconds = [float(r["seconds"]) for r in self.history if r.get("seconds") is not None]
        return statistics.fmean(seconds) if seconds else None


def read_run_folder(run_dir: Path) -> RunFolder:
    """Whatever of config, meta, history, thresholds and per-split metrics a run folder holds."""
    paths = RunPaths(Path(run_dir))
    run = RunFolder(path=paths.root)
    if paths.config.is_file():
        run.config = load_raw(paths.config)
    if paths.meta.is_file():
        run.meta = read_json(paths.meta)
    if paths.history.is_file():
        run.history = read_jsonl(paths.history)
    if paths.thresholds.is_file():
        run.thresholds = read_json(paths.thresholds)
    for split in paths.evaluated_splits():
        run.evals[split] = read_json(paths.metrics(split))
    return run
