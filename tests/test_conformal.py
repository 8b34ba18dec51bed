"""Truth-known conformal tests: empirical coverage lands at the target over many seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.conformal import (
    Conformal,
    calibrate,
    class_sets,
    conformal_quantile,
    evaluate,
    min_calibration_size,
    split_too_small,
    unfit_reason,
)

SEEDS = range(20)
N = 1500


def classification_data(seed: int, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A mediocre, mis-calibrated classifier: labels from one softmax, probabilities from a sharper one."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (2 * N, k))
    y = np.array([rng.choice(k, p=p) for p in softmax(logits, axis=1)])
    return softmax(2.5 * logits, axis=1), y


@pytest.mark.parametrize("alpha", [0.1, 0.2])
@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_class_sets_cover_at_the_target(alpha: float, lam: float) -> None:
    coverages, sizes = [], []
    for seed in SEEDS:
        proba, y = classification_data(seed)
        conf = calibrate("classification", "t", proba[:N], y[:N], alpha, seed=seed, lam=lam, k_reg=1)
        result = evaluate(conf, proba[N:], y[N:], seed=seed)
        coverages.append(result["coverage"])
        sizes.append(result["mean_set_size"])
    assert all(abs(c - (1 - alpha)) <= 0.03 for c in coverages), coverages
    assert abs(np.mean(coverages) - (1 - alpha)) <= 0.01
    assert 1.0 < np.mean(sizes) < 6.0  # informative: neither singletons everywhere nor every class


def test_deterministic_sets_contain_the_randomised_ones() -> None:
    proba, y = classification_data(0)
    conf = calibrate("classification", "t", proba[:N], y[:N], 0.1)
    fixed = class_sets(proba[N:], conf.q[0], None)
    random = class_sets(proba[N:], conf.q[0], np.random.default_rng(3))
    assert (fixed | ~random).all() and fixed.any(1).all()
    assert fixed[np.arange(N), y[N:]].mean() >= 0.9 - 0.03


def test_intervals_cover_at_the_target() -> None:
    coverages = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, 2 * N)
        y = np.sin(x) + rng.normal(0, 0.3 + 0.2 * np.abs(x))  # heteroscedastic noise
        pred = np.sin(x) + 0.1
        conf = calibrate("regression", "v", pred[:N], y[:N], 0.1)
        result = evaluate(conf, pred[N:], y[N:])
        coverages.append(result["coverage"])
        assert result["mean_width"] > 0
    assert all(abs(c - 0.9) <= 0.03 for c in coverages), coverages
    assert abs(np.mean(coverages) - 0.9) <= 0.01


def test_per_label_sets_cover_every_label() -> None:
    rng = np.random.default_rng(0)
    k = 5
    true_p = rng.uniform(0.02, 0.98, (2 * N, k))
    y = (rng.uniform(size=true_p.shape) < true_p).astype(int)
    proba = np.clip(true_p + rng.normal(0, 0.15, true_p.shape), 0, 1)
    conf = calibrate("multilabel", "m", proba[:N], y[:N], 0.1)
    assert len(conf.q) == k
    sets = conf.predict(proba[N:])
    covered = np.where(y[N:] == 1, sets["present"], sets["absent"])
    assert all(abs(c - 0.9) <= 0.03 for c in covered.mean(0))
    assert evaluate(conf, proba[N:], y[N:])["uncertain_labels_per_sample"] > 0


def test_quantile_and_round_trip() -> None:
    assert conformal_quantile(np.arange(10.0), 0.05) == float("inf")  # too few samples for 95 %
    assert conformal_quantile(np.arange(1.0, 100.0), 0.1) == 90.0
    with pytest.raises(AffectFusionError, match="alpha"):
        conformal_quantile(np.arange(3.0), 1.5)
    conf = calibrate("regression", "v", np.zeros(50), np.linspace(-1, 1, 50), 0.2)
    assert Conformal.from_dict(conf.to_dict()) == conf and conf.to_dict()["method"] == "absolute residual"


@pytest.mark.parametrize("alpha", [0.5, 0.2, 0.1, 0.05, 0.01, 0.3])
def test_min_calibration_size_is_where_the_threshold_becomes_finite(alpha: float) -> None:
    n = min_calibration_size(alpha)
    assert np.isfinite(conformal_quantile(np.arange(float(n)), alpha))
    assert n == 1 or conformal_quantile(np.arange(float(n - 1)), alpha) == float("inf")
    assert {0.1: 9, 0.2: 4, 0.05: 19}.get(alpha, n) == n


def test_too_few_calibration_samples_are_refused_not_stored_as_infinite() -> None:
    with pytest.raises(AffectFusionError, match="5 calibration samples are too few for 90% coverage"):
        calibrate("classification", "t", np.full((5, 4), 0.25), np.arange(5) % 4, 0.1)
    bad = calibrate("regression", "v", np.zeros(50), np.linspace(-1, 1, 50), 0.2).to_dict()
    for q in ([None], [float("nan")], [-1.0], [], "x"):
        with pytest.raises(AffectFusionError, match=r"thresholds q|not a conformal entry"):
            Conformal.from_dict({**bad, "q": q})
    with pytest.raises(AffectFusionError, match="not a conformal entry"):
        Conformal.from_dict({**bad, "unknown": 1})


def test_unfit_reason_per_class_overall_and_saturated() -> None:
    task = TaskConfig(name="t", type="classification", classes=["a", "b", "c"])
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    proba = softmax(rng.normal(0, 1, (60, 3)), axis=1)
    assert unfit_reason(task, proba, y, 0.1, "dev") is None
    five = unfit_reason(task, proba[:5], y[:5], 0.1, "dev")
    assert "'dev' has too few samples for 90% coverage" in five and "at least 9 per class" in five
    assert "data.calibration_split" in five
    rare = np.where(np.arange(60) < 8, 2, np.arange(60) % 2)  # class 'c' 8 times: short at 90 %, fine at 80 %
    assert "class 'c' 8" in unfit_reason(task, proba, rare, 0.1, "dev")
    assert unfit_reason(task, proba, rare, 0.2, "dev") is None
    perfect = np.eye(3)[y] * 0.8 + 0.2 / 3
    assert "accuracy 1.0" in unfit_reason(task, perfect, y, 0.1, "dev")
    regression = TaskConfig(name="v", type="regression")
    assert unfit_reason(regression, np.zeros(8), np.zeros(8), 0.1, "dev") is not None
    assert unfit_reason(regression, np.zeros(9), np.ones(9), 0.1, "dev") is None
    labels = TaskConfig(name="m", type="multilabel", classes=["x", "y"])
    multi = np.stack([np.ones(20), np.arange(20) < 3], axis=1).astype(int)
    assert "label 'y' 3" in unfit_reason(labels, np.full((20, 2), 0.5), multi, 0.1, "dev")


def test_split_too_small_says_what_it_is_too_small_for() -> None:
    assert split_too_small("dev", 60, {"a": 20, "b": 20, "c": 20}) is None
    five = split_too_small("dev", 5, {"a": 2, "b": 3})
    assert "dev has only 5 samples" in five and "early stopping" in five and "calibrate (needs 30" in five
    held_out = split_too_small("dev", 5, {"a": 2, "b": 3}, fits=False)
    assert "early stopping" in held_out and "calibrate" not in held_out
