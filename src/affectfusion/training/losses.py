"""Task losses, InfoNCE between modalities, and their weighted multi-task sum (P1 v2).

Regression losses are a registry (``tasks[].loss``), each called on z-scored predictions and targets.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch
from affectfusion.models.model import ModelOutput
from affectfusion.registry import Registry

RegressionLoss = Callable[[Tensor, Tensor], Tensor]
REGRESSION_LOSSES: Registry[RegressionLoss] = Registry("regression loss", ("affectfusion.training.losses",))
CCC_EPS = 1e-6  # keeps 1 - CCC defined on a batch whose predictions and targets are all equal


@REGRESSION_LOSSES.register("mse")
def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error: fits the targets' mean first, so on mid-scale clustered labels it shrinks to it."""
    return F.mse_loss(pred, target)


@REGRESSION_LOSSES.register("rmse")
def rmse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Root mean squared error, in the (z-scored) target's units."""
    return torch.sqrt(F.mse_loss(pred, target) + 1e-8)


@REGRESSION_LOSSES.register("ccc")
def ccc_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - Lin's concordance correlation over the batch: rewards following the targets' ordering and spread,
    where MSE on labels clustered near the midpoint (EmoBank, AVEC) is content to predict the mean."""
    dtype = torch.promote_types(pred.dtype, torch.float32)  # moments in at least fp32 under bf16 autocast
    p, t = pred.reshape(-1).to(dtype), target.reshape(-1).to(dtype)
    dp, dt = p - p.mean(), t - t.mean()
    cov = (dp * dt).mean()
    denominator = dp.square().mean() + dt.square().mean() + (p.mean() - t.mean()).square()
    return 1.0 - 2.0 * cov / (denominator + CCC_EPS)


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
            weight = None if w is None else w.to(pred.device)
            if t.type == "classification":
                loss = F.cross_entropy(pred, target, weight=weight, label_smoothing=t.label_smoothing)
            elif t.type == "multilabel":
                loss = F.binary_cross_entropy_with_logits(pred, target, pos_weight=weight)
            else:
                sc = self.scalers[t.name]
                loss = REGRESSION_LOSSES.get(t.loss_name)(pred, (target - sc.mean) / sc.std)
            parts[t.name] = float(loss.detach())
            total = total + t.weight * loss
        if self.contrastive_weight > 0:
            c = contrastive_loss(out, batch.present, self.temperature)
            parts["contrastive"] = float(c.detach())
            total = total + self.contrastive_weight * c
        return total, parts
