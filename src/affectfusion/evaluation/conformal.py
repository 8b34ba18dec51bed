"""Split conformal prediction: sets and intervals that contain the truth with a chosen probability.

Calibrated on the validation split (exchangeable with the test split, never the test split
itself), the guarantee is marginal coverage >= 1 - alpha for any model:

* single-label classification: APS (Romano et al. 2020), optionally regularised as RAPS
  (Angelopoulos et al. 2021, ``lam`` and ``k_reg``); the randomised score gives coverage close to
  exactly 1 - alpha. :func:`class_sets` with ``rng=None`` returns the deterministic, slightly
  larger set (used for single predictions, where a random set would be confusing).
* multilabel: one binary conformal problem per label (score 1 - p(true value)); each label's set
  is a subset of {absent, present}, so an uncertain label is one whose set holds both.
* regression: absolute-residual intervals ``pred ± q``.

``q`` is the ceil((n + 1)(1 - alpha))-th smallest of the n calibration scores; it is finite only
when n >= :func:`min_calibration_size` (9 at alpha 0.1). A set or interval is only fitted when the
calibration split has that many samples of every class (classification), positives of every label
(multilabel) or samples (regression), and, for classification, when the model errs on it at all
(a saturated split is easier than the data to come): else :func:`unfit_reason` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectfusion.config import RunConfig, TaskConfig
from affectfusion.data.tasks import class_counts
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.calibration import MIN_TEMPERATURE_SAMPLES
from affectfusion.io import read_json
from affectfusion.rundir import RunPaths

FIX = "hold out a bigger (or a separate) split and name it in data.calibration_split, or use a larger alpha"
KINDS = ("classification", "multilabel", "regression")
DEFAULT_ALPHA = 0.1  # the level the size warnings at train time are stated for


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The finite-sample-corrected (1 - alpha) quantile; +inf when n is too small for the level."""
    if not 0.0 < alpha < 1.0:
        raise AffectFusionError(f"conformal alpha must be in (0, 1), got {alpha}")
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    if n == 0:
        raise AffectFusionError("conformal calibration needs labelled samples; the calibration split has none")
    k = int(np.ceil((n + 1) * (1.0 - alpha)))  # the k-th smallest score
    return float("inf") if k > n else float(np.partition(scores, k - 1)[k - 1])


def min_calibration_size(alpha: float) -> int:
    """The smallest n with ceil((n + 1)(1 - alpha)) <= n: below it the threshold is infinite."""
    n = max(1, int((1.0 - alpha) / alpha) - 1)
    while int(np.ceil((n + 1) * (1.0 - alpha))) > n:
        n += 1
    return n


def unfit_reason(task: TaskConfig, pred: np.ndarray, y: np.ndarray, alpha: float, split: str) -> str | None:
    """Why ``split``'s labelled predictions cannot calibrate ``task`` at level 1 - alpha, else None."""
    need, y = min_calibration_size(alpha), np.asarray(y)
    if task.type == "regression":
        counts = {"samples": len(y)}
    elif task.type == "multilabel":
        counts = {f"label {c!r}": int(n) for c, n in zip(task.classes or [], y.sum(0), strict=False)}
    else:
        per_class = np.bincount(y.astype(np.int64), minlength=len(task.classes or []))
        counts = {f"class {c!r}": int(n) for c, n in zip(task.classes or [], per_class, strict=False)}
    short = [f"{name} {n}" for name, n in counts.items() if n < need]
    if short:
        per = {"regression": "", "classification": " per class"}.get(task.type, " positives per label")
        return (
            f"{split!r} has too few samples for {1 - alpha:.0%} coverage ({', '.join(short[:4])}"
            f"{', ...' if len(short) > 4 else ''}; at least {need}{per} needed); {FIX}"
        )
    if task.type == "classification" and np.all(np.asarray(pred).argmax(1) == y):
        return (
            f"the model makes no error on {split!r} (accuracy 1.0): sets calibrated on a saturated split "
            "under-cover the data to come; hold out a split like it and name it in data.calibration_split"
        )
    return None


def small_split_warning(cfg: RunConfig, samples: Sequence[Sample]) -> str | None:
    """A sentence when the validation split (``samples``) is below the sizes early stopping (and, when it
    is also the calibration split, temperature scaling and 90 % conformal sets) can be trusted on."""
    counts = {
        f"{t.name} {c!r}": int(n)
        for t in cfg.tasks
        if t.type != "regression"
        for c, n in zip(t.classes or [], class_counts(samples, t), strict=False)
    }
    fits = cfg.data.calibration_split is None
    return split_too_small(f"the validation split {cfg.data.val_split!r}", len(samples), counts, fits)


def split_too_small(name: str, n: int, counts: dict[str, int], fits: bool = True) -> str | None:
    """A sentence when a validation split of ``n`` samples (``counts``: per class) is too small to select
    epochs on, and, if it is also the calibration split (``fits``), to calibrate on; else None."""
    need = min_calibration_size(DEFAULT_ALPHA)
    short = [f"{c} {k}" for c, k in counts.items() if k < need]
    if n >= MIN_TEMPERATURE_SAMPLES and not short:
        return None
    detail = f" (fewer than {need} of {', '.join(short[:3])}{', ...' if len(short) > 3 else ''})" if short else ""
    trust = (
        f"; calibrate (needs {MIN_TEMPERATURE_SAMPLES} samples) and {1 - DEFAULT_ALPHA:.0%} conformal sets (need "
        f"{need} per class) will refuse it: add rows, or name a bigger held-out split in data.calibration_split"
        if fits
        else ""
    )
    return f"{name} has only {n} samples{detail}: early stopping and model selection go by noise on so few{trust}"


def _sorted_mass(proba: np.ndarray, lam: float, k_reg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order of classes by probability, the (penalised) cumulative mass up to and including each
    ranked class, and the probability (plus penalty) of each ranked class."""
    order = np.argsort(-proba, axis=1, kind="stable")
    ranked = np.take_along_axis(proba, order, axis=1)
    penalty = lam * np.maximum(np.arange(1, proba.shape[1] + 1) - k_reg, 0)
    step = ranked + penalty
    return order, np.cumsum(step, axis=1), step


def aps_scores(
    proba: np.ndarray, y: np.ndarray, rng: np.random.Generator | None, lam: float = 0.0, k_reg: int = 0
) -> np.ndarray:
    """(R)APS non-conformity score of the true class: the mass of the classes ranked above it plus a
    uniform share ``u`` of its own (u = 1 without ``rng``)."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y, dtype=np.int64)
    order, cum, step = _sorted_mass(proba, lam, k_reg)
    rank = np.argmax(order == y[:, None], axis=1)
    rows = np.arange(len(y))
    u = rng.uniform(size=len(y)) if rng is not None else np.ones(len(y))
    return cum[rows, rank] - (1.0 - u) * step[rows, rank]


def class_sets(
    proba: np.ndarray, q: float, rng: np.random.Generator | None, lam: float = 0.0, k_reg: int = 0
) -> np.ndarray:
    """[n, K] boolean prediction sets: class j is in when its (randomised) score is <= q.

    Without ``rng`` a class is in when the mass ranked strictly above it is below ``q`` (every
    class the randomised set could hold), and the top class is always in.
    """
    proba = np.asarray(proba, dtype=np.float64)
    order, cum, step = _sorted_mass(proba, lam, k_reg)
    if rng is None:
        keep_ranked = (cum - step) <= q
        keep_ranked[:, 0] = True
    else:
        u = rng.uniform(size=(len(proba), 1))
        keep_ranked = (cum - (1.0 - u) * step) <= q
    sets = np.zeros_like(keep_ranked)
    np.put_along_axis(sets, order, keep_ranked, axis=1)
    return sets


def label_scores(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[n, K] multilabel scores: 1 - the probability given to each label's true value."""
    proba = np.asarray(proba, dtype=np.float64)
    return 1.0 - np.where(np.asarray(y) == 1, proba, 1.0 - proba)


def label_sets(proba: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, whether "present" and whether "absent" is in its set (both: uncertain)."""
    proba = np.asarray(proba, dtype=np.float64)
    return (1.0 - proba) <= q, proba <= q


@dataclass
class Conformal:
    """One task's calibrated conformal predictor (stored in the run as JSON)."""

    task: str
    kind: str  # classification | multilabel | regression
    alpha: float
    q: list[float]  # one threshold; one per label for multilabel
    n_calibration: int
    lam: float = 0.0
    k_reg: int = 0

    @property
    def method(self) -> str:
        return {
            "classification": "RAPS" if self.lam > 0 else "APS",
            "multilabel": "per-label",
            "regression": "absolute residual",
        }[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conformal:
        """The stored predictor, checked: finite non-negative thresholds, alpha in (0, 1), a known kind."""
        try:
            conf = cls(**{k: v for k, v in d.items() if k != "method"})
            q = np.asarray(conf.q, dtype=np.float64)
            ok = conf.kind in KINDS and 0.0 < float(conf.alpha) < 1.0 and q.ndim == 1 and q.size > 0
        except (TypeError, ValueError):
            raise AffectFusionError(f"not a conformal entry: {d!r:.120}") from None
        if not ok or not np.all(np.isfinite(q)) or np.any(q < 0):
            raise AffectFusionError(f"thresholds q {conf.q!r:.60} must be finite, non-negative numbers")
        return conf

    def predict(self, pred: np.ndarray, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Sets / intervals for ``pred`` (probabilities, or predicted values for regression)."""
        if self.kind == "classification":
            return {"sets": class_sets(pred, self.q[0], rng, self.lam, self.k_reg)}
        if self.kind == "multilabel":
            present, absent = label_sets(pred, np.asarray(self.q))
            return {"present": present, "absent": absent}
        pred = np.asarray(pred, dtype=np.float64)
        return {"low": pred - self.q[0], "high": pred + self.q[0]}


def calibrate(
    kind: str,
    task: str,
    pred: np.ndarray,
    y: np.ndarray,
    alpha: float,
    seed: int = 0,
    lam: float = 0.0,
    k_reg: int = 0,
) -> Conformal:
    """Fit the conformal threshold(s) of one task on labelled calibration predictions."""
    if kind == "classification":
        scores = aps_scores(pred, y, np.random.default_rng(seed), lam, k_reg)
        q = [conformal_quantile(scores, alpha)]
    elif kind == "multilabel":
        scores = label_scores(pred, y)
        q = [conformal_quantile(scores[:, k], alpha) for k in range(scores.shape[1])]
    elif kind == "regression":
        q = [conformal_quantile(np.abs(np.asarray(y, dtype=np.float64) - pred), alpha)]
    else:
        raise AffectFusionError(f"no conformal method for task type {kind!r}")
    if not np.all(np.isfinite(q)):
        raise AffectFusionError(
            f"{len(y)} calibration samples are too few for {1 - alpha:.0%} coverage "
            f"(at least {min_calibration_size(alpha)} needed)"
        )
    return Conformal(task, kind, alpha, q, len(y), lam, k_reg)


def evaluate(conf: Conformal, pred: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Empirical coverage and mean set size (interval width) of ``conf`` on labelled test predictions."""
    y = np.asarray(y)
    out: dict[str, float] = {"target_coverage": 1.0 - conf.alpha, "n": len(y)}
    if conf.kind == "classification":
        sets = conf.predict(pred, np.random.default_rng(seed + 1))["sets"]
        out["coverage"] = float(sets[np.arange(len(y)), y.astype(np.int64)].mean())
        out["mean_set_size"] = float(sets.sum(1).mean())
        out["singleton_share"] = float((sets.sum(1) == 1).mean())
    elif conf.kind == "multilabel":
        p = conf.predict(pred)
        covered = np.where(y == 1, p["present"], p["absent"])
        out["coverage"] = float(covered.mean())  # per (sample, label), the level each label is calibrated to
        out["mean_set_size"] = float((p["present"].astype(int) + p["absent"]).sum(1).mean())
        out["uncertain_labels_per_sample"] = float((p["present"] & p["absent"]).sum(1).mean())
    else:
        iv = conf.predict(pred)
        y = y.astype(np.float64)
        out["coverage"] = float(((iv["low"] <= y) & (y <= iv["high"])).mean())
        out["mean_width"] = float(np.mean(iv["high"] - iv["low"]))
    return out


def read_conformal(paths: RunPaths) -> dict[str, Conformal]:
    """Task -> calibrated conformal predictor ({} if ``test --conformal`` never ran); an invalid entry is an error."""
    if not paths.conformal.is_file():
        return {}
    try:
        return {t: Conformal.from_dict(d) for t, d in read_json(paths.conformal)["tasks"].items()}
    except (KeyError, TypeError, AttributeError):
        raise AffectFusionError(f"{paths.conformal}: expected tasks.<task> conformal entries") from None


def served_conformal(
    paths: RunPaths, tasks: list[TaskConfig], temperatures: dict[str, float]
) -> tuple[dict[str, Conformal], dict[str, str]]:
    """(task -> conformal predictor to serve, task -> why none is served). A refused, unreadable, invalid
    or stale entry (fitted for another task type or class count, or on probabilities scaled by another
    temperature than the run's) is left out, never an error."""
    if not paths.conformal.is_file():
        return {}, {}
    again = "run affectfusion test RUN --conformal ALPHA again"
    try:
        saved = read_json(paths.conformal)
        entries, refused = saved["tasks"], saved.get("refused") or {}
        scaled_with = saved.get("temperatures")  # absent in files written before it was recorded
        if not isinstance(entries, dict) or not isinstance(refused, dict):
            raise TypeError
    except (AffectFusionError, KeyError, TypeError) as e:
        why = f"{paths.conformal.name} is unreadable ({e if isinstance(e, AffectFusionError) else 'no tasks'})"
        return {}, {t.name: f"no conformal set: {why}; {again}" for t in tasks}
    served, why_not = {}, {}
    for t in tasks:
        if t.name in refused:
            why_not[t.name] = f"no conformal set: {refused[t.name]}"
            continue
        if t.name not in entries:
            continue
        try:
            conf = Conformal.from_dict(entries[t.name])
        except AffectFusionError as e:
            why_not[t.name] = f"no conformal set: {paths.conformal.name}, task {t.name!r}: {e}; {again}"
            continue
        expected_q = len(t.classes or []) if t.type == "multilabel" else 1
        if conf.kind != t.type or len(conf.q) != expected_q:
            why_not[t.name] = (
                f"no conformal set: {paths.conformal.name} was fitted for a {conf.kind} task with {len(conf.q)} "
                f"threshold(s), the run's {t.name!r} is {t.type} with {expected_q}; {again}"
            )
        elif isinstance(scaled_with, dict) and not _same_temperature(scaled_with.get(t.name), temperatures.get(t.name)):
            why_not[t.name] = (
                f"no conformal set: it was fitted on probabilities at temperature {scaled_with.get(t.name)}, the "
                f"run's temperature is now {temperatures.get(t.name)} (calibrated since); {again}"
            )
        else:
            served[t.name] = conf
    return served, why_not


def _same_temperature(a: Any, b: float | None) -> bool:
    """The temperature the sets were fitted at is the run's (a refit on the same split may move it by a
    float rounding: the sets it gives are the same)."""
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, int | float) and bool(np.isclose(float(a), b, rtol=1e-4, atol=0.0))
