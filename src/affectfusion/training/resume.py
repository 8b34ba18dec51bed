"""Is there a run of this config in that folder, and is it finished?

The trainer asks before it resumes; ``affectfusion train`` asks before it imports torch, so re-running
the command of a finished run answers at once instead of loading data and models to find out. Only the
config and the run's small JSON files are read here.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from affectfusion.config import RunConfig, expand_variants, validate
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_jsonl, write_text
from affectfusion.rundir import RunPaths, SweepPaths

# Settings that say where and how the math runs, not what is learned: a run may resume under others.
RUNTIME_KEYS = ("progress", "device", "threads", "track", "tracking_uri")


def config_differs(paths: RunPaths, cfg: RunConfig) -> bool:
    """Whether the config saved in ``paths`` is another than ``cfg`` (runtime settings aside). It is
    re-validated, so config keys added since the run was trained compare as their defaults."""
    try:
        saved = validate(yaml.safe_load(paths.config.read_text()), str(paths.config)).to_dict()
    except AffectFusionError:
        saved = {}
    current = cfg.to_dict()
    for d in (saved, current):
        for key in RUNTIME_KEYS:
            d.get("train", {}).pop(key, None)
    return saved != current


def is_finished(run_dir: Path, cfg: RunConfig) -> bool:
    """``run_dir`` holds ``cfg``'s run, its last checkpoint is marked finished and its report was written
    after that (the report is what ``train`` writes last: evaluation and calibration are done)."""
    paths = RunPaths(Path(run_dir))
    state = paths.last.with_suffix(".json")
    try:
        if not (paths.config.is_file() and paths.report.is_file()) or config_differs(paths, cfg):
            return False
        last = json.loads(state.read_text())
        return (
            isinstance(last, dict)
            and bool(last.get("finished"))
            and (paths.report.stat().st_mtime_ns >= state.stat().st_mtime_ns)
        )
    except (OSError, ValueError, yaml.YAMLError):  # half-written or unreadable: the trainer decides
        return False


def all_finished(cfg: RunConfig, out: Path) -> bool:
    """Every run ``train`` would make for ``cfg`` in ``out`` is finished (a config with variants: each
    variant, and the comparison table written after the last of them)."""
    if not cfg.variants:
        return is_finished(out, cfg)
    sweep = SweepPaths(out)
    runs = {sweep.variant(name): variant for name, variant in expand_variants(cfg).items()}
    if not all(is_finished(d, v) for d, v in runs.items()):
        return False
    table = sweep.comparison.table
    newest = max(RunPaths(d).report.stat().st_mtime_ns for d in runs)
    return table.is_file() and table.stat().st_mtime_ns >= newest


def trim_history(paths: RunPaths, last_epoch: int) -> None:
    """Keep the history lines up to the last checkpoint's epoch (a crash between a line and its
    checkpoint leaves one line ahead), rewritten whole so a second crash loses nothing."""
    if paths.history.exists():
        rows = [r for r in read_jsonl(paths.history) if isinstance(r.get("epoch"), int) and r["epoch"] <= last_epoch]
        write_text(paths.history, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def clear_training_outputs(paths: RunPaths) -> None:
    """Before training from epoch 1: drop history, thresholds and checkpoints an earlier attempt left
    (one killed before its first checkpoint left history lines that would repeat)."""
    for old in (paths.history, paths.thresholds, paths.calibration, paths.conformal):  # the old model's
        old.unlink(missing_ok=True)
    for f in paths.checkpoints.glob("*"):
        f.unlink()


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files a killed writer left under ``folder`` (the caller holds the
    folder, so no live writer owns them); lock attempts are left to :func:`run_lock`."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        if tmp.is_file() and not tmp.name.startswith(".lock."):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
