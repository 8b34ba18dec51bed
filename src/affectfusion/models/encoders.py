"""Per-modality encoders: [B, T, D] features -> [B, T', H] sequence + [B, H] pooled embedding."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import ENCODERS, Encoded, Encoder, masked_mean
from affectfusion.models.base import Options as BaseOptions


@ENCODERS.register("mean")
class MeanPoolEncoder(Encoder):
    """Per-step projection (Linear, optional LayerNorm, ReLU), then masked mean over time
    (P1 v0; P1 v1 with layer_norm). For a vector feature (T = 1) this is just the projection.
    ``pool: before`` averages the raw frames first and projects the average (the averaged-feature
    subnetworks of TFN-style baselines): another model, whose cost does not grow with the length."""

    class Options(BaseOptions):
        layer_norm: bool = False
        activation: bool = Field(True, description="ReLU after the projection")
        real_frames: bool = Field(
            False,
            description="project, activate and drop out only the real time steps (not the padding), with "
            "dropout drawn from uniform noise: the same model and expected result, about twice as fast "
            "on long padded sequences, but another random stream than false (so other numbers)",
        )
        pool: Literal["after", "before"] = Field(
            "after",
            description="after: project every step, then average (the default); before: average the real steps "
            "of the input, then project that one vector (cost independent of the sequence length; one output step)",
        )

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        if options.layer_norm:
            layers.append(nn.LayerNorm(out_dim))
        if options.activation:
            layers.append(nn.ReLU())
        layers.append(nn.Dropout(dropout))
        self.proj = nn.Sequential(*layers)
        self.real_frames = options.real_frames
        self.reads_mean = options.pool == "before"
        self.p = dropout

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        if self.reads_mean:
            present = mask.any(1, keepdim=True)
            pooled = self.proj(masked_mean(x, mask)) * present.to(x.dtype)  # zero for a missing modality, as "after"
            return Encoded(seq=pooled.unsqueeze(1), mask=present, pooled=pooled)
        if self.real_frames and x.shape[1] > 1:
            return self._real_frames(x, mask)
        seq = self.proj(x)
        return Encoded(seq=seq, mask=mask, pooled=masked_mean(seq, mask))

    def _real_frames(self, x: Tensor, mask: Tensor) -> Encoded:
        """The real steps packed into one [N, D] matrix: no work (and no dropout noise) on padding."""
        where = mask.nonzero(as_tuple=True)
        h = self.proj[:-1](x[where])
        if self.training and self.p > 0:
            h = h * (torch.rand_like(h) >= self.p).to(h.dtype) * (1.0 / (1.0 - self.p))
        b, t = mask.shape
        pooled = h.new_zeros(b, h.shape[1]).index_add_(0, where[0], h)
        pooled = pooled / mask.sum(1, keepdim=True).clamp(min=1).to(h.dtype)
        seq = h.new_zeros(b, t, h.shape[1]).index_put_(where, h)
        return Encoded(seq=seq, mask=mask, pooled=pooled)


@ENCODERS.register("tcn")
class TemporalCNNEncoder(Encoder):
    """Stacked 1-D convolutions with growing dilation, masked mean-pool (P1 v2 audio/video)."""

    class Options(BaseOptions):
        layers: int = Field(2, ge=1, le=64)
        kernel_size: int = Field(3, ge=1)

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        blocks: list[nn.Module] = []
        for i in range(options.layers):
            dilation = 2**i
            blocks += [
                nn.Conv1d(
                    in_dim if i == 0 else out_dim,
                    out_dim,
                    options.kernel_size,
                    padding=dilation * (options.kernel_size - 1) // 2,
                    dilation=dilation,
                ),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
        self.net = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        keep = mask.unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = x.transpose(1, 2) * keep
        for layer in self.net:
            h = layer(h)[..., : x.shape[1]]
            if isinstance(layer, nn.Dropout):  # end of a block: padded steps back to zero, so the
                h = h * keep  # next (dilated) convolution cannot carry them into real steps
        seq = self.norm(h.transpose(1, 2))
        return Encoded(seq=seq, mask=mask, pooled=masked_mean(seq, mask))


@ENCODERS.register("transformer")
class TransformerEncoder(Encoder):
    """Projection + learned positions + Transformer encoder layers (P2 temporal/contextual blocks)."""

    class Options(BaseOptions):
        layers: int = Field(2, ge=1, le=64)
        heads: int = Field(4, ge=1, le=64)
        max_len: int = Field(1024, ge=1, le=65_536)
        pool: Literal["mean", "first"] = "mean"

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        if out_dim % options.heads:
            raise AffectFusionError(
                f"transformer encoder: model.hidden_dim ({out_dim}) must be divisible by heads ({options.heads})"
            )
        self.proj = nn.Linear(in_dim, out_dim)
        self.pos = nn.Parameter(torch.zeros(options.max_len, out_dim))
        layer = nn.TransformerEncoderLayer(
            out_dim, options.heads, dim_feedforward=2 * out_dim, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, options.layers, enable_nested_tensor=False)
        self.pool = options.pool
        self.max_len = options.max_len

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        x = x[:, : self.max_len]
        mask = mask[:, : self.max_len]
        h = self.proj(x) + self.pos[: x.shape[1]]
        # Rows of a missing modality have no valid step; let them attend to everything (output is
        # ignored downstream) rather than produce NaN from an all-masked softmax.
        key_padding = ~mask & mask.any(1, keepdim=True)
        seq = self.encoder(h, src_key_padding_mask=key_padding)
        pooled = seq[:, 0] if self.pool == "first" else masked_mean(seq, mask)
        return Encoded(seq=seq, mask=mask, pooled=pooled)


@ENCODERS.register("bilstm")
class BiLSTMEncoder(Encoder):
    """Bidirectional LSTM (each direction H/2), masked mean-pool."""

    class Options(BaseOptions):
        layers: int = Field(1, ge=1, le=64)

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        if out_dim % 2:
            raise AffectFusionError(f"bilstm encoder: model.hidden_dim ({out_dim}) must be even")
        self.lstm = nn.LSTM(
            in_dim,
            out_dim // 2,
            num_layers=options.layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if options.layers > 1 else 0.0,
        )

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        seq, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return Encoded(seq=seq, mask=mask, pooled=masked_mean(seq, mask))
