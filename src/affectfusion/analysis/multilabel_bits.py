"""Multi-label predictions in the paired significance tests of ``seeds`` / ``compare --seeds-aggregate``.

The tests resample samples, so each sample must stay one value: a label set becomes one integer
whose bit c says whether class c is in it (up to 62 classes). The metrics below read the bits back
and score every row of ``[R, n]`` arrays at once, with the definitions of
:func:`affectfusion.evaluation.metrics.multilabel_metrics`: micro F1 pools every (sample, class)
decision; macro F1 averages the per-class F1 of the classes present in the row's truth or
predictions (zero division counts as 0, as in scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectfusion.errors import AffectFusionError

MAX_CLASSES = 62


def label_set_bits(labels: str, index: dict[str, int], where: str) -> int:
    """``"joy;love"`` -> the integer with the bits of joy and love set."""
    bits = 0
    for label in (part for part in labels.split(";") if part):
        if label not in index:
            raise AffectFusionError(f"{where}: label {label!r} not in classes {list(index)}")
        bits |= 1 << index[label]
    return bits


def check_classes(classes: Sequence[str]) -> None:
    if len(classes) > MAX_CLASSES:
        raise AffectFusionError(
            f"paired tests take multi-label tasks of up to {MAX_CLASSES} classes, not {len(classes)}"
        )


def _counts(y: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row and class: true positives, false positives, false negatives ``[R, K]``."""
    y, p = (np.atleast_2d(np.asarray(v, dtype=np.int64)) for v in (y, p))
    bits = np.int64(1) << np.arange(k, dtype=np.int64)  # [K]
    yb = (y[..., None] & bits) != 0  # [R, n, K]
    pb = (p[..., None] & bits) != 0
    return (yb & pb).sum(1), (~yb & pb).sum(1), (yb & ~pb).sum(1)


def _classes_in(y: np.ndarray, p: np.ndarray) -> int:
    top = int(np.max(np.bitwise_or(np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.int64)), initial=0))
    return max(1, top.bit_length())


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    tp, fp, fn = (c.sum(-1) for c in _counts(y_true, y_pred, _classes_in(y_true, y_pred)))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    tp, fp, fn = _counts(y_true, y_pred, _classes_in(y_true, y_pred))
    present = (tp + fp + fn) > 0
    f1 = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return np.where(present.any(-1), f1.sum(-1) / np.maximum(present.sum(-1), 1), np.nan)


METRICS = {"macro_f1": macro_f1, "micro_f1": micro_f1}
