"""MMSA's standard metrics for signed sentiment in [-3, 3] (CMU-MOSI / MOSEI), defined as MMSA's
``metricsTop.py`` computes them, so a table of ours can sit next to MMSA's published results.

- ``acc2_has0`` / ``f1_has0``: negative (< 0) vs non-negative (>= 0), every sample.
- ``acc2_non0`` / ``f1_non0``: negative vs positive (> 0), samples whose truth is not 0.
- ``acc5`` / ``acc7``: truth and prediction clipped to [-2, 2] / [-3, 3], rounded to an integer, equal.
F1 is support-weighted, as in MMSA. MAE and Pearson r are the regression metrics ``mae`` and
``pearson_r`` every regression task already reports.
"""

from __future__ import annotations

import numpy as np

MMSA_SCALARS = ("acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7")


def mmsa_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """The six classification views of a signed regression; None where a view has no sample."""
    from sklearn.metrics import accuracy_score, f1_score  # only when scoring, not when predicting

    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    out: dict[str, float | None] = dict.fromkeys(MMSA_SCALARS)
    if t.size == 0:
        return out
    has_t, has_p = t >= 0, p >= 0
    out["acc2_has0"] = float(accuracy_score(has_t, has_p))
    out["f1_has0"] = float(f1_score(has_t, has_p, average="weighted", zero_division=0))
    nonzero = t != 0
    if nonzero.any():
        non_t, non_p = t[nonzero] > 0, p[nonzero] > 0
        out["acc2_non0"] = float(accuracy_score(non_t, non_p))
        out["f1_non0"] = float(f1_score(non_t, non_p, average="weighted", zero_division=0))
    for key, bound in (("acc5", 2.0), ("acc7", 3.0)):
        out[key] = float(np.mean(np.round(np.clip(t, -bound, bound)) == np.round(np.clip(p, -bound, bound))))
    return out
