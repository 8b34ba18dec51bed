"""Conversations as training items: a split's utterances grouped by ``group``, put in ``order``
and cut into windows, so that a context stage sees an utterance's neighbours in the same batch.

Losses and metrics stay per utterance: each utterance is scored in exactly one window (the
overlap a long conversation's next window repeats is context only there), and ``samples`` is
the utterances in window order, so predictions line up with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

from affectfusion.config import ContextConfig
from affectfusion.data.types import ModalitySpec, MultimodalDataset, Sample, Window
from affectfusion.errors import AffectFusionError


def conversations(samples: Sequence[Sample], where: str) -> list[list[Sample]]:
    """Samples grouped by ``group`` (first appearance order) and sorted by ``order`` within each.

    A sample without a group is a conversation of its own; a group whose samples lack ``order``
    keeps the file order; two samples of one group at the same order are an error.
    """
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.id if s.group is None else f"g:{s.group}", []).append(s)
    out = []
    for conv in groups.values():
        if all(s.order is not None for s in conv):
            conv = sorted(conv, key=lambda s: cast(int, s.order))  # all set (checked above)
            orders = [s.order for s in conv]
            dup = next((a for a, b in itertools.pairwise(orders) if a == b), None)
            if dup is not None:
                raise AffectFusionError(f"{where}: conversation {conv[0].group!r} has two utterances at order {dup}")
        out.append(conv)
    return out


def make_windows(conv: list[Sample], window: int, overlap: int) -> list[Window]:
    """Cut one conversation into windows of at most ``window`` utterances (0 = whole) that repeat the
    previous window's last ``overlap`` utterances as unscored context."""
    if window <= 0 or len(conv) <= window:
        return [Window(list(conv), [True] * len(conv))]
    if not 0 <= overlap < window:
        raise AffectFusionError(f"model.context.overlap must be in [0, window), got {overlap} for window {window}")
    out, start, stride = [], 0, window - overlap
    while True:
        part = conv[start : start + window]
        context = 0 if start == 0 else overlap
        out.append(Window(part, [False] * context + [True] * (len(part) - context)))
        if start + window >= len(conv):
            return out
        start += stride


class ConversationDataset(MultimodalDataset):
    """A :class:`MultimodalDataset` whose items are conversation windows (the collator flattens them)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        modalities: dict[str, ModalitySpec] | None = None,
        name: str = "dataset",
        window: int = 0,
        overlap: int = 0,
    ) -> None:
        super().__init__(samples, modalities=modalities, name=name)
        self.windows = [w for conv in conversations(self.samples, name) for w in make_windows(conv, window, overlap)]
        self.samples = [s for w in self.windows for s, scored in zip(w.samples, w.scored, strict=True) if scored]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> Window:  # type: ignore[override]  # items are windows; the collator flattens them
        return self.windows[i]


def dataset_for(
    context: ContextConfig, samples: Sequence[Sample], modalities: dict[str, ModalitySpec] | None, name: str
) -> MultimodalDataset:
    """The dataset a model with this context stage reads: conversation windows, or single utterances."""
    if context.name == "none":
        return MultimodalDataset(samples, modalities=modalities, name=name)
    return ConversationDataset(samples, modalities, name, window=context.window, overlap=context.overlap)
