"""Length-bucketed batches: samples of similar length share a batch, so little of it is padding.

A batch is padded to its longest sample per modality; drawn at random from a corpus whose lengths
vary (MOSEI: 1 to 400 frames), most of its steps are padding that every layer still computes. Here
each epoch shuffles the samples, cuts the order into blocks of ``block`` batches, sorts each block
by length and cuts it into batches, then shuffles the batches: every sample once per epoch, batches
of neighbours in length, their order random. The order depends only on the generator, which the
trainer seeds per epoch, so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from affectfusion.data.types import MultimodalDataset, feature_shape


def sample_costs(dataset: MultimodalDataset) -> np.ndarray:
    """Per sample, its feature values (sum over modalities of steps x dim): what padding multiplies."""
    return np.array(
        [sum(int(np.prod(feature_shape(s.features, m))) for m in s.features) for s in dataset.samples],
        dtype=np.int64,
    )


class LengthBuckets(Sampler[list[int]]):
    """Batches of indices into ``costs``, grouped by cost within shuffled blocks of ``block`` batches."""

    def __init__(self, costs: np.ndarray, batch_size: int, generator: torch.Generator, block: int = 50) -> None:
        self.costs, self.batch_size, self.generator, self.block = costs, batch_size, generator, block

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.costs), generator=self.generator).numpy()
        batches = []
        span = self.batch_size * self.block
        for start in range(0, len(order), span):
            part = order[start : start + span]
            part = part[np.argsort(self.costs[part], kind="stable")]
            batches += [part[i : i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

    def __len__(self) -> int:
        span = self.batch_size * self.block
        full, rest = divmod(len(self.costs), span)
        return full * self.block + -(-rest // self.batch_size)
