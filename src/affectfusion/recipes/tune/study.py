"""The Optuna study of a tune: storage, sampler and pruner, recovery after a kill, and the trial loop.

The study lives in a SQLite file inside the tune folder unless ``--storage`` names another SQLAlchemy
URL (then several processes or machines share it). A trial trains one ordinary run folder, reports
the monitored validation value after every epoch (the trainer's epoch callback) and is pruned by the
median rule. Trials run in worker processes, each of which trains many trials, so the import cost of
a training process is paid once per worker rather than once per trial.

No trial is lost or repeated: a trial left RUNNING by a killed process is marked FAIL and its values
enqueued again, at once for the tune folder's own storage (the folder lock proves nobody else runs
it) and through Optuna's heartbeat for a shared one; the study ends when ``--trials`` trials have
completed or been pruned.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from rich.console import Console

from affectfusion.config import RunConfig, validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import metric_value
from affectfusion.evaluation.selection import resolve_monitor
from affectfusion.io import read_jsonl
from affectfusion.recipes.fusion.recipe import fit
from affectfusion.recipes.tune.space import suggest, trial_config
from affectfusion.rundir import RunPaths, TunePaths, read_metrics

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_SECONDS = 20  # a shared study's trial with no heartbeat for GRACE_SECONDS is failed and retried
GRACE_SECONDS = 60
SAMPLERS = ("tpe", "random")
RETRY_OF = "retry_of"  # user attribute: the number of the killed trial whose values a trial re-runs


@dataclass(frozen=True)
class TuneSettings:
    """What a tune command asked for; every worker gets a copy."""

    out: str
    storage: str
    study_name: str
    trials: int
    sampler: str = "tpe"
    seed: int = 0
    prune: bool = True
    timeout: float | None = None
    parent: str | None = None  # the MLflow parent run of the trials


def default_storage(out: Path) -> str:
    return f"sqlite:///{TunePaths(out).storage.resolve()}"


def _storage(url: str) -> RDBStorage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable enough
            return RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=None),
            )
    except (ImportError, ValueError) as e:
        raise AffectFusionError(f"--storage {url}: cannot open it as an Optuna storage: {e}") from None


def _sampler(settings: TuneSettings, salt: int) -> optuna.samplers.BaseSampler:
    """Seeded from ``--seed`` and ``salt``: a resumed study or a second worker must not replay the
    draws of the first (the same seed would propose the same values again)."""
    seed = settings.seed if salt == 0 else (settings.seed * 1_000_003 + salt) % 2**32
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    if not settings.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


def identity(cfg: RunConfig) -> str:
    """The config a study belongs to, without runtime settings a resumed study may change."""
    raw = cfg.to_dict()
    for key in ("progress", "device", "threads", "track", "tracking_uri"):
        raw["train"].pop(key, None)
    return json.dumps(raw, sort_keys=True)


def open_study(cfg: RunConfig, settings: TuneSettings, worker: int = 0) -> optuna.Study:
    """The study, created or (same config only) resumed; its sampler's seed is salted with the worker's
    index and the number of trials already in the study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _, mode = resolve_monitor(cfg)
    storage = _storage(settings.storage)
    try:
        existing = len(storage.get_all_trials(storage.get_study_id_from_name(settings.study_name), deepcopy=False))
    except KeyError:  # a new study
        existing = 0
    study = optuna.create_study(
        storage=storage,
        study_name=settings.study_name,
        sampler=_sampler(settings, existing + 7919 * worker),
        pruner=_pruner(settings),
        direction="maximize" if mode == "max" else "minimize",
        load_if_exists=True,
    )
    saved = study.user_attrs.get("config")
    if saved is None:
        study.set_user_attr("config", identity(cfg))
    elif saved != identity(cfg):
        raise AffectFusionError(
            f"study {settings.study_name!r} in {settings.storage} belongs to a different config or search space; "
            "pass --overwrite to start afresh, or --out/--storage for another study"
        )
    return study


def recover_killed(study: optuna.Study, out: Path, own_storage: bool) -> list[int]:
    """Trials a killed process left RUNNING: failed, their folders removed, their values enqueued again.

    Only for the tune folder's own storage, whose lock the caller holds; in a shared study Optuna's
    heartbeat does the same once a trial has been silent for the grace period.
    """
    if not own_storage:
        return []
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        shutil.rmtree(TunePaths(out).trial(t.number), ignore_errors=True)
        study.enqueue_trial(t.params, user_attrs={RETRY_OF: t.number}, skip_if_exists=False)
        recovered.append(t.number)
    return recovered


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _pruning(trial: optuna.Trial):
    def report(epoch: int, record: dict[str, Any], value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report


def _slim(run_dir: Path, pruned: bool) -> None:
    """A finished trial keeps its best checkpoint only; a pruned one none."""
    paths = RunPaths(run_dir)
    if pruned:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        return
    for f in paths.checkpoints.glob("last*"):
        f.unlink()


def run_trial(trial: optuna.Trial, cfg: RunConfig, settings: TuneSettings, console: Console) -> float:
    """Train the trial's config into ``trials/trial<k>`` and return its best validation value."""
    values = suggest(trial, cfg.search or {})
    tcfg = trial_config(cfg, values, trial.number)
    run_dir = TunePaths(Path(settings.out)).trial(trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    started = time.perf_counter()
    quiet = Console(stderr=True, quiet=True)
    try:
        fit(tcfg, run_dir, True, quiet, callbacks=[_pruning(trial)] if settings.prune else [], parent=settings.parent)
    except optuna.TrialPruned:
        _record(trial, run_dir, started)
        _slim(run_dir, pruned=True)
        raise
    _record(trial, run_dir, started)
    _slim(run_dir, pruned=False)
    monitor, _ = resolve_monitor(tcfg)
    return metric_value(read_metrics(run_dir, tcfg.data.val_split), monitor)


def _record(trial: optuna.Trial, run_dir: Path, started: float) -> None:
    """Seconds of the whole trial and of its epochs alone (the difference is the per-trial overhead)."""
    history = read_jsonl(RunPaths(run_dir).history) if RunPaths(run_dir).history.is_file() else []
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
    trial.set_user_attr("train_seconds", round(sum(float(r.get("seconds", 0.0)) for r in history), 3))
    trial.set_user_attr("epochs", len(history))


def _line(t: optuna.trial.FrozenTrial, monitor: str) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    seconds = t.user_attrs.get("seconds", 0.0)
    if t.state == TrialState.PRUNED:
        return f"trial {t.number}: pruned after {t.user_attrs.get('epochs', '?')} epochs ({seconds:.1f}s)  {params}"
    return f"trial {t.number}: {monitor} {t.value:.4f} ({seconds:.1f}s)  {params}"


def run_trials(
    cfg: RunConfig, settings: TuneSettings, quota: int, worker: int = 0, started: float | None = None
) -> None:
    """Run up to ``quota`` trials in this process, fewer when the study is full (the count of completed
    and pruned trials, which several processes share) or the time is up."""
    study = open_study(cfg, settings, worker)
    monitor, _ = resolve_monitor(cfg)
    console = Console(stderr=True)
    first = [started]

    def objective(trial: optuna.Trial) -> float:
        if first[0] is not None:  # the worker's first trial records what starting the worker cost
            trial.set_user_attr("worker_start_seconds", round(time.time() - first[0], 3))
            first[0] = None
        return run_trial(trial, cfg, settings, console)

    def show(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in DONE:
            console.print(_line(trial, monitor), highlight=False)

    full = MaxTrialsCallback(settings.trials, states=DONE)
    study.optimize(objective, n_trials=quota, timeout=settings.timeout, callbacks=[show, full], catch=())


def _worker(cfg_raw: dict[str, Any], settings: dict[str, Any], quota: int, worker: int, started: float) -> None:
    """A worker process: its own interpreter, many trials; a user error is one line, not a traceback."""
    try:
        run_trials(validate(cfg_raw), TuneSettings(**settings), quota, worker, started)
    except AffectFusionError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


def run_parallel(cfg: RunConfig, settings: TuneSettings, jobs: int, remaining: int) -> None:
    """``remaining`` trials over ``jobs`` worker processes (this process itself when jobs is 1)."""
    if jobs <= 1:
        run_trials(cfg, settings, remaining)
        return
    quotas = [remaining // jobs + (i < remaining % jobs) for i in range(jobs)]
    context = multiprocessing.get_context("spawn")  # no forked torch or helper threads
    procs = [
        context.Process(target=_worker, args=(cfg.to_dict(), asdict(settings), q, i, time.time()))
        for i, q in enumerate(quotas)
        if q > 0
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise AffectFusionError(f"{len(failed)} of {len(procs)} tune workers failed (exit codes {failed}); see above")
