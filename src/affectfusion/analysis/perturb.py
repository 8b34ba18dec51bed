"""Batch transforms for analyses: hide modalities, add noise, drop a modality at a rate.

Each returns a function ``Batch -> Batch`` for :func:`affectfusion.training.predict.predict`.
Randomness comes from a seeded generator so that every analysis is repeatable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from affectfusion.data.types import Batch

Transform = Callable[[Batch], Batch]


def keep_only(modalities: Iterable[str]) -> Transform:
    """Mark every modality outside ``modalities`` missing (evaluation-time ablation, 'mask' mode)."""
    keep = set(modalities)

    def apply(batch: Batch) -> Batch:
        return batch.with_present({m: p & (m in keep) for m, p in batch.present.items()})

    return apply


def gaussian_noise(modality: str, level: float, feature_std: torch.Tensor, seed: int = 0) -> Transform:
    """Add N(0, (level * std)^2) to each real time step of ``modality``; ``feature_std`` is the
    per-feature std of the training split, so ``level`` is in units of the data's own spread."""
    g = torch.Generator().manual_seed(seed)

    def apply(batch: Batch) -> Batch:
        x = batch.features[modality]
        noise = torch.randn(x.shape, generator=g) * feature_std * level
        valid = (batch.padding[modality] & batch.present[modality][:, None]).unsqueeze(-1)
        features = {**batch.features, modality: torch.where(valid, x + noise, x)}
        return Batch(batch.ids, features, batch.padding, batch.present, batch.targets, batch.target_mask)

    return apply


def drop_at_rate(modality: str, rate: float, seed: int = 0) -> Transform:
    """Make ``modality`` missing for a random ``rate`` fraction of samples (missing-rate curves).

    Unlike training-time modality dropout this may leave a sample with no modality at all; the
    fusion strategies are required to give a finite output then (their bias alone).
    """
    g = torch.Generator().manual_seed(seed)

    def apply(batch: Batch) -> Batch:
        drop = torch.rand(len(batch), generator=g) < rate
        return batch.with_present({**batch.present, modality: batch.present[modality] & ~drop})

    return apply
