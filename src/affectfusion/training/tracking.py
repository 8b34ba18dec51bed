"""Experiment tracking: a run's per-epoch metrics, resolved config and report in TensorBoard and MLflow.

``train.track: [tensorboard, mlflow]`` (off by default). TensorBoard event files go to the run's own
``tb/`` folder, so ``tensorboard --logdir runs/`` shows every run, one log folder each. MLflow logs to
``train.tracking_uri``, by default a SQLite store under ``runs/mlruns`` (MLflow refuses its plain file
store since 3.x; SQLite works offline), artifacts beside it. A seed sweep or a tune study is one
parent MLflow run with a child run per seed or trial. Both libraries are optional extras
(``pip install affectfusion[track]``) imported only when a config asks for them; their INFO logs and
deprecation warnings are kept off the terminal.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from affectfusion.config import RunConfig
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json
from affectfusion.rundir import MLFLOW_STORE, RunPaths

MLFLOW_PARAM_LIMIT = 6000  # characters MLflow keeps of a parameter value
TAG_FOLDER = "affectfusion.folder"
TAG_STOPPED = "affectfusion.stopped"


def _missing(library: str) -> AffectFusionError:
    return AffectFusionError(
        f"train.track lists {library}, which is not installed: pip install affectfusion[track] (or drop it)"
    )


def tracking_uri(cfg: RunConfig) -> str:
    """``train.tracking_uri``, else the SQLite store under ``runs/mlruns`` (created on first use)."""
    if cfg.train.tracking_uri:
        return cfg.train.tracking_uri
    MLFLOW_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(MLFLOW_STORE / 'mlflow.db').resolve()}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store (else MLflow would write ./mlruns in the working directory)."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    return (Path(parsed.path).parent / "artifacts").resolve().as_uri()


def mlflow_client(cfg: RunConfig) -> Any:
    """An MlflowClient on the config's store, quiet (its schema migration logs at INFO)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mlflow.tracking import MlflowClient  # optional extra, heavy (~4 s): only when tracking
    except ImportError:
        raise _missing("mlflow") from None
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy deprecations inside MLflow's store
        client = MlflowClient(tracking_uri=tracking_uri(cfg))
        client.search_experiments(max_results=1)  # creates the store's tables now, quietly
    return client


def experiment_id(client: Any, cfg: RunConfig) -> str:
    """The experiment named after the config (seed and trial suffixes dropped), created if new."""
    name = cfg.name.split("/")[0]
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(tracking_uri(cfg)))


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as dotted keys -> strings (lists and component options as YAML flow text)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{dotted}."))
        else:
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            out[dotted] = text.removesuffix("\n...")[:MLFLOW_PARAM_LIMIT]
    return out


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics dict: the primary task's at top level, every task's as ``task.metric``."""
    out = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and k != "n"}
    tasks = metrics.get("tasks") or {}
    if len(tasks) > 1:
        for task, values in tasks.items():
            out.update({f"{task}.{k}": float(v) for k, v in values.items() if isinstance(v, int | float) and k != "n"})
    return out


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """One history line's curves: losses, learning rate and every validation metric."""
    out = {k: float(record[k]) for k in ("train_loss", "val_loss", "lr") if record.get(k) is not None}
    out.update({f"val/{k}": v for k, v in scalar_metrics(record.get("val") or {}).items() if k != "loss"})
    return out


class RunTracker:
    """The trackers of one run: :meth:`on_epoch` is the trainer's epoch callback, :meth:`finish` logs the
    final metrics, report and plots and closes them."""

    def __init__(self, cfg: RunConfig, run_dir: Path, parent: str | None = None) -> None:
        self.paths = RunPaths(Path(run_dir))
        self.writer = self.client = self.run_id = None
        self.last_epoch = 0
        if "tensorboard" in cfg.train.track:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional extra: only when tracking
            except ImportError:
                raise _missing("tensorboard") from None
            self.writer = SummaryWriter(log_dir=str(self.paths.tensorboard))
            self.writer.add_text("config", f"```yaml\n{yaml.safe_dump(cfg.to_dict(), sort_keys=False)}```")
        if "mlflow" in cfg.train.track:
            self.client = mlflow_client(cfg)
            tags = {TAG_FOLDER: str(self.paths.root.resolve())}
            if parent is not None:  # a sweep's runs live in their parent's experiment
                tags["mlflow.parentRunId"] = parent
                eid = self.client.get_run(parent).info.experiment_id
            else:
                eid = experiment_id(self.client, cfg)
            run = self.client.create_run(eid, run_name=cfg.name, tags=tags)
            self.run_id = run.info.run_id
            self._log_params(flat_params(cfg.to_dict()))

    @property
    def callbacks(self) -> list[Any]:
        return [self.on_epoch] if self.writer or self.client else []

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param  # loaded with the client

        assert self.client is not None  # made before the parameters are logged
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        if self.client is not None:
            from mlflow.entities import Metric  # loaded with the client

            now = int(time.time() * 1000)
            metrics = [Metric(k.replace("/", "_"), v, now, step) for k, v in values.items()]
            self.client.log_batch(self.run_id, metrics=metrics)

    def on_epoch(self, epoch: int, record: dict[str, Any], value: float) -> None:
        self.last_epoch = epoch
        self._log_metrics(epoch_scalars(record), epoch)

    def finish(self, error: BaseException | None = None) -> None:
        """Log the evaluated splits, report and plots (or why the run stopped) and close."""
        if error is None:
            final = {}
            for split in self.paths.evaluated_splits():
                final.update(
                    {f"{split}/{k}": v for k, v in scalar_metrics(read_json(self.paths.metrics(split))).items()}
                )
            self._log_metrics(final, self.last_epoch)
        if self.writer is not None:
            self.writer.close()
        if self.client is None:
            return
        if error is None:
            for path in (self.paths.report, self.paths.config, self.paths.meta):
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
            if self.paths.plots.is_dir():
                self.client.log_artifacts(self.run_id, str(self.paths.plots), "plots")
        else:
            self.client.set_tag(self.run_id, TAG_STOPPED, type(error).__name__)
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self.client.set_terminated(self.run_id, status)


@contextmanager
def tracked_run(cfg: RunConfig, run_dir: Path, parent: str | None = None) -> Iterator[RunTracker]:
    """A :class:`RunTracker` for the run, finished (or marked failed, with the exception's name) on exit."""
    tracker = RunTracker(cfg, run_dir, parent)
    try:
        yield tracker
    except BaseException as e:
        tracker.finish(e)
        raise
    tracker.finish()


@contextmanager
def parent_run(cfg: RunConfig, folder: Path, kind: str) -> Iterator[str | None]:
    """The MLflow run that groups a sweep's runs (``kind``: seeds, tune), or None without MLflow tracking.

    Running the same sweep again (a resumed tune) continues its parent run rather than starting another.
    """
    if "mlflow" not in cfg.train.track:
        yield None
        return
    client = mlflow_client(cfg)
    eid = experiment_id(client, cfg)
    key = str(Path(folder).resolve())
    query = f"tags.`{TAG_FOLDER}` = '{key}' and tags.`affectfusion.kind` = '{kind}'"
    found = client.search_runs([eid], filter_string=query, max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        tags = {TAG_FOLDER: key, "affectfusion.kind": kind}
        run_id = client.create_run(eid, run_name=f"{cfg.name.split('/')[0]} {kind}", tags=tags).info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def log_summary(cfg: RunConfig, run_id: str, metrics: dict[str, dict[str, Any]], files: list[Path]) -> None:
    """A sweep's result on its MLflow parent run: each ``metric -> {mean, std, ...}`` as ``<metric>.mean`` /
    ``<metric>.std``, and its report files as artifacts."""
    client = mlflow_client(cfg)
    for name, agg in metrics.items():
        for stat in ("mean", "std"):
            if isinstance(agg.get(stat), int | float):
                client.log_metric(run_id, f"{name}.{stat}".replace("/", "_"), float(agg[stat]))
    for f in files:
        if Path(f).is_file():
            client.log_artifact(run_id, str(f))
