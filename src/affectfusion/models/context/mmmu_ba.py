"""MMMU-BA (Ghosal et al., EMNLP 2018, "Contextual Inter-modal Attention for Multi-modal Sentiment
Analysis"): context first, per modality, then bi-modal attention between every pair of modalities
across all the conversation's utterances.

Unlike the stages that read the fused vector, this one reads each modality's own utterance sequence
(``reads_streams``): fusing first would leave no modality pairs to attend between.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from affectfusion.models.context.base import CONTEXTS, ContextStage, Streams
from affectfusion.models.context.base import Options as BaseOptions
from affectfusion.models.fusions.common import masked_softmax

FUSED = "fused"  # the one stream when a caller has only fused vectors


@CONTEXTS.register("mmmu_ba")
class MmmuBaContext(ContextStage):
    """MMMU-BA: a Bi-GRU per modality over the utterances, then bi-modal attention for every pair.

    Per modality m: a bidirectional GRU over the utterances, then a ReLU layer: ``D_m [L, d]``.
    Per pair (a, b): ``N = softmax(D_a D_b^T)`` over b's utterances, ``A_ab = (N D_b) * D_a``, and the
    same from b's side. Each utterance's output is ``[A_ab, A_ba for every pair, D_m for every modality]``
    (plus the fused vector with ``with_fused``); the task head is the paper's final dense layer
    (``head_hidden: 0`` makes it exactly one).

    An utterance's missing modality enters that modality's GRU as zeros with an "absent" flag and is
    never attended to; padded utterances enter neither a GRU (packed by length) nor the attention.
    A caller with only fused vectors gets a bc-LSTM over them (one stream, no pairs).
    """

    reads_streams = True

    class Options(BaseOptions):
        rnn_size: int = Field(300, ge=1, le=4096, description="GRU units per direction, per modality (paper: 300)")
        dense_size: int = Field(
            100, ge=1, le=4096, description="the ReLU layer after each GRU, the attention's width (paper: 100)"
        )
        rnn_dropout: float = Field(0.4, ge=0.0, lt=1.0, description="dropout on the GRU outputs (paper, MOSI: 0.4)")
        with_fused: bool = Field(
            True,
            description="also hand the configured fusion's vector to the head; false = the paper's design "
            "(then pick a fusion without weights, e.g. concat)",
        )

    options: Options

    def __init__(
        self, dim: int, dropout: float, speakers: int, options: Options, modalities: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(dim, dropout, speakers, options, modalities)
        sizes = dict(modalities) if modalities else {FUSED: dim}
        self.names = list(sizes)
        self.pairs = list(combinations(self.names, 2))
        self.with_fused = options.with_fused
        # +1 input: the "present" flag, so a missing modality is not read as an average utterance.
        self.grus = nn.ModuleDict(
            {m: nn.GRU(n + 1, options.rnn_size, batch_first=True, bidirectional=True) for m, n in sizes.items()}
        )
        self.dense = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Dropout(options.rnn_dropout),
                    nn.Linear(2 * options.rnn_size, options.dense_size),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                )
                for m in self.names
            }
        )
        width = options.dense_size * (len(self.names) + 2 * len(self.pairs))
        self.out_dim = width + (dim if self.with_fused else 0)

    def contextualise(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.contextualise_streams(x, mask, None)

    def contextualise_streams(self, x: Tensor, mask: Tensor, streams: Streams | None) -> Tensor:
        if streams is None:
            if self.names != [FUSED]:
                raise ValueError(f"mmmu_ba context built for {self.names} needs each modality's vectors")
            streams = Streams({FUSED: x}, {FUSED: mask})
        lengths = mask.sum(1).clamp(min=1).cpu()
        seqs: dict[str, Tensor] = {}
        keys: dict[str, Tensor] = {}
        for m in self.names:
            here = streams.present[m].bool() & mask
            flag, values = here.unsqueeze(-1), streams.values[m]
            inputs = torch.cat([torch.where(flag, values, 0.0), flag.to(values.dtype)], dim=-1)
            packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.grus[m](packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            seqs[m], keys[m] = self.dense[m](out), here
        parts = [x] if self.with_fused else []
        for a, b in self.pairs:
            parts += [attend(seqs[a], seqs[b], keys[b]), attend(seqs[b], seqs[a], keys[a])]
        return torch.cat(parts + [seqs[m] for m in self.names], dim=-1)


def attend(query: Tensor, key: Tensor, allowed: Tensor) -> Tensor:
    """``(softmax(Q K^T) K) * Q`` over the allowed utterances of ``key`` (``[C, L]``); zero where
    none is allowed. ``query``/``key`` are ``[C, L, d]``."""
    weights = masked_softmax(query @ key.transpose(1, 2), allowed.unsqueeze(1))
    return (weights @ key) * query
