"""Per-feature statistics of a split streamed sample by sample, so a split larger than memory can be
standardised (the input normalisation of :meth:`MultimodalModel.fit_input_norm`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from affectfusion.data.types import Sample


def features_of(samples: Sequence[Sample], modality: str) -> Iterator[np.ndarray]:
    """Every sample's array of ``modality``, one at a time (nothing is kept)."""
    for s in samples:
        if modality in s.features:
            yield s.features[modality]


def frame_moments(arrays: Iterable[np.ndarray], chunk_bytes: int = 32 << 20) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-feature mean and (population) std over every row of ``arrays``, in float64, streamed in
    chunks of about ``chunk_bytes`` (merged with Chan et al.'s pairwise update), so the statistics of
    a split of any size need no more memory than one chunk. None when there is no row."""
    count, mean, m2 = 0, None, None
    rows: list[np.ndarray] = []
    held = 0

    def merge() -> None:
        nonlocal count, mean, m2, rows, held
        x = np.concatenate(rows, axis=0).astype(np.float64)
        rows, held = [], 0
        n_b, mean_b = x.shape[0], x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        if mean is None or m2 is None:
            count, mean, m2 = n_b, mean_b, m2_b
            return
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total

    for x in arrays:
        rows.append(x)
        held += x.nbytes * 2
        if held >= chunk_bytes:
            merge()
    if rows:
        merge()
    if mean is None or m2 is None:
        return None
    return mean, np.sqrt(m2 / count)
