"""Cross-validation: a config trained once per fold, every sample tested exactly once, then the summary.

The folds are planned once over the pooled splits (:mod:`affectfusion.data.fold_plan`); each fold is an
ordinary run folder whose config reads its part through the ``folds`` adapter, so ``test``, ``analyze``
and ``predict`` work on it unchanged and its own data check (run by the trainer) confirms that no group
straddles train, validation and test. Features are extracted once, before the folds, into the shared
cache. A finished fold is not retrained; the folds run in reused worker processes. A ``kind:
specialists`` config cross-validates whole: each fold trains its specialists, exports their embeddings
and fuses them, and the fold's fusion stage (``fold<k>/fusion``) is what is scored.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from affectfusion.config import RunConfig, validate
from affectfusion.data import build_adapter
from affectfusion.data.checks import group_overlap
from affectfusion.data.fold_plan import FoldPlan, Protocol, plan_folds
from affectfusion.data.folds import FoldsAdapter, assign, load_all
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.cv_report import write_cv_summary
from affectfusion.io import read_json, read_jsonl, write_text
from affectfusion.pipeline import extract_features
from affectfusion.recipes.specialists.config import SpecialistsConfig
from affectfusion.recipes.workers import WorkerPlan, plan_workers, run_jobs, worker_startup
from affectfusion.rundir import CvPaths, RunPaths, SpecialistsPaths
from affectfusion.training.resume import RUNTIME_KEYS
from affectfusion.training.tracking import log_summary, parent_run

Config = RunConfig | SpecialistsConfig


@dataclass(frozen=True)
class FoldJob:
    index: int
    config: dict[str, Any]  # the fold's resolved config (picklable for a worker)
    run_dir: Path
    overwrite: bool
    parent: str | None = None  # the MLflow run grouping the folds (train.track: [mlflow])


def is_specialists(cfg: Config | dict[str, Any]) -> bool:
    kind = cfg.get("kind") if isinstance(cfg, dict) else getattr(cfg, "kind", None)
    return kind == "specialists"


def results_dir(fold_dir: Path, cfg: Config | dict[str, Any]) -> Path:
    """The run whose test evaluation is the fold's: the fold itself, or its fusion stage (specialists)."""
    return SpecialistsPaths(fold_dir).fusion if is_specialists(cfg) else fold_dir


def train_sections(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``train`` section of a config dict (a specialists config has one per stage)."""
    if is_specialists(d):
        return [*(spec["train"] for spec in d["specialists"].values()), d["fusion"]["train"]]
    return [d["train"]]


def _validate(d: dict[str, Any], where: str) -> Config:
    return SpecialistsConfig.model_validate(d) if is_specialists(d) else validate(d, where)


def _data_config(cfg: Config) -> RunConfig:
    """A run config of ``cfg``'s data and tasks (extraction reads only those)."""
    if isinstance(cfg, RunConfig):
        return cfg
    tasks = [t.model_dump(mode="json") for t in cfg.tasks]
    return validate({"name": cfg.name, "data": cfg.data.model_dump(mode="json"), "tasks": tasks}, cfg.name)


def config_splits(cfg: Config) -> list[str]:
    """The splits a config names (train, validation, test), each once: the data cv pools by default."""
    return list(dict.fromkeys(s for s in (cfg.data.train_split, cfg.data.val_split, cfg.data.test_split) if s))


def fold_config(cfg: Config, plan: FoldPlan, splits: list[str]) -> Config:
    """``cfg`` reading fold ``plan`` through the ``folds`` adapter: splits train / val / test."""
    d = cfg.to_dict()
    inner = {"adapter": cfg.data.adapter, "options": cfg.data.options, "splits": splits, **plan.options()}
    d["data"].update(adapter="folds", options=inner, train_split="train", val_split="val", test_split="test")
    d["name"] = f"{cfg.name}_fold{plan.index}"
    return _validate(d, f"{cfg.name} fold {plan.index}")


def resolve_protocol(cfg: Config, protocol: Protocol, samples, console: Console) -> Protocol:
    """Without --folds or --group: group k-fold by the adapter's groups where they identify sources;
    plain k-fold (warned) only when the data has none."""
    if protocol.folds or protocol.group:
        return protocol
    identify = getattr(build_adapter(cfg.data), "groups_identify_sources", True)
    if identify and any(s.group is not None for s in samples):
        console.print(f"cv: grouping by the adapter's groups (speaker / source): group {protocol.k or 5}-fold")
        return replace(protocol, group="group", k=protocol.k or 5)
    console.print(
        "[yellow]warning:[/] cv: the data has no groups (speakers, sources), so samples of one person may be "
        "in train and test; pass --group COLUMN if the table has such a column"
    )
    return replace(protocol, k=protocol.k or 5)


def _check_plan(cfg: Config, folds: list[Config], samples) -> None:
    """Before any training: no fold's group (speaker, cv group) in two of its parts (the trainer's data check
    of each fold says the same, later and slower)."""
    if cfg.data.allow_leakage:
        return
    for k, fcfg in enumerate(folds):
        adapter = build_adapter(fcfg.data)
        if not adapter.groups_identify_sources:
            continue
        assert isinstance(adapter, FoldsAdapter)
        overlap = group_overlap(assign(samples, adapter.options, f"fold {k}"))
        if overlap:
            o = overlap[0]
            raise AffectFusionError(
                f"cv fold {k}: {o['n_groups']} group(s) in both {o['splits'][0]} and {o['splits'][1]} "
                f"(e.g. {', '.join(map(str, o['groups'][:3]))}): the fold column splits a speaker/source; "
                "fix the column, or pass --allow-leakage"
            )


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    for train in train_sections(d):
        for key in RUNTIME_KEYS:
            train.pop(key, None)
    return d


def fold_done(run_dir: Path, cfg: Config) -> bool:
    """A fold trained and tested to the end, with the same config (runtime settings aside)."""
    config = RunPaths(run_dir).config
    paths = RunPaths(results_dir(run_dir, cfg))
    if not (paths.report.is_file() and paths.metrics("test").is_file() and config.is_file()):
        return False
    try:
        saved = _validate(yaml.safe_load(config.read_text()), str(config)).to_dict()
    except (AffectFusionError, ValueError, TypeError, AttributeError):
        return False
    finished = bool(read_json(paths.last.with_suffix(".json")).get("finished"))
    return finished and _comparable(saved) == _comparable(cfg.to_dict())


def warm_up() -> None:
    """What every fold would pay on first use, paid once per worker: the trainer and data check imports
    (torch, scipy.stats), the figure helper's start, and torch._dynamo, which AdamW loads when created."""
    import torch  # the worker's training stack, loaded before its first fold

    import affectfusion.recipes.fusion.recipe  # the trainer, checks and reports
    import affectfusion.recipes.specialists.train  # noqa: F401  (the specialists recipe)
    from affectfusion.evaluation.figures import start_helper  # matplotlib loads in its helper meanwhile

    start_helper()
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def _epoch_seconds(run_dir: Path) -> float:
    """Seconds spent in epochs by every run under ``run_dir`` (a specialists fold has several)."""
    files = sorted(run_dir.rglob(RunPaths(run_dir).history.name))
    return sum(float(r.get("seconds") or 0) for f in files for r in read_jsonl(f))


def train_fold(job: FoldJob) -> dict[str, Any]:
    """Train and test one fold (in a worker); its console output goes to the fold's train.log."""
    # the recipes: imported once per worker by warm_up
    from affectfusion.recipes.fusion.recipe import fit
    from affectfusion.recipes.specialists.train import train_specialists

    t0 = time.perf_counter()
    paths = RunPaths(job.run_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    before = 0.0 if job.overwrite else _epoch_seconds(job.run_dir)
    with paths.log.open("a", encoding="utf-8") as log:
        console = Console(file=log, width=120)
        if is_specialists(job.config):  # the recipe reads its config from a file: the fold's own config.yaml
            write_text(paths.config, yaml.safe_dump(job.config, sort_keys=False))
            train_specialists(str(paths.config), {}, job.run_dir, job.overwrite, console)
        else:
            fit(validate(job.config, f"fold {job.index}"), job.run_dir, job.overwrite, console, parent=job.parent)
    wall = time.perf_counter() - t0
    epochs = _epoch_seconds(job.run_dir) - before
    pid, startup = worker_startup()
    return {
        "fold": job.index,
        "wall_s": wall,
        "epochs_s": epochs,
        "overhead_s": wall - epochs,
        "worker": pid,
        "worker_startup_s": startup,
    }


def run_folds(jobs: list[FoldJob], plan: WorkerPlan, console: Console) -> list[dict[str, Any]]:
    """Train every job in ``plan``'s workers, reporting each finished fold; per-fold timings."""
    timings = []
    for job, timing in run_jobs(train_fold, jobs, plan, warm_up):
        metrics = read_json(RunPaths(results_dir(job.run_dir, job.config)).metrics("test"))
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in ("accuracy", "macro_f1", "mae", "ccc"))
        console.print(
            f"fold {job.index}: {shown} ({timing['wall_s']:.0f} s, {timing['overhead_s']:.1f} s outside epochs)"
        )
        timings.append(timing)
    return timings


def run_cv(
    cfg: Config,
    out: Path,
    protocol: Protocol,
    splits: list[str] | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Plan, train every fold not yet done, and write ``cv.json`` / ``cv.md`` into ``out``; the summary."""
    console = console or Console(stderr=True)
    if getattr(cfg, "variants", None):
        raise AffectFusionError(
            "cv trains one model per fold; choose a variant (train --fusion, or --set variants=null)"
        )
    splits = splits or config_splits(cfg)
    adapter = build_adapter(cfg.data)
    root = Path(cfg.data.root).expanduser() if cfg.data.root is not None else None
    if adapter.needs_root and (root is None or not root.exists()):
        raise AffectFusionError(
            f"data.root {cfg.data.root!r} does not exist; the {cfg.data.adapter!r} adapter reads a folder"
        )
    where = f"{cfg.data.adapter} splits {', '.join(splits)}"
    samples = load_all(adapter, root, splits, where)
    if protocol.stratify is None:
        first = next((t.name for t in cfg.tasks if t.type == "classification"), None)
        seed = cfg.train.seed if isinstance(cfg, RunConfig) else cfg.fusion.train.seed
        protocol = replace(protocol, seed=seed, stratify=first)
    protocol = resolve_protocol(cfg, protocol, samples, console)
    plans = plan_folds(samples, protocol, where)
    folds = [fold_config(cfg, p, splits) for p in plans]
    _check_plan(cfg, folds, samples)
    paths = CvPaths(Path(out))
    todo = [(p, f) for p, f in zip(plans, folds, strict=True) if overwrite or not fold_done(paths.fold(p.index), f)]
    threads = train_sections(cfg.to_dict())[-1].get("threads", "auto")
    worker_plan = plan_workers(max(1, len(todo)), workers, threads)
    console.print(
        f"cv {cfg.name}: {protocol.name}, {len(plans)} folds over {len(samples)} samples of {', '.join(splits)}; "
        f"{len(plans) - len(todo)} already done; {worker_plan}"
    )
    tracked = cfg if isinstance(cfg, RunConfig) and cfg.train.track else None  # MLflow tracks fusion runs
    with parent_run(tracked, paths.root, "cv") if tracked else nullcontext() as parent:  # folds: its child runs
        jobs = [
            FoldJob(p.index, _worker_config(f, worker_plan), paths.fold(p.index), overwrite, parent) for p, f in todo
        ]
        if jobs and cfg.data.extract:
            extract_features(_data_config(cfg), samples, where)  # once, into the cache every fold reads
        timings = run_folds(jobs, worker_plan, console)
        results = [results_dir(paths.fold(p.index), cfg) for p in plans]
        summary = write_cv_summary(paths, cfg, protocol, splits, plans, results, timings)
        if parent is not None and tracked is not None:
            log_summary(tracked, parent, summary["metrics"], [paths.report, paths.summary])
    held_out = [s for s in (cfg.data.val_split, cfg.data.test_split) if s and s not in splits]
    if isinstance(cfg, RunConfig) and held_out:  # splits no fold saw: the folds' ensemble is scored there
        from affectfusion.recipes.ensemble.train import serve_folds  # the ensemble kind: only after such a cv

        serve_folds(cfg, paths.root, [paths.fold(p.index) for p in plans], splits, held_out, console)
    return summary


def _worker_config(cfg: Config, plan: WorkerPlan) -> dict[str, Any]:
    """The fold's config as run: side by side, each fold gets its share of threads and no progress bars."""
    d = cfg.to_dict()
    if plan.workers > 1:
        for train in train_sections(d):
            train.update(threads=plan.threads, progress=False)
    return d
