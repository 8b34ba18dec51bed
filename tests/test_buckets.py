"""Length-bucketed batches: every sample once per epoch, less padding, reproducible, resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affectfusion.data.buckets import LengthBuckets, sample_costs
from affectfusion.pipeline import load_dataset
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config
from tests.test_training import assert_same_tensors, train_interrupted_then_resumed


def padded_cost(batches: list[list[int]], costs: np.ndarray) -> int:
    return sum(len(b) * int(costs[b].max()) for b in batches)


def test_every_sample_once_and_less_padding() -> None:
    costs = np.random.default_rng(0).integers(1, 400, 1000)
    batches = list(LengthBuckets(costs, 32, torch.Generator().manual_seed(1), block=8))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(LengthBuckets(costs, 32, torch.Generator(), block=8))
    assert max(len(b) for b in batches) == 32
    random_order = np.random.default_rng(2).permutation(1000)
    shuffled = [random_order[i : i + 32].tolist() for i in range(0, 1000, 32)]
    assert padded_cost(batches, costs) < 0.8 * padded_cost(shuffled, costs)
    again = list(LengthBuckets(costs, 32, torch.Generator().manual_seed(1), block=8))
    assert again == batches


def test_costs_come_from_shapes_without_reading() -> None:
    cfg = tiny_config()
    ds = load_dataset(cfg, "dev")
    costs = sample_costs(ds)
    expected = [sum(x.size for x in (s.features[m] for m in s.features)) for s in ds.samples]
    assert costs.tolist() == expected


@pytest.mark.slow
def test_bucketed_training_resumes_exactly(tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_config({"train.epochs": 4, "train.bucket_by_length": True, "train.batch_size": 8})
    Trainer(cfg, tmp_path / "full").fit()
    train_interrupted_then_resumed(cfg, tmp_path / "resumed", monkeypatch)
    assert_same_tensors(
        tmp_path / "full/checkpoints/last.safetensors", tmp_path / "resumed/checkpoints/last.safetensors"
    )
