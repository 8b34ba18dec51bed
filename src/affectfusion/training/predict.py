"""Run a model over a dataset and score it: the one place predictions are turned into metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler, collator_for
from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.evaluation.metrics import summarize, task_metrics
from affectfusion.models.model import MultimodalModel

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Predictions:
    ids: list[str]
    groups: list[str | None]
    sources: list[str | None]
    y_true: dict[str, np.ndarray]  # class index (-1 unlabelled), value or [N, K] multi-hot (NaN unlabelled)
    pred: dict[str, np.ndarray]  # class index, value on the user's scale, or [N, K] 0/1 (multilabel)
    proba: dict[str, np.ndarray] = field(default_factory=dict)  # [N, K] per classification or multilabel task
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)  # [K] decision thresholds per multilabel task
    explanations: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # modality / "fused" -> [N, H]
    metadata: list[dict[str, str]] = field(default_factory=list)  # per sample (speaker, gender, ...)

    def labelled(self, task: str) -> np.ndarray:
        y = self.y_true[task]
        if y.dtype.kind in "iu":
            return y >= 0
        return ~np.isnan(y) if y.ndim == 1 else ~np.isnan(y).any(1)


def make_loader(
    dataset: MultimodalDataset, model: MultimodalModel, batch_size: int, shuffle: bool = False, **kwargs
) -> DataLoader:
    collate = collator_for(model.modalities, model.tasks)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, **kwargs)


@torch.no_grad()
def predict(
    model: MultimodalModel,
    dataset: MultimodalDataset,
    scalers: dict[str, TargetScaler],
    batch_size: int = 64,
    keep_embeddings: bool = False,
    transform: Callable[[Batch], Batch] | None = None,
) -> Predictions:
    """Predictions for every sample; ``transform`` alters each batch first (mask or corrupt
    modalities for ablation and robustness analyses). A multilabel task predicts every class whose
    sigmoid probability reaches the model's threshold for it (``model.thresholds``)."""
    was_training = model.training
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}

    keep: torch.Tensor | None = None  # conversation windows: only each utterance's scored copy

    def add(key: str, value: torch.Tensor) -> None:
        value = value.float() if value.is_floating_point() else value  # bf16 under autocast: numpy has none
        chunks.setdefault(key, []).append((value if keep is None else value[keep]).detach().cpu().numpy())

    device = next(model.parameters()).device  # batches go where the model is (a GPU-trained run, or the CPU)
    for batch in make_loader(dataset, model, batch_size, pin_memory=device.type == "cuda"):
        if transform is not None:
            batch = transform(batch)
        batch = batch.to(device, non_blocking=True)
        out = model(batch)
        keep = None if batch.conversation is None else batch.conversation.scored
        for t in model.tasks:
            y, o = batch.targets[t.name], out.outputs[t.name]
            if t.type == "classification":
                add(f"true/{t.name}", torch.where(batch.target_mask[t.name], y, -1))
                add(f"proba/{t.name}", torch.softmax(o, -1))
            elif t.type == "multilabel":
                add(f"true/{t.name}", torch.where(batch.target_mask[t.name][:, None], y, torch.nan))
                add(f"proba/{t.name}", torch.sigmoid(o))
            else:
                sc = scalers[t.name]
                add(f"true/{t.name}", torch.where(batch.target_mask[t.name], y, torch.nan))
                add(f"pred/{t.name}", o * sc.std + sc.mean)
        for k, v in out.explanations.items():
            add(f"expl/{k}", v)
        if keep_embeddings:
            for m, e in out.embeddings.items():
                add(f"emb/{m}", e * batch.present[m][:, None])
            add("emb/fused", out.fused)
    model.train(was_training)
    cat = {k: _concat(v) for k, v in chunks.items()}
    preds = Predictions(
        ids=[s.id for s in dataset.samples],
        groups=[s.group for s in dataset.samples],
        sources=[s.source for s in dataset.samples],
        metadata=[s.metadata for s in dataset.samples],
        y_true={t.name: cat[f"true/{t.name}"] for t in model.tasks},
        pred={},
    )
    for t in model.tasks:
        if t.type == "classification":
            preds.proba[t.name] = cat[f"proba/{t.name}"]
            preds.pred[t.name] = preds.proba[t.name].argmax(1)
        elif t.type == "multilabel":
            preds.proba[t.name] = cat[f"proba/{t.name}"]
            preds.thresholds[t.name] = np.asarray(model.thresholds[t.name], dtype=np.float64)
            preds.pred[t.name] = (preds.proba[t.name] >= preds.thresholds[t.name]).astype(np.int64)
        else:
            preds.pred[t.name] = cat[f"pred/{t.name}"]
    preds.explanations = {k[5:]: v for k, v in cat.items() if k.startswith("expl/")}
    preds.embeddings = {k[4:]: v for k, v in cat.items() if k.startswith("emb/")}
    return preds


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    """Batches joined on axis 0. Per-time-step explanations (MulT attention ``[B, T, S]``) differ in
    length between batches; shorter ones are zero-padded, zero being the weight of a padded step."""
    longest = np.max([c.shape[1:] for c in chunks], axis=0)
    pads = [[(0, 0), *((0, int(n) - d) for n, d in zip(longest, c.shape[1:], strict=True))] for c in chunks]
    return np.concatenate([np.pad(c, pad) for c, pad in zip(chunks, pads, strict=True)])


def score(preds: Predictions, tasks: list[TaskConfig], split: str) -> dict:
    """Metrics of every task on its labelled samples; a multilabel task also records the
    per-class thresholds its predictions were made with."""
    per_task = {}
    for t in tasks:
        keep = preds.labelled(t.name)
        if keep.any():
            per_task[t.name] = task_metrics(t, preds.y_true[t.name][keep], preds.pred[t.name][keep])
            if t.name in preds.thresholds:
                per_task[t.name]["thresholds"] = dict(
                    zip(t.classes or [], preds.thresholds[t.name].tolist(), strict=True)
                )
    return summarize(tasks, per_task, split, len(preds.ids))


def predictions_frame(preds: Predictions, tasks: list[TaskConfig], modalities: list[str]) -> pd.DataFrame:
    """One row per sample: ids, truth, prediction, class probabilities, modality weights.

    Multilabel truth and prediction are the label names joined by ``;`` (empty: no label, or unlabelled).
    """
    import pandas as pd  # tables of predictions only: a single prediction does not load pandas

    df = pd.DataFrame({"id": preds.ids, "group": preds.groups, "source": preds.sources})
    for t in tasks:
        y = preds.y_true[t.name]
        classes = t.classes or []
        if t.type == "classification":
            df[f"{t.name}_true"] = [classes[i] if i >= 0 else "" for i in y]
            df[f"{t.name}_pred"] = [classes[i] for i in preds.pred[t.name]]
        elif t.type == "multilabel":
            df[f"{t.name}_true"] = [";".join(c for c, v in zip(classes, row, strict=True) if v == 1) for row in y]
            df[f"{t.name}_pred"] = [
                ";".join(c for c, v in zip(classes, row, strict=True) if v) for row in preds.pred[t.name]
            ]
        else:
            df[f"{t.name}_true"] = y
            df[f"{t.name}_pred"] = preds.pred[t.name]
        for k, c in enumerate(classes):
            df[f"{t.name}_prob_{c}"] = preds.proba[t.name][:, k]
    weights = preds.explanations.get("modality_weights")
    if weights is not None and weights.ndim == 2 and weights.shape[1] == len(modalities):
        for k, m in enumerate(modalities):
            df[f"weight_{m}"] = weights[:, k]
    return df
