"""Every file and folder name of a run, and of the folders that hold runs (sweeps, seeds, cross-validation,
tuning, specialists, ablations): the one place that names them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNS = Path("runs")  # where a command writes when it is given no output folder (relative to the working directory)
MLFLOW_STORE = RUNS / "mlruns"  # the default MLflow store (SQLite), beside the runs it tracks
HTML_REPORT = "report.html"  # the self-contained page of analyze, ablate and robustness, in their output folder


def default_run_dir(name: str, suffix: str = "") -> Path:
    """``runs/<name>``, or ``runs/<name>_<suffix>`` (a cross-validation ``cv``, a tuning ``tune``...)."""
    return RUNS / (f"{name}_{suffix}" if suffix else name)


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
    def export(self) -> Path:
        """The ONNX export's default folder (``affectfusion export``)."""
        return self.root / "export"

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
        return self.analysis_dir(name) / HTML_REPORT

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
    def ensemble(self) -> Path:
        """The member runs of a folder served as one model, their mean (``recipes/ensemble``)."""
        return self.root / "ensemble.json"

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


@dataclass(frozen=True)
class TunePaths:
    """The files of an ``affectfusion tune`` folder: the study, one run folder per trial, the result."""

    root: Path

    BEST_CONFIG = "best.yaml"

    @property
    def storage(self) -> Path:
        """The default Optuna storage (SQLite), so that an interrupted study resumes."""
        return self.root / "study.db"

    def trial(self, number: int) -> Path:
        return self.root / "trials" / f"trial{number}"

    @property
    def best_config(self) -> Path:
        """The full resolved config of the best trial, trainable as it is."""
        return self.root / self.BEST_CONFIG

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


@dataclass(frozen=True)
class ComparisonPaths:
    """A comparison of runs (``compare``, a config's variants): the table, its markdown and its plot."""

    root: Path

    @property
    def table(self) -> Path:
        return self.root / "comparison.csv"

    @property
    def report(self) -> Path:
        return self.root / "comparison.md"

    @property
    def plot(self) -> Path:
        return self.root / "comparison.png"


@dataclass(frozen=True)
class SweepPaths:
    """A config with variants: one run folder per variant, and their comparison beside them."""

    root: Path

    def variant(self, name: str) -> Path:
        return self.root / name

    @property
    def comparison(self) -> ComparisonPaths:
        return ComparisonPaths(self.root / "comparison")


@dataclass(frozen=True)
class SeedAggregatePaths:
    """Scores over seeds (``train --seeds``, ``aggregate``): summary, pairwise tests, markdown and plot."""

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "seeds_summary.csv"

    @property
    def pairwise(self) -> Path:
        return self.root / "seeds_pairwise.csv"

    @property
    def report(self) -> Path:
        return self.root / "seeds.md"

    @property
    def plot(self) -> Path:
        return self.root / "seeds.png"


@dataclass(frozen=True)
class SeedPaths:
    """A config trained once per seed: a folder per seed (a run, or a sweep) and the aggregate over them."""

    root: Path

    def seed(self, seed: int) -> Path:
        return self.root / f"seed{seed}"

    @staticmethod
    def is_seed_folder(name: str) -> bool:
        """Whether a folder name is one :meth:`seed` makes (``seed<k>``)."""
        return re.fullmatch(r"seed\d+", name) is not None

    @property
    def aggregate(self) -> SeedAggregatePaths:
        return SeedAggregatePaths(self.root / "seeds")


@dataclass(frozen=True)
class SpecialistsPaths:
    """A specialists run: one run per modality, their exported embeddings, the fusion trained on them, and
    the subset scores."""

    root: Path

    def specialist(self, modality: str) -> Path:
        return self.root / "specialists" / modality

    @property
    def fusion(self) -> Path:
        return self.root / "fusion"

    @property
    def fusion_embeddings(self) -> Path:
        """In the fusion run: which export (and which specialist checkpoints) it was trained on."""
        return self.fusion / "embeddings.json"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def manifest(self) -> Path:
        return self.embeddings / "manifest.csv"

    @property
    def provenance(self) -> Path:
        return self.embeddings / "provenance.json"

    def embedding_file(self, modality: str, split: str) -> Path:
        return self.embeddings / f"{modality}_{split}.npz"

    @property
    def subsets(self) -> Path:
        return self.root / "subsets"

    @property
    def subsets_json(self) -> Path:
        return self.subsets / "subsets.json"

    @property
    def subsets_csv(self) -> Path:
        return self.subsets / "subsets.csv"

    @property
    def subsets_report(self) -> Path:
        return self.subsets / "subsets.md"


@dataclass(frozen=True)
class AblationPaths:
    """An ablation folder: a run per variant and seed, the effect table and its plots, and the report."""

    root: Path

    def run(self, variant: str, seed: int) -> Path:
        return SeedPaths(self.root / variant).seed(seed)

    @property
    def table(self) -> Path:
        return self.root / "ablation.csv"

    @property
    def summary(self) -> Path:
        return self.root / "ablation.json"

    @property
    def plot(self) -> Path:
        return self.root / "ablation.png"

    @property
    def effect_plot(self) -> Path:
        return self.root / "ablation_effect.png"

    @property
    def markdown(self) -> Path:
        return self.root / "ablation.md"

    @property
    def report(self) -> Path:
        return self.root / HTML_REPORT
