"""How far to trust a predicted probability: calibration errors, reliability curves, temperature scaling.

A classifier's softmax is calibrated when, among predictions made with confidence p, a share p is
right. Deep nets are usually over-confident; temperature scaling (Guo et al. 2017) divides the
logits by one scalar T > 0 fitted to minimise the negative log-likelihood on the *validation*
split. T > 0 never changes the argmax, so accuracy is untouched while confidences become honest.

The probabilities a run stores are ``softmax(z)``; ``log p`` differs from ``z`` by a per-row
constant, so ``softmax(log p / T) == softmax(z / T)`` and the temperature can be applied to stored
probabilities as well as to logits.

Conventions: ECE/MCE use the top-label confidence in ``n_bins`` equal-width bins (ECE weights bins
by their share of samples, MCE takes the worst non-empty bin); Brier is the mean over samples of
the squared distance between the probability vector and the one-hot truth (0 best, 2 worst).
Multilabel tasks are scored per (sample, class) as binary probabilities; only single-label
classification gets a temperature (multilabel decision thresholds are tuned on raw probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json
from affectfusion.rundir import RunPaths

N_BINS = 15
T_MIN, T_MAX = 0.05, 20.0  # temperatures searched; one at a bound means the split could not pin it down
# Fewer labelled samples than this and one temperature is fitted to noise: calibration is refused.
MIN_TEMPERATURE_SAMPLES = 30
FIX = "hold out a bigger (or a separate) split and name it in data.calibration_split"
PROB_FLOOR = 1e-12  # probabilities are clipped here before a log (the ONNX graph clips the same way)


@dataclass(frozen=True)
class Reliability:
    """Per-bin mean confidence, accuracy and count (empty bins have count 0 and NaN means)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def _top_label(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of each prediction; a 2-d ``y`` (multilabel) is scored per entry."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y)
    if y.ndim == 2:  # multilabel: every (sample, class) is a binary probability of the positive
        return proba.ravel(), y.ravel().astype(np.float64)
    if proba.ndim != 2 or proba.shape[0] != y.shape[0]:
        raise ValueError(f"proba must be [n, K] with n = {y.shape[0]}, got {proba.shape}")
    return proba.max(1), (proba.argmax(1) == y).astype(np.float64)


def reliability(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Bin predictions by confidence; the gap between accuracy and confidence is miscalibration."""
    conf, correct = _top_label(proba, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, n_bins) / count
        mean_acc = np.bincount(idx, correct, n_bins) / count
    return Reliability(edges, mean_conf, mean_acc, count)


def ece(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error: sample-weighted mean |accuracy - confidence| over bins."""
    r = reliability(proba, y, n_bins)
    keep = r.count > 0
    return float(np.sum(r.count[keep] * np.abs(r.accuracy[keep] - r.confidence[keep])) / r.count.sum())


def mce(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Maximum calibration error: the worst non-empty bin's |accuracy - confidence|."""
    r = reliability(proba, y, n_bins)
    keep = r.count > 0
    return float(np.max(np.abs(r.accuracy[keep] - r.confidence[keep])))


def brier(proba: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score (mean squared distance to the one-hot truth); per entry for multilabel."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y)
    if y.ndim == 2:
        return float(np.mean((proba - y) ** 2))
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    proba = np.asarray(proba, dtype=np.float64)
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], PROB_FLOOR, None))))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: the temperature-scaled probabilities (same argmax)."""
    # numpy, not scipy.special: every calibrated prediction comes through here and scipy costs a fifth of
    # torch's import time; shifting by the row maximum keeps exp() finite, as scipy's softmax does
    z = np.log(np.clip(np.asarray(proba, dtype=np.float64), PROB_FLOOR, None)) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the NLL of ``apply_temperature(proba, T)`` (searched over log T)."""
    from scipy.optimize import minimize_scalar  # only when calibrating, never when predicting
    from scipy.special import log_softmax

    y = np.asarray(y, dtype=np.int64)
    if y.size == 0:
        raise AffectFusionError("cannot fit a temperature on a split without labelled samples")
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), PROB_FLOOR, None))
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(logits / np.exp(log_t), axis=1)[rows, y]))

    res = minimize_scalar(loss, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded")
    return float(np.exp(res.x))


def calibration_scores(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """ECE, MCE and Brier (and NLL and accuracy for single-label)."""
    out = {"ece": ece(proba, y, n_bins), "mce": mce(proba, y, n_bins), "brier": brier(proba, y)}
    if np.asarray(y).ndim == 1:
        out["nll"] = nll(proba, y)
        out["accuracy"] = float(np.mean(np.asarray(proba).argmax(1) == y))
    return out


def unfit_reason(proba: np.ndarray, y: np.ndarray, split: str) -> str | None:
    """Why ``split`` cannot carry a temperature (too few samples, or no error to learn from), else None."""
    y = np.asarray(y)
    if len(y) < MIN_TEMPERATURE_SAMPLES:
        return f"{split!r} has {len(y)} labelled samples, temperature scaling needs {MIN_TEMPERATURE_SAMPLES}; {FIX}"
    if np.all(np.asarray(proba).argmax(1) == y):
        return (
            f"the model makes no error on {split!r} (accuracy 1.0): a saturated split cannot say how confident "
            "to be; hold out a split like the data to come and name it in data.calibration_split"
        )
    return None


def served_temperatures(paths: RunPaths, tasks: list[TaskConfig]) -> tuple[dict[str, float], dict[str, str]]:
    """(task -> temperature to apply, task -> why none is applied). A refused, missing, unreadable or
    invalid entry gives no temperature (the probabilities are served unscaled), never an error."""
    if not paths.calibration.is_file():
        return {}, {}
    classification = [t.name for t in tasks if t.type == "classification"]
    try:
        saved = read_json(paths.calibration)["tasks"]
        if not isinstance(saved, dict):
            raise TypeError
    except (AffectFusionError, KeyError, TypeError) as e:
        why = f"{paths.calibration.name} is unreadable ({e if isinstance(e, AffectFusionError) else 'no tasks'})"
        return {}, dict.fromkeys(classification, f"not calibrated: {why}; run affectfusion calibrate again")
    temps, why_not = {}, {}
    for task in classification:
        entry = saved.get(task)
        if not isinstance(entry, dict):
            continue
        t = entry.get("temperature")
        if entry.get("refused"):
            why_not[task] = f"not calibrated: {entry['refused']}"
        elif isinstance(t, int | float) and not isinstance(t, bool) and np.isfinite(t) and t > 0:
            temps[task] = float(t)
        else:
            why_not[task] = (
                f"not calibrated: {paths.calibration.name} holds temperature {t!r} for {task!r} (expected a "
                "positive number); run affectfusion calibrate again"
            )
    return temps, why_not


def task_calibration(
    task: TaskConfig,
    val: tuple[np.ndarray, np.ndarray],
    evals: dict[str, tuple[np.ndarray, np.ndarray]],
    split: str = "validation",
) -> tuple[dict[str, Any], dict[str, dict[str, Reliability]]]:
    """Fit a temperature on ``val`` (proba, y; the split named ``split``) and score every split in
    ``evals`` before and after.

    A split too small or saturated, or a temperature at a search bound, gets no temperature: the entry
    says why under ``refused`` and only the scores before are given. Returns the JSON entry for the task
    and the reliability curves per split (for plots).
    """
    entry: dict[str, Any] = {"type": task.type, "splits": {}}
    curves: dict[str, dict[str, Reliability]] = {}
    temperature = None
    if task.type == "classification":
        entry["refused"] = unfit_reason(*val, split)
        temperature = fit_temperature(*val) if entry["refused"] is None else None
        if temperature is not None and not T_MIN * 1.05 < temperature < T_MAX / 1.05:
            entry["refused"] = (
                f"the temperature fitted on {split!r} ({temperature:.3g}) sits at the search bound "
                f"({T_MIN}-{T_MAX}): the split cannot pin it down; {FIX}"
            )
            temperature = None
        if entry["refused"] is None:
            del entry["refused"]
            entry["temperature"] = temperature
    for split, (proba, y) in evals.items():
        scores = {"n": len(y), "before": calibration_scores(proba, y)}
        curves[split] = {"before": reliability(proba, y)}
        if temperature is not None:
            scaled = apply_temperature(proba, temperature)
            scores["after"] = calibration_scores(scaled, y)
            curves[split][f"after (T = {temperature:.2f})"] = reliability(scaled, y)
        entry["splits"][split] = scores
    return entry, curves
