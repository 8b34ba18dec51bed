"""Task losses, InfoNCE between modalities, and their weighted multi-task sum (P1 v2)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch
from affectfusion.models.model import ModelOutput


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE: row i of ``a`` and ``b`` are the positive pair, other rows negatives."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def contrastive_loss(out: ModelOutput, present: dict[str, Tensor], temperature: float) -> Tensor:
    """Mean InfoNCE over every modality pair, on the samples that have both modalities."""
    losses = []
    for m1, m2 in itertools.combinations(sorted(out.embeddings), 2):
        both = present[m1] & present[m2]
        if both.sum() >= 2:
            losses.append(info_nce(out.embeddings[m1][both], out.embeddings[m2][both], temperature))
    if not losses:
        return out.fused.sum() * 0.0
    return torch.stack(losses).mean()


class MultiTaskLoss:
    """Weighted sum of per-task losses (+ contrastive), each over the samples labelled for it.

    ``class_weights`` per task: CE class weights, or BCE ``pos_weight`` for a multilabel task.
    """

    def __init__(
        self,
        tasks: list[TaskConfig],
        class_weights: dict[str, Tensor | None],
        scalers: dict[str, TargetScaler],
        contrastive_weight: float = 0.0,
        temperature: float = 0.1,
    ) -> None:
        self.tasks = tasks
        self.class_weights = class_weights
        self.scalers = scalers
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature

    def __call__(self, out: ModelOutput, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        total = out.fused.sum() * 0.0
        parts: dict[str, float] = {}
        for t in self.tasks:
            mask = batch.target_mask[t.name]
            if not mask.any():
                continue
            pred, target = out.outputs[t.name][mask], batch.targets[t.name][mask]
            w = self.class_weights.get(t.name)
            if t.type == "classification":
                loss = F.cross_entropy(pred, target, weight=None if w is None else w.to(pred.device))
            elif t.type == "multilabel":
                loss = F.binary_cross_entropy_with_logits(
                    pred, target, pos_weight=None if w is None else w.to(pred.device)
                )
            else:
                sc = self.scalers[t.name]
                loss = F.mse_loss(pred, (target - sc.mean) / sc.std)
                if t.loss_name == "rmse":
                    loss = torch.sqrt(loss + 1e-8)
            parts[t.name] = float(loss.detach())
            total = total + t.weight * loss
        if self.contrastive_weight > 0:
            c = contrastive_loss(out, batch.present, self.temperature)
            parts["contrastive"] = float(c.detach())
            total = total + self.contrastive_weight * c
        return total, parts
