"""``affectfusion tune``: search a config's ``search:`` space, write ``best.yaml``, train its seeds, report.

MERBench's protocol in one command: random or TPE trials selected on the validation split, then
several seeds of the best config scored on the test split and reported as mean ± std.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich.console import Console
from sqlalchemy.engine import make_url

from affectfusion.config import RunConfig, apply_overrides, validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.cv_report import interval
from affectfusion.evaluation.selection import resolve_monitor
from affectfusion.io import write_text
from affectfusion.recipes.fusion.recipe import train_seeds
from affectfusion.recipes.tune.report import write_report
from affectfusion.recipes.tune.space import best_config, decoded
from affectfusion.recipes.tune.study import (
    DONE,
    SAMPLERS,
    TuneSettings,
    count,
    default_storage,
    open_study,
    recover_killed,
    run_parallel,
)
from affectfusion.recipes.workers import plan_workers
from affectfusion.rundir import TunePaths, read_metrics
from affectfusion.runlock import run_lock
from affectfusion.threads import cpu_budget
from affectfusion.training.tracking import parent_run, scalar_metrics


@dataclass(frozen=True)
class TuneOptions:
    trials: int = 20
    storage: str | None = None  # None: SQLite inside the tune folder
    study_name: str | None = None  # default: the config's name
    sampler: str = "tpe"
    seed: int = 0
    prune: bool = True
    timeout: float | None = None  # seconds
    jobs: int = 1
    seeds: int = 0  # re-train the best config this many times (seeds 1..K)


def _check(cfg: RunConfig, options: TuneOptions) -> None:
    if not cfg.search:
        raise AffectFusionError(
            f"config {cfg.name!r} has no search: space to tune; add one, e.g. "
            "search: {train.lr: {log_uniform: [1e-4, 1e-2]}} (docs/tuning.md)"
        )
    if cfg.variants:
        raise AffectFusionError(
            f"config {cfg.name!r}: tune searches one config; search model.fusion.name, not variants"
        )
    if options.trials < 1 or options.jobs < 1 or options.seeds < 0:
        raise AffectFusionError("--trials and --jobs must be at least 1, --seeds at least 0")
    if options.sampler not in SAMPLERS:
        raise AffectFusionError(f"--sampler {options.sampler!r}: choose {' or '.join(SAMPLERS)}")
    if options.timeout is not None and options.timeout <= 0:
        raise AffectFusionError("--timeout is in seconds and must be positive")


def _clear(out: Path) -> None:
    for child in out.iterdir():
        if child.name != ".lock":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _workers(cfg: RunConfig, jobs: int, console: Console) -> tuple[RunConfig, int]:
    """At most one worker per core this process may use; each gets its share of the free cores as its thread
    count (the split ``cv`` uses too: :func:`~affectfusion.recipes.workers.plan_workers`)."""
    budget = cpu_budget()
    if jobs > budget:
        console.print(f"[yellow]--jobs {jobs}[/]: this process may use {budget} cores; running {budget} workers")
        jobs = budget
    plan = plan_workers(jobs, jobs, cfg.train.threads)
    if plan.workers > 1 and cfg.train.threads == "auto":
        cfg = validate(apply_overrides(cfg.to_dict(), {"train.threads": plan.threads}))
    return cfg, plan.workers


def _seeds(cfg: RunConfig, out: Path, k: int, parent: str | None) -> dict[str, Any]:
    """The best config trained with seeds 1..k; mean ± std (and 95 % t-interval) of every metric on its test split."""
    seeds = list(range(1, k + 1))
    run_dirs = train_seeds(cfg, out, seeds, parent=parent)
    split = cfg.data.test_split or cfg.data.val_split
    per_run = [scalar_metrics(read_metrics(d, split)) for d in run_dirs]
    columns = {m: [r.get(m) for r in per_run] for m in per_run[0] if m != "loss"}
    return {
        "split": split,
        "seeds": seeds,
        "runs": [str(d) for d in run_dirs],
        "metrics": {m: {**interval(values), "values": values} for m, values in columns.items()},
    }


def tune(cfg: RunConfig, out: Path, options: TuneOptions, overwrite: bool = False, console: Console | None = None):
    """Run (or resume) the study in ``out`` and write its results; returns the summary (tune.json)."""
    console = console or Console(stderr=True)
    _check(cfg, options)
    out, paths = Path(out), TunePaths(Path(out))
    out.mkdir(parents=True, exist_ok=True)
    own = options.storage is None
    url = options.storage or default_storage(out)
    name = options.study_name or cfg.name
    with run_lock(out, "tune"):
        if overwrite:
            _clear(out)
            if not own:
                _delete_study(name, url)
        with parent_run(cfg, out, "tune") as parent:
            settings = TuneSettings(
                str(out),
                url,
                name,
                options.trials,
                options.sampler,
                options.seed,
                options.prune,
                options.timeout,
                parent,
            )
            study = open_study(cfg, settings)
            recovered = recover_killed(study, out, own)
            if recovered:
                numbers = ", ".join(map(str, recovered))
                console.print(f"trial(s) {numbers} were interrupted by a kill: their values run again as new trials")
            remaining = options.trials - count(study, DONE)
            if remaining > 0:
                worker_cfg, jobs = _workers(cfg, options.jobs, console)
                console.print(f"{name}: {remaining} trial(s) to run of {options.trials}, {jobs} worker(s) -> {out}")
                run_parallel(worker_cfg, settings, jobs, remaining)
            summary = _summary(cfg, settings, options, out)
            best = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
            if best:
                top = study.best_trial
                bcfg = best_config(cfg, decoded(top.params, cfg.search or {}))
                write_text(paths.best_config, yaml.safe_dump(bcfg.to_dict(), sort_keys=False))
                ties = [t for t in best if t.value == top.value]
                summary["best"] = {
                    "number": top.number,
                    "value": top.value,
                    "params": top.params,
                    "ties": len(ties),
                    "run_dir": top.user_attrs.get("run_dir"),
                }
                finished = count(study, DONE) >= options.trials
                if options.seeds and finished:
                    summary["seeds"] = _seeds(bcfg, paths.best_seeds, options.seeds, parent)
            return write_report(study, summary, out)


def _summary(cfg: RunConfig, settings: TuneSettings, options: TuneOptions, out: Path) -> dict[str, Any]:
    monitor, mode = resolve_monitor(cfg)
    return {
        "config": cfg.name,
        "monitor": monitor,
        "direction": "maximize" if mode == "max" else "minimize",
        "val_split": cfg.data.val_split,
        "test_split": cfg.data.test_split,
        "search": {k: d.model_dump() for k, d in (cfg.search or {}).items()},
        "trials_requested": options.trials,
        "sampler": options.sampler,
        "seed": options.seed,
        "pruner": "median (5 startup trials, 2 warm-up epochs)" if options.prune else "none",
        "study_name": settings.study_name,
        "storage": make_url(settings.storage).render_as_string(hide_password=True),
        "best_config": str(TunePaths(out).best_config),
        "best": None,
        "seeds": None,
    }


def _delete_study(name: str, url: str) -> None:
    with contextlib.suppress(KeyError):  # no such study yet
        optuna.delete_study(study_name=name, storage=url)
