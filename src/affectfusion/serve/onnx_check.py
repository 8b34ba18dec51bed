"""An exported graph checked against the Predictor, sample by sample, for every modality subset.

The reference is the Predictor's own scoring path (``training.predict.predict`` on the Predictor's
model and target scalers, its temperatures applied with ``evaluation.calibration.apply_temperature``),
so the numbers compared are the ones ``predict``, the API and the dashboard serve. The graph gets
the *unzeroed* features of a modality marked absent: that it still agrees proves a missing modality
is handled in the graph exactly as the Predictor handles it.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import torch

from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.evaluation.calibration import apply_temperature
from affectfusion.serve.onnx_graph import PRESENT, mask_name
from affectfusion.serve.predictor import Predictor
from affectfusion.training.predict import make_loader, predict

BATCH = 64
MAX_ALL_SUBSETS = 4  # up to this many modalities every non-empty subset is checked (15 at most)


def modality_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset for a few modalities; else all, each one alone and each one left out."""
    n = len(modalities)
    if n <= MAX_ALL_SUBSETS:
        return [s for k in range(n, 0, -1) for s in combinations(modalities, k)]
    picked = [tuple(modalities)]
    picked += [tuple(x for x in modalities if x != m) for m in modalities]
    picked += [(m,) for m in modalities]
    return picked


def reference_outputs(predictor: Predictor, ds: MultimodalDataset, subset: tuple[str, ...]) -> list[np.ndarray]:
    """The Predictor's numbers for ``ds`` with only ``subset`` present, in the graph's output order."""

    def keep_subset(batch: Batch) -> Batch:
        return batch.with_present({m: p & (m in subset) for m, p in batch.present.items()})

    preds = predict(predictor.model, ds, predictor.run.scalers, batch_size=BATCH, transform=keep_subset)
    temperatures = predictor.trust.temperatures
    outs = []
    for t in predictor.run.config.tasks:
        if t.type == "regression":
            outs.append(preds.pred[t.name])
        else:
            outs.append(preds.proba[t.name])
            if t.type == "classification" and t.name in temperatures:
                outs.append(apply_temperature(preds.proba[t.name], temperatures[t.name]))
    return outs


def graph_outputs(
    run_graph: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    predictor: Predictor,
    ds: MultimodalDataset,
    subset: tuple[str, ...],
) -> tuple[list[np.ndarray], np.ndarray]:
    """The graph's outputs for ``ds`` with only ``subset`` present, and which rows have any modality."""
    modalities = predictor.modalities
    chunks: list[list[np.ndarray]] = []
    rows = []
    for batch in make_loader(ds, predictor.model, BATCH):
        present = torch.stack([batch.present[m] & (m in subset) for m in modalities], dim=1)
        feed: dict[str, np.ndarray] = {PRESENT: present.numpy()}
        for m in modalities:
            feed[m], feed[mask_name(m)] = batch.features[m].numpy(), batch.padding[m].numpy()
        chunks.append(run_graph(feed))
        rows.append(present.any(1).numpy())
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)], np.concatenate(rows)


def compare(
    run_graph: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    predictor: Predictor,
    ds: MultimodalDataset,
) -> dict[str, Any]:
    """Largest absolute difference per modality subset (over every output) and overall."""
    per_subset = {}
    for subset in modality_subsets(predictor.modalities):
        expected = reference_outputs(predictor, ds, subset)
        got, rows = graph_outputs(run_graph, predictor, ds, subset)
        if not rows.any():
            continue  # no sample has any of these modalities: the Predictor would refuse every one
        diffs = [max_diff(g[rows], e[rows]) for g, e in zip(got, expected, strict=True)]
        per_subset["+".join(subset)] = {"samples": int(rows.sum()), "max_abs_diff": max(diffs)}
    worst = max((v["max_abs_diff"] for v in per_subset.values()), default=float("inf"))
    return {"samples": len(ds), "subsets": per_subset, "max_abs_diff": worst}


def max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference; infinite where either side is not a finite number."""
    a, b = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    return float(np.abs(a - b).max(initial=0.0))
