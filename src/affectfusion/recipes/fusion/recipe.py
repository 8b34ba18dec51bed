"""The plain fusion recipe: train a config (each of its variants, each seed) and compare.

Recipes sit above training and evaluation: they orchestrate whole runs (variants, seeds,
comparison tables) out of the trainer and the evaluation reports.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape

from affectfusion.config import RunConfig, apply_overrides, expand_variants, validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import compare_runs
from affectfusion.evaluation.figures import Figures
from affectfusion.evaluation.report import write_run_report
from affectfusion.evaluation.selection import resolve_monitor, saturation_warning
from affectfusion.io import read_json, read_jsonl, write_json
from affectfusion.recipes.trust import calibrate_run
from affectfusion.rundir import RunPaths, SeedPaths, SweepPaths, read_run
from affectfusion.runlock import run_lock
from affectfusion.training.distributed import init_distributed
from affectfusion.training.loading import load_model
from affectfusion.training.tracking import parent_run, tracked_run
from affectfusion.training.trainer import EpochCallback, Trainer


def train_config(
    cfg: RunConfig,
    out: Path,
    overwrite: bool = False,
    console: Console | None = None,
    leakage_allowed_by: str | None = None,
    parent: str | None = None,
) -> pd.DataFrame | None:
    """Train a config (each of its variants into its own folder) and compare variants if several.
    ``leakage_allowed_by``: what set ``data.allow_leakage`` (a flag, an option), credited if splits leak;
    ``parent``: the MLflow run the runs are logged under (a sweep's), when tracked."""
    console = console or Console(stderr=True)
    variants = expand_variants(cfg)
    if not cfg.variants:
        fit(cfg, out, overwrite, console, leakage_allowed_by, parent=parent)
        return None
    sweep = SweepPaths(out)
    run_dirs = []
    for vname, vcfg in variants.items():
        fit(vcfg, sweep.variant(vname), overwrite, console, leakage_allowed_by, parent=parent)
        run_dirs.append(sweep.variant(vname))
    if not init_distributed().is_main:
        return None
    return compare_runs(run_dirs, sweep.comparison.root)


def fit(
    cfg: RunConfig,
    run_dir: Path,
    overwrite: bool,
    console: Console,
    leakage_allowed_by: str | None = None,
    callbacks: Sequence[EpochCallback] = (),
    parent: str | None = None,
) -> None:
    """Train one run (or resume it), holding its folder against a second writer, tracked as
    ``train.track`` asks (under the MLflow run ``parent``, if given); say what the run's trust rests on
    (allowed leakage, a saturated validation split, a refused calibration). ``callbacks`` run after each epoch.

    Under DDP only rank 0 writes, so only rank 0 takes the lock and tracks.
    """
    main = init_distributed().is_main
    with run_lock(run_dir, "train") if main else nullcontext():
        if main and overwrite:
            shutil.rmtree(RunPaths(run_dir).tensorboard, ignore_errors=True)
        with tracked_run(cfg, run_dir, parent) if main else nullcontext() as tracker:
            figures = Figures()
            hooks = [*callbacks, *(tracker.callbacks if tracker else [])]
            Trainer(cfg, run_dir, console, figures, hooks).fit(overwrite=overwrite)
            if main:
                note_allowed_leakage(run_dir, leakage_allowed_by, console)
                warn_if_saturated(cfg, run_dir, console)
                for task, entry in calibrate_trained(run_dir, figures).items():
                    if entry.get("refused"):
                        console.print(f"[yellow]warning:[/] {task}: not calibrated: {escape(entry['refused'])}")
                figures.wait()  # drawn by the helper while the run was evaluated and calibrated
                write_run_report(run_dir)


def note_allowed_leakage(run_dir: Path, allowed_by: str | None, console: Console) -> None:
    """Say that the splits leak and what allowed training on them; credit that in the data check."""
    paths = RunPaths(run_dir)
    check = read_json(paths.data_check) if paths.data_check.is_file() else {}
    if not check.get("allowed_leakage"):
        return
    if allowed_by is not None:
        check["allowed_by"] = allowed_by
        write_json(paths.data_check, check)
    leaks = check.get("leaks") or ["see affectfusion check-data"]
    more = f" and {len(leaks) - 1} more" if len(leaks) > 1 else ""
    console.print(
        f"[yellow]warning:[/] the data splits leak ({escape(str(leaks[0]))}{more}); training went ahead, allowed by "
        f"{escape(check.get('allowed_by', 'data.allow_leakage: true'))}: validation and test scores may be inflated"
    )


def warn_if_saturated(cfg: RunConfig, run_dir: Path, console: Console) -> None:
    """Say so (and note it in meta.json, which the report reads) when the validation metric is at its
    ceiling from the start."""
    paths = RunPaths(run_dir)
    monitor, _ = resolve_monitor(cfg)
    warning = saturation_warning(read_jsonl(paths.history), monitor, cfg.data.val_split)
    if warning is None:
        return
    console.print(f"[yellow]warning:[/] {run_dir}: {warning}", highlight=False)
    meta = read_json(paths.meta)
    meta["warnings"] = sorted({*meta.get("warnings", []), warning})
    write_json(paths.meta, meta)


def calibrate_trained(run_dir: Path, figures: Figures) -> dict[str, Any]:
    """Every classification run gets its validation-fitted temperature (or the reason it was refused),
    calibration errors before and after, and a reliability diagram (handed to ``figures``) in its report.
    Returns the calibration entry per task ({} without a classification task)."""
    run = read_run(run_dir)
    if any(t.type in ("classification", "multilabel") for t in run.config.tasks):
        return calibrate_run(run, load_model(run), figures)["tasks"]
    return {}


def _seed_config(cfg: RunConfig, seed: int) -> RunConfig:
    """``cfg`` with ``train.seed`` set and ``_seed<k>`` appended to its name. Variant runs are then
    named ``<name>_seed<k>/<variant>``."""
    return validate(apply_overrides(cfg.to_dict(), {"train.seed": seed, "name": f"{cfg.name}_seed{seed}"}))


def train_seeds(
    cfg: RunConfig,
    out: Path,
    seeds: list[int],
    overwrite: bool = False,
    leakage_allowed_by: str | None = None,
    parent: str | None = None,
) -> list[Path]:
    """Train ``cfg`` once per seed into ``<out>/seed<k>`` (variants into ``<out>/seed<k>/<variant>``,
    each seed with its usual comparison), tracked as child runs of ``parent`` (default: a parent run of
    their own). Returns every run directory, in seed order."""
    if not seeds:
        raise AffectFusionError("no seeds given (e.g. --seeds 1,2,3)")
    out = Path(out)
    run_dirs = []
    own_parent = parent is None and init_distributed().is_main
    with parent_run(cfg, out, "seeds") if own_parent else nullcontext(parent) as group:
        for seed in seeds:
            seed_dir = SeedPaths(out).seed(seed)
            train_config(
                _seed_config(cfg, seed), seed_dir, overwrite, leakage_allowed_by=leakage_allowed_by, parent=group
            )
            run_dirs += [SweepPaths(seed_dir).variant(v) for v in cfg.variants] if cfg.variants else [seed_dir]
    return run_dirs
