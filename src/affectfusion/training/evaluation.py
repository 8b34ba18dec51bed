"""A trained run scored on a split (metrics and predictions written into the run), and the multi-label
thresholds tuned on its validation predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectfusion.evaluation.metrics import task_metrics, tune_thresholds
from affectfusion.io import write_csv, write_json
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun
from affectfusion.training.loading import load_model
from affectfusion.training.predict import Predictions, predict, predictions_frame, score


def tuned_thresholds(preds: Predictions, run: LoadedRun, split: str) -> dict[str, dict]:
    """Per multilabel task, the thresholds ``threshold_tuning`` picks on ``split``'s predictions,
    with the validation macro F1 at the configured and at the tuned threshold (what tuning bought)."""
    out = {}
    for t in run.config.tasks:
        if t.type != "multilabel":
            continue
        if t.threshold_tuning is None or t.threshold is None:  # TaskConfig's validation fills both
            raise ValueError(f"task {t.name!r}: a multilabel task needs threshold and threshold_tuning")
        keep = preds.labelled(t.name)
        y, proba = preds.y_true[t.name][keep], preds.proba[t.name][keep]
        chosen = tune_thresholds(y, proba, t.threshold_tuning, t.threshold)
        default, tuned = (task_metrics(t, y, (proba >= th).astype(np.int64)) for th in (t.threshold, chosen))
        out[t.name] = {
            "tuning": t.threshold_tuning,
            "split": split,
            "classes": t.classes,
            "thresholds": chosen.tolist(),
            "macro_f1_default": default["macro_f1"],
            "macro_f1_tuned": tuned["macro_f1"],
        }
    return out


def evaluate_run(
    run: LoadedRun, split: str, root: str | Path | None = None, model: MultimodalModel | None = None
) -> dict:
    """Score the best checkpoint of a run on one split; writes eval/<split>/metrics.json and predictions."""
    model = model or load_model(run)
    ds = load_dataset(run.config, split, root=root, modalities=run.modalities)
    preds = predict(model, ds, run.scalers)
    metrics = score(preds, run.config.tasks, split)
    data_root = root if root is not None else run.config.data.root
    metrics["provenance"] = {"data_root": None if data_root is None else str(data_root), "checkpoint": "best"}
    write_json(run.paths.metrics(split), metrics)
    write_csv(predictions_frame(preds, run.config.tasks, list(run.modalities)), run.paths.predictions(split))
    return metrics
