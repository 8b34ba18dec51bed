"""Truth-known calibration tests: temperature scaling fixes a deliberately over-confident model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from affectfusion.config import TaskConfig
from affectfusion.evaluation.calibration import (
    MIN_TEMPERATURE_SAMPLES,
    apply_temperature,
    brier,
    calibration_scores,
    ece,
    fit_temperature,
    mce,
    reliability,
    served_temperatures,
    task_calibration,
)
from affectfusion.rundir import RunPaths


def calibrated_data(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, k))
    proba = softmax(logits, axis=1)
    y = np.array([rng.choice(k, p=p) for p in proba])
    return logits, y


def test_temperature_fixes_an_over_confident_model_without_changing_accuracy() -> None:
    logits, y = calibrated_data(4000, 5, 0)
    over = softmax(logits * 4.0, axis=1)  # over-confident: logits 4x too sharp
    val, test = slice(0, 2000), slice(2000, None)
    t = fit_temperature(over[val], y[val])
    assert 3.3 < t < 4.8  # recovers the 4x sharpening
    before, after = (
        calibration_scores(over[test], y[test]),
        calibration_scores(apply_temperature(over[test], t), y[test]),
    )
    assert before["ece"] > 0.15 and after["ece"] < 0.04
    assert after["brier"] < before["brier"] and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]
    assert (apply_temperature(over, t).argmax(1) == over.argmax(1)).all()


def test_calibrated_model_keeps_temperature_near_one() -> None:
    logits, y = calibrated_data(3000, 4, 1)
    assert 0.85 < fit_temperature(softmax(logits, axis=1), y) < 1.15


def test_metric_definitions_on_hand_computed_cases() -> None:
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    # bins: 0.9 (acc 0.5, gap 0.4), 0.6 (acc 1.0, gap 0.4)
    assert ece(proba, y) == pytest.approx(0.4)
    assert mce(proba, y) == pytest.approx(0.4)
    assert brier(proba, y) == pytest.approx(np.mean([0.02, 1.62, 0.32, 0.32]))
    r = reliability(proba, y)
    assert r.count.sum() == 4 and (r.count > 0).sum() == 2
    assert brier(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_multilabel_is_scored_per_entry() -> None:
    proba = np.array([[0.8, 0.2], [0.8, 0.2]])
    y = np.array([[1, 0], [0, 0]])
    assert brier(proba, y) == pytest.approx(np.mean([0.04, 0.04, 0.64, 0.04]))
    assert set(calibration_scores(proba, y)) == {"ece", "mce", "brier"}


TASK = TaskConfig(name="t", type="classification", classes=["a", "b"])


def test_a_split_without_errors_gets_no_temperature() -> None:
    proba = np.array([[0.6, 0.4], [0.3, 0.7]] * 20)
    y = np.array([0, 1] * 20)  # every prediction right: the NLL falls as T -> 0, to the search bound
    entry, _ = task_calibration(TASK, (proba, y), {"dev": (proba, y)}, "dev")
    assert "temperature" not in entry and "no error on 'dev' (accuracy 1.0)" in entry["refused"]
    assert "after" not in entry["splits"]["dev"] and entry["splits"]["dev"]["before"]["accuracy"] == 1.0


def test_a_small_split_or_a_temperature_at_a_bound_gets_none() -> None:
    rng = np.random.default_rng(0)
    proba = softmax(rng.normal(0, 2, (200, 2)), axis=1)
    y = (rng.uniform(size=200) < proba[:, 1]).astype(int)  # honest probabilities: a temperature near 1
    small, _ = task_calibration(TASK, (proba[:20], y[:20]), {}, "dev")
    assert "temperature" not in small and f"needs {MIN_TEMPERATURE_SAMPLES}" in small["refused"]
    fine, _ = task_calibration(TASK, (proba, y), {}, "dev")
    assert "refused" not in fine and 0.5 < fine["temperature"] < 2.0
    coin = np.where(rng.uniform(size=200) < 0.5, 0, 1)  # confident and right half the time: T -> infinity
    flat, _ = task_calibration(TASK, (np.tile([[0.99, 0.01]], (200, 1)), coin), {}, "dev")
    assert "temperature" not in flat and "search bound" in flat["refused"]


def test_served_temperatures_skip_what_cannot_be_used(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    tasks = [TaskConfig(name=n, type="classification", classes=["a", "b"]) for n in ("ok", "bad", "refused", "nan")]
    assert served_temperatures(paths, tasks) == ({}, {})  # never calibrated: nothing to say
    entries = {"ok": {"temperature": 1.5}, "bad": {"temperature": None}, "refused": {"refused": "too small"}}
    paths.calibration.write_text(json.dumps({"tasks": {**entries, "nan": {"temperature": "x"}}}))
    temps, why = served_temperatures(paths, tasks)
    assert temps == {"ok": 1.5} and set(why) == {"bad", "refused", "nan"}
    assert why["refused"] == "not calibrated: too small" and "expected a positive number" in why["bad"]
    paths.calibration.write_text("{not json")
    temps, why = served_temperatures(paths, tasks)
    assert temps == {} and all("calibration.json is unreadable" in w for w in why.values()) and len(why) == 4
