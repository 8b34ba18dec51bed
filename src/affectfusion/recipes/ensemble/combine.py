"""How an ensemble turns its members' outputs into one: the mean, task by task.

Classification: the mean of the members' calibrated class probabilities (a member's validation-fitted
temperature applied first, where it has one), the label its argmax. Multi-label: the mean of the
per-label probabilities, thresholded at the mean of the members' thresholds. Regression: the mean of the
values. The same function serves evaluation (arrays over a split) and serving (one batch of inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affectfusion.config import TaskConfig
from affectfusion.serve.base import Prediction


def combine(
    task: TaskConfig, outputs: np.ndarray, thresholds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(prediction, probabilities or None) from the members' outputs: ``[M, N, K]`` probabilities of a
    classification or multi-label task, ``[M, N]`` values of a regression task; ``thresholds`` ``[M, K]``
    (multi-label only)."""
    mean = np.asarray(outputs, dtype=np.float64).mean(axis=0)
    if task.type == "classification":
        return mean.argmax(axis=1), mean
    if task.type == "multilabel":
        if thresholds is None:
            raise ValueError(f"task {task.name!r}: a multi-label ensemble needs its members' thresholds")
        return (mean >= np.asarray(thresholds, dtype=np.float64).mean(axis=0)).astype(np.int64), mean
    return mean, None


def member_output(task: TaskConfig, out: dict[str, Any]) -> np.ndarray | float:
    """What a member's served prediction contributes: its calibrated probabilities if it has them (else its
    probabilities), in class order, or its value."""
    if task.type == "regression":
        return float(out["value"])
    probabilities = out.get("calibrated_probabilities") or out["probabilities"]
    return np.array([probabilities[c] for c in task.classes or []], dtype=np.float64)


def combine_served(
    tasks: list[TaskConfig],
    members: list[list[Prediction]],
    names: list[str],
    thresholds: dict[str, np.ndarray],
    result: list[Prediction],
) -> None:
    """Fill ``result`` (one Prediction per input) from each member's predictions of the same inputs.

    An input a member could not score gets that member's error. Each task gets the ensemble's label
    (labels, value) and probabilities, how many members agree with it (``agreement``, a share) or how far
    their values spread (``member_std``), and every member's trust warnings, prefixed by its name.
    """
    for i, res in enumerate(result):
        mine = [m[i] for m in members]
        failed = next((p for p in mine if p.error is not None), None)
        if failed is not None:
            res.error, res.modalities_used = failed.error, []
            continue
        res.modalities_used = list(mine[0].modalities_used)
        weights = [p.modality_weights for p in mine]
        if all(w and w.keys() == weights[0].keys() for w in weights):
            res.modality_weights = {m: float(np.mean([w[m] for w in weights])) for m in weights[0]}
        for t in tasks:
            outs = [p.tasks[t.name] for p in mine]
            stacked = np.stack([np.atleast_1d(member_output(t, o)) for o in outs])[:, None]  # [M, 1, K or 1]
            pred, proba = combine(t, stacked if t.type != "regression" else stacked[..., 0], thresholds.get(t.name))
            entry: dict[str, Any]
            if t.type == "regression":
                values = stacked[:, 0, 0]
                entry = {"value": float(pred[0]), "member_std": float(values.std())}
            else:
                assert proba is not None  # classification and multi-label tasks have probabilities
                classes = t.classes or []
                entry = {"probabilities": dict(zip(classes, map(float, proba[0]), strict=True))}
                if t.type == "classification":
                    label = classes[int(pred[0])]
                    entry |= {"label": label, "agreement": float(np.mean([o["label"] == label for o in outs]))}
                else:
                    entry["labels"] = [c for c, on in zip(classes, pred[0], strict=True) if on]
            warnings = [
                f"member {n}: {w}" for n, o in zip(names, outs, strict=True) for w in o.get("trust_warnings", [])
            ]
            if warnings:
                entry["trust_warnings"] = warnings
            res.tasks[t.name] = entry
