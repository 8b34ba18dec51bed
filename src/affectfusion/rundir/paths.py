"""The run directory: every file name in it and the readers (the writer's lock: :mod:`affectfusion.runlock`).

``train`` writes a run; ``test``, ``compare``, ``analyze``, ``predict`` and ``serve`` read it back
through this module only, so a file name lives here and nowhere else.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from affectfusion.config import RunConfig, load_raw, validate
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json, read_jsonl

if TYPE_CHECKING:  # the data package loads torch: reading paths, metrics and locks must not
    from affectfusion.data.tasks import TargetScaler
    from affectfusion.data.types import ModalitySpec


@dataclass(frozen=True)
class RunPaths:
    """Where each file of a run lives (the only place that names them)."""

    root: Path

    METRICS = "metrics.json"  # in each eval/<split>/ folder
    PREDICTIONS = "predictions.csv"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def meta(self) -> Path:
        return self.root / "meta.json"

    @property
    def history(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def thresholds(self) -> Path:
        """Tuned multi-label decision thresholds."""
        return self.root / "thresholds.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def log(self) -> Path:
        """What training printed, when it ran in a worker process (``cv``) rather than a terminal."""
        return self.root / "train.log"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @property
    def last_average(self) -> Path:
        """The moving average of the weights at the last epoch (``train.ema_decay``), for resuming."""
        return self.checkpoints / "last.ema.safetensors"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files (``train.track: [tensorboard]``)."""
        return self.root / "tb"

    def eval_dir(self, split: str) -> Path:
        return self.root / "eval" / split

    def metrics(self, split: str) -> Path:
        return self.eval_dir(split) / self.METRICS

    def predictions(self, split: str) -> Path:
        return self.eval_dir(split) / self.PREDICTIONS

    def analysis_dir(self, name: str) -> Path:
        return self.root / "analysis" / name

    def analysis_report(self, name: str) -> Path:
        """The self-contained HTML report of ``affectfusion analyze`` for ``name``."""
        return self.analysis_dir(name) / "report.html"

    def evaluated_splits(self) -> list[str]:
        return [p.parent.name for p in sorted(self.root.glob(f"eval/*/{self.METRICS}"))]

    # -- trust files: written by calibrate / test --conformal / --by / check-data ----------
    @property
    def calibration(self) -> Path:
        """Temperatures fitted on the validation split, with before/after calibration errors."""
        return self.root / "calibration.json"

    @property
    def conformal(self) -> Path:
        """Split-conformal thresholds calibrated on the validation split (used by the Predictor)."""
        return self.root / "conformal.json"

    @property
    def data_check(self) -> Path:
        """The data check ``train`` ran before training (leakage, duplicates, imbalance, shift)."""
        return self.root / "data_check.json"

    def coverage(self, split: str) -> Path:
        """Empirical conformal coverage and set size / interval width on a split."""
        return self.eval_dir(split) / "conformal.json"

    def subgroups(self, split: str) -> Path:
        """Per-subgroup metrics with bootstrap intervals (CSV; the JSON next to it has the gaps)."""
        return self.eval_dir(split) / "subgroups.csv"

    def subgroup_gaps(self, split: str) -> Path:
        return self.eval_dir(split) / "subgroups.json"

    def cross_corpus(self, split: str) -> Path:
        """Scores on another corpus through a label map (``eval/<corpus>_<split>/``)."""
        return self.eval_dir(split) / "cross_corpus.json"

    @property
    def training_curves(self) -> Path:
        return self.plots / "training_curves.png"

    def confusion_plot(self, split: str, task: str) -> Path:
        return self.plots / f"confusion_{split}_{task}.png"

    def reliability_plot(self, split: str, task: str) -> Path:
        return self.plots / f"reliability_{split}_{task}.png"

    def attribution(self, split: str) -> Path:
        """Shapley attribution per class, written by ``analyze`` (the PNG beside it: :meth:`attribution_plot`)."""
        return self.analysis_dir(split) / "attribution.json"

    def attribution_plot(self, split: str) -> Path:
        return self.analysis_dir(split) / "attribution.png"

    def multilabel_analysis(self, split: str) -> Path:
        """``analyze`` of a multi-label run: per-label errors and attribution."""
        return self.analysis_dir(split) / "multilabel.json"

    def eval_names(self) -> list[str]:
        """Every folder under eval/ (splits, and cross-corpus evaluations that have no metrics.json)."""
        return sorted(p.name for p in (self.root / "eval").glob("*") if p.is_dir())

    def analysis_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / "analysis").glob("*") if p.is_dir())


@dataclass(frozen=True)
class CvPaths:
    """A cross-validation folder: one ordinary run folder per fold, and the summary over folds."""

    root: Path

    def fold(self, index: int) -> Path:
        return self.root / f"fold{index}"

    @property
    def summary(self) -> Path:
        """Protocol, per-fold and aggregated metrics, pooled confusion matrices, timings."""
        return self.root / "cv.json"

    @property
    def report(self) -> Path:
        return self.root / "cv.md"

    @property
    def pooled_predictions(self) -> Path:
        """Every fold's test predictions in one table (each sample once), with its fold."""
        return self.root / "predictions.csv"


def is_cv(path: Path) -> bool:
    """A folder holding a finished cross-validation (its cv.json)."""
    return CvPaths(Path(path)).summary.is_file()


@dataclass(frozen=True)
class TunePaths:
    """The files of an ``affectfusion tune`` folder: the study, one run folder per trial, the result."""

    root: Path

    @property
    def storage(self) -> Path:
        """The default Optuna storage (SQLite), so that an interrupted study resumes."""
        return self.root / "study.db"

    def trial(self, number: int) -> Path:
        return self.root / "trials" / f"trial{number}"

    @property
    def best_config(self) -> Path:
        """The full resolved config of the best trial, trainable as it is."""
        return self.root / "best.yaml"

    @property
    def best_seeds(self) -> Path:
        """``--seeds K``: the best config trained once per seed (``seed<k>/`` run folders)."""
        return self.root / "best"

    @property
    def summary(self) -> Path:
        return self.root / "tune.json"

    @property
    def report(self) -> Path:
        return self.root / "tune.md"

    @property
    def history_plot(self) -> Path:
        return self.root / "plots" / "optimisation_history.png"

    @property
    def importance_plot(self) -> Path:
        return self.root / "plots" / "param_importances.png"


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


def run_kind(path: Path) -> str | None:
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
    """Validated config and metadata of a trained fusion run (weights: ``training.trainer.load_model``)."""
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
