"""Rows of a padded token batch grouped into encoder calls by length, so short rows are not run at the
longest row's length.

A batch of whole dialogues mixes "Okay." (3 tokens) with 60-token speeches: padded to the longest, a
transformer runs about 2.6 padded tokens per real one on MELD. Sorting rows by length and cutting them
into a few calls, each padded to its own longest, removes most of that; every extra call costs a fixed
overhead (framework dispatch per layer on a CPU, kernel launches on a GPU), expressed here in padded
tokens. The cut is the cheapest one for that cost model (dynamic programming over distinct lengths).
"""

from __future__ import annotations

import torch
from torch import Tensor

# What one more encoder call costs, in padded tokens' worth of work. Measured on one CPU thread with
# MiniLM (forward + backward): ~30 ms per call against ~1-2 ms per token. On a GPU a token is almost
# free and a call is not, so calls are merged much more eagerly there (an estimate, not a measurement).
CALL_COST_TOKENS = {"cpu": 32, "cuda": 4096}
DEFAULT_CALL_COST = 32


def row_extents(mask: Tensor) -> Tensor:
    """``[B]``: one past each row's last real step (0 for a row with none), for ``mask [B, T]``."""
    steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (mask.to(torch.long) * steps).amax(1) if mask.shape[1] else mask.new_zeros(mask.shape[0], dtype=torch.long)


def length_buckets(extents: list[int], call_cost: int) -> list[tuple[list[int], int]]:
    """Rows with a nonzero extent as ``(row indices, padded length)`` groups, minimising padded tokens
    plus ``call_cost`` per group. Rows of extent 0 are in no group (there is nothing to encode)."""
    order = sorted((e, i) for i, e in enumerate(extents) if e > 0)
    if not order:
        return []
    values = sorted({e for e, _ in order})
    counts = [0] * (len(values) + 1)  # counts[k] = rows with extent <= values[k - 1]
    position = {v: k for k, v in enumerate(values, start=1)}
    for e, _ in order:
        counts[position[e]] += 1
    for k in range(1, len(counts)):
        counts[k] += counts[k - 1]
    best = [0.0] + [float("inf")] * len(values)
    cut = [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        for i in range(j):
            cost = best[i] + (counts[j] - counts[i]) * values[j - 1] + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(values)
    while j > 0:
        i = cut[j]
        groups.append(([row for _, row in order[counts[i] : counts[j]]], values[j - 1]))
        j = i
    return groups[::-1]


def call_cost_for(device: torch.device, configured: int | None) -> int:
    """The configured call cost, or this device type's default."""
    return configured if configured is not None else CALL_COST_TOKENS.get(device.type, DEFAULT_CALL_COST)
