"""A trained run as a model again: its best checkpoint with tuned thresholds, scored on a split.

Split out of ``trainer.py`` (which re-exports these names): loading and scoring a finished run is what
analysis, serving and the CLI need, and none of them trains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from affectfusion.config import RunConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import task_metrics, tune_thresholds
from affectfusion.io import read_json, write_csv, write_json
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun
from affectfusion.training.checkpoint import load_checkpoint
from affectfusion.training.predict import Predictions, predict, predictions_frame, score


def build_model_for(cfg: RunConfig, modalities: dict) -> MultimodalModel:
    return MultimodalModel(modalities, cfg.tasks, cfg.model)


def load_model(run: LoadedRun, which: str = "best", device: torch.device | str = "cpu") -> MultimodalModel:
    """The trained model on ``device``, with the run's tuned multilabel thresholds if it has them.

    Checkpoints are device-free (float32 tensors saved from the CPU), so a run trained on a GPU loads here.
    """
    check_trained(run)
    model = build_model_for(run.config, run.modalities)
    load_checkpoint(run.paths.best if which == "best" else run.paths.last, model)
    model.thresholds.update(read_thresholds(run))
    model.eval()
    return model.to(device)


def check_trained(run: LoadedRun) -> None:
    """Refuse a run whose training did not finish (killed, or stopped by a full disk): its best checkpoint
    is only the best of the epochs it got through, and serving it would pass for the finished model."""
    last, best = run.paths.last.with_suffix(".json"), run.paths.best.with_suffix(".json")
    resume = f"run the `affectfusion train ... --out {run.paths.root}` that made it again to finish it (it resumes)"
    if not best.is_file():
        raise AffectFusionError(f"{run.paths.root} has no completed best checkpoint ({best} is missing); {resume}")
    info = read_json(last) if last.is_file() else {}
    if not isinstance(info, dict) or info.get("finished") is not True:
        epoch = info.get("epoch", 0) if isinstance(info, dict) else "?"
        raise AffectFusionError(
            f"{run.paths.root}: training stopped after epoch {epoch} of {run.config.train.epochs}, so its best "
            f"checkpoint is not a completed one; {resume}"
        )


def read_thresholds(run: LoadedRun) -> dict[str, np.ndarray]:
    """Tuned per-class thresholds of the run's multilabel tasks ({} before tuning)."""
    path = run.paths.thresholds
    if not path.is_file():
        return {}
    saved, out = read_json(path), {}
    for t in run.config.tasks:
        entry = saved.get(t.name) if t.type == "multilabel" else None
        if entry is None:
            continue
        if entry.get("classes") != t.classes:
            raise AffectFusionError(f"{path}: thresholds of task {t.name!r} are for other classes than the config's")
        out[t.name] = np.asarray(entry["thresholds"], dtype=np.float64)
    return out


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
