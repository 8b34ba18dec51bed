"""A trained run as a model again: the network its config describes, its best (or last) checkpoint and
tuned thresholds loaded, refused when its training did not finish. Analysis, serving and the CLI load
runs here; none of them trains."""

from __future__ import annotations

import numpy as np
import torch

from affectfusion.config import RunConfig
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_json
from affectfusion.models.model import MultimodalModel
from affectfusion.rundir import LoadedRun
from affectfusion.training.checkpoint import load_checkpoint


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
