"""The pieces a training run is made of: loss weights, optimizer and schedule, modality dropout and the
optimisation step on any device and precision (autocast, gradient scaling for fp16, batches copied from
pinned memory). ``trainer.Trainer`` strings them together."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler

from affectfusion.config import RunConfig, TaskConfig, TrainConfig
from affectfusion.data.tasks import TargetScaler, balanced_class_weights, balanced_pos_weight, class_counts
from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.device import Precision, autocast, grad_scaler
from affectfusion.models.model import MultimodalModel
from affectfusion.training.distributed import DistContext
from affectfusion.training.losses import MultiTaskLoss


def scalers_and_weights(tasks: list[TaskConfig], train: MultimodalDataset) -> tuple[dict, dict]:
    """Target scalers of regression tasks and class / positive weights of the others, from the train split."""
    scalers, weights = {}, {}
    for t in tasks:
        if t.type == "regression":
            scalers[t.name] = TargetScaler.fit([s.targets.get(t.name) for s in train.samples])
        elif t.type == "multilabel":
            if t.pos_weight == "balanced":
                n = sum(s.targets.get(t.name) is not None for s in train.samples)
                weights[t.name] = balanced_pos_weight(class_counts(train.samples, t), n)
            elif isinstance(t.pos_weight, list):
                weights[t.name] = list(t.pos_weight)
        elif t.class_weights == "balanced":
            weights[t.name] = balanced_class_weights(class_counts(train.samples, t))
        elif isinstance(t.class_weights, list):
            weights[t.name] = list(t.class_weights)
    return scalers, weights


@dataclass
class Optimisation:
    """The parts of a run that change weights: loss, optimizer, schedule, sampler, loss scaler."""

    loss_fn: MultiTaskLoss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    per_step: bool
    sampler: DistributedSampler | None
    scaler: torch.amp.GradScaler | None
    ema: AveragedModel | None = None  # the weights that are validated and saved, when train.ema_decay is set

    def evaluated(self, model: MultimodalModel) -> MultimodalModel:
        """The model to validate and checkpoint as best: the moving average of ``model`` when there is one."""
        if self.ema is None:
            return model
        averaged = self.ema.module
        if not isinstance(averaged, MultimodalModel):
            raise TypeError(f"the moving average holds a {type(averaged).__name__}, not the model it averages")
        return averaged

    def context(self, net: nn.Module, model: MultimodalModel, device: torch.device, train: TrainConfig) -> StepContext:
        """What every step of the run shares: these parts with the config's precision, clipping and dropout."""
        return StepContext(
            net,
            model,
            self.loss_fn,
            self.optimizer,
            device,
            train.precision,
            self.scaler,
            train.grad_clip,
            train.modality_dropout,
            self.ema,
        )


def build_optimisation(
    cfg: RunConfig,
    model: nn.Module,
    train_ds: MultimodalDataset,
    scalers: dict,
    weights: dict,
    dist: DistContext,
    device: torch.device,
    mode: str,
) -> Optimisation:
    t = cfg.train
    loss_fn = MultiTaskLoss(
        cfg.tasks,
        {k: torch.tensor(v, dtype=torch.float32) for k, v in weights.items()},
        scalers,
        t.contrastive_weight,
        t.contrastive_temperature,
    )
    trainable = [p for p in model.parameters() if p.requires_grad]  # frozen pretrained weights stay out
    optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(train_ds, dist.world_size, dist.rank, shuffle=True, seed=t.seed) if dist.enabled else None
    )
    steps_per_epoch = math.ceil(len(sampler or train_ds) / t.batch_size)
    scheduler, per_step = make_scheduler(t, optimizer, steps_per_epoch, mode)
    ema = None
    if t.ema_decay is not None:
        ema = AveragedModel(model, device, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
    return Optimisation(loss_fn, optimizer, scheduler, per_step, sampler, grad_scaler(device, t.precision), ema)


def drop_modalities(batch: Batch, p: float, generator: torch.Generator) -> Batch:
    """Mark each present modality missing with probability p, always keeping one per sample."""
    names = list(batch.present)
    present = torch.stack([batch.present[m] for m in names], 1)  # [B, M]
    keep = torch.rand(present.shape, generator=generator) >= p
    new = present & keep
    empty = ~new.any(1) & present.any(1)
    if empty.any():
        # Restore one randomly chosen originally-present modality for samples that lost all.
        scores = torch.rand(present.shape, generator=generator) * present
        choice = scores.argmax(1)
        new[empty, choice[empty]] = True
    return batch.with_present({m: new[:, i] for i, m in enumerate(names)})


def make_scheduler(
    t: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, mode: str
) -> tuple[torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None, bool]:
    """Returns (scheduler, steps_per_batch). Cosine steps per batch, plateau per epoch."""
    if t.scheduler == "plateau":
        patience = max(1, (t.early_stopping.patience if t.early_stopping else 6) // 3)
        direction: Literal["min", "max"] = "max" if mode == "max" else "min"  # resolve_monitor gives one of the two
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=direction, factor=0.5, patience=patience)
        return scheduler, False
    if t.scheduler == "cosine":
        warm, total = t.warmup_epochs * steps_per_epoch, t.epochs * steps_per_epoch

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    return None, False


@dataclass
class EpochResult:
    train_loss: float
    parts: dict[str, float]


@dataclass
class StepContext:
    """What every optimisation step of a run shares."""

    net: nn.Module  # the model, or its DDP wrapper
    model: MultimodalModel
    loss_fn: MultiTaskLoss
    optimizer: torch.optim.Optimizer
    device: torch.device
    precision: Precision
    scaler: torch.amp.GradScaler | None
    grad_clip: float | None
    modality_dropout: float
    ema: AveragedModel | None = None


def train_epoch(
    ctx: StepContext,
    loader: DataLoader,
    generator: torch.Generator,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    advance: Callable[[], None],
) -> EpochResult:
    """One pass over ``loader``; returns the sample-weighted mean loss and its parts."""
    ctx.model.train()
    total, n = 0.0, 0
    parts_sum: dict[str, float] = {}
    for batch in loader:
        if ctx.modality_dropout > 0:  # on the CPU batch: the generator is a CPU one
            batch = drop_modalities(batch, ctx.modality_dropout, generator)
        batch = batch.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, ctx.precision):
            out = ctx.net(batch)
            loss, parts = ctx.loss_fn(out, batch)
            # Heads of tasks unlabelled in this batch still join the graph (DDP needs every
            # parameter to receive a gradient, even a zero one).
            loss = loss + sum(o.sum() * 0.0 for o in out.outputs.values())
        ctx.optimizer.zero_grad(set_to_none=True)
        _backward_and_step(ctx, loss)
        if ctx.ema is not None:
            ctx.ema.update_parameters(ctx.model)
        if step_scheduler is not None:
            step_scheduler.step()
        total += float(loss.detach()) * len(batch)
        n += len(batch)
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v * len(batch)
        advance()
    return EpochResult(total / max(n, 1), {k: v / max(n, 1) for k, v in parts_sum.items()})


def _backward_and_step(ctx: StepContext, loss: torch.Tensor) -> None:
    """Backward, clip, step; with fp16 the loss is scaled and gradients unscaled before clipping."""
    if ctx.scaler is None:
        loss.backward()
        if ctx.grad_clip:
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.grad_clip)
        ctx.optimizer.step()
        return
    ctx.scaler.scale(loss).backward()
    if ctx.grad_clip:
        ctx.scaler.unscale_(ctx.optimizer)
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.grad_clip)
    ctx.scaler.step(ctx.optimizer)
    ctx.scaler.update()


@torch.no_grad()
def mean_loss(model: nn.Module, loader: DataLoader, loss_fn: MultiTaskLoss, device: torch.device) -> float:
    """Sample-weighted mean loss over ``loader`` in eval mode (float32 unless the caller autocasts)."""
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        loss, _ = loss_fn(model(batch), batch)
        total += float(loss) * len(batch)
        n += len(batch)
    return total / max(n, 1)
