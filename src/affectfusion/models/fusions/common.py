"""Helpers every fusion strategy shares: presence masks, safe softmax, attention blocks."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import Encoded


def presence(present: dict[str, Tensor], modalities: list[str]) -> Tensor:
    """``[B, M]`` bool: which modalities each sample has, in ``modalities`` order."""
    return torch.stack([present[m].bool() for m in modalities], dim=1)


def stack_pooled(inputs: dict[str, Encoded], modalities: list[str], p: Tensor) -> Tensor:
    """Pooled embeddings as ``[B, M, H]``, zero for missing modalities."""
    pooled = torch.stack([inputs[m].pooled for m in modalities], dim=1)
    return torch.where(p.unsqueeze(-1), pooled, 0.0)


def valid_steps(enc: Encoded, present: Tensor) -> Tensor:
    """``[B, T]`` bool: real time steps of a present modality (none for a missing one)."""
    return enc.mask.bool() & present.unsqueeze(1)


def zero_invalid(seq: Tensor, valid: Tensor) -> Tensor:
    """Zero the padded / missing steps of ``seq [B, T, H]``."""
    return torch.where(valid.unsqueeze(-1), seq, 0.0)


def masked_softmax(logits: Tensor, p: Tensor) -> Tensor:
    """Softmax over the present entries of the last dim; missing entries get exactly 0."""
    w = torch.softmax(logits.masked_fill(~p, torch.finfo(logits.dtype).min), dim=-1)
    return torch.where(p, w, 0.0)


def mean_over_present(x: Tensor, p: Tensor) -> Tensor:
    """Mean of ``x [B, M, H]`` over the present modalities ``p [B, M]``."""
    return torch.where(p.unsqueeze(-1), x, 0.0).sum(1) / p.sum(1, keepdim=True).clamp(min=1)


def key_padding(allowed: Tensor) -> Tensor:
    """``key_padding_mask`` from allowed keys ``[B, S]``.

    A row with no allowed key may attend to every key instead of producing NaN; callers discard
    the output of such rows.
    """
    return ~allowed & allowed.any(1, keepdim=True)


def append_one(x: Tensor) -> Tensor:
    """``[B, D] -> [B, D + 1]`` with a constant 1 (TFN / LMF: a zero vector then keeps the others)."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=-1)


def sinusoid(length: int, dim: int, device: torch.device) -> Tensor:
    """Sinusoidal positions ``[length, dim]`` (Vaswani et al. 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


def check_heads(name: str, dim: int, heads: int) -> None:
    if dim % heads:
        raise AffectFusionError(
            f"{name} fusion: model.fusion.options.heads ({heads}) must divide model.hidden_dim ({dim})"
        )


def feed_forward(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))


class CrossBlock(nn.Module):
    """Post-norm attention block: ``x = LN(x + attn(x, kv)); x = LN(x + ffn(x))``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = feed_forward(dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, kv: Tensor, kv_padding: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the new ``x`` and the head-averaged attention weights ``[B, Tq, S]``."""
        a, weights = self.attn(x, kv, kv, key_padding_mask=kv_padding, need_weights=True)
        x = self.norm1(x + self.drop(a))
        x = self.norm2(x + self.drop(self.ffn(x)))
        return x, weights


class ModalityWeights(nn.Module):
    """Softmax weights over present modalities: a learned logit each, plus (``dynamic``) a score
    computed from each sample's embedding. Shared by ``weighted`` and ``cross_attention``."""

    def __init__(self, n: int, dim: int, dynamic: bool) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n))
        self.scorers = (
            nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1)) for _ in range(n))
            if dynamic
            else None
        )
        if self.scorers is not None:
            # Start from uniform weights: a random scorer can put ~all weight on one modality at
            # once and starve the others of gradient before they have learned anything.
            for scorer in self.scorers:
                last = list(scorer.children())[-1]
                assert isinstance(last, nn.Linear)  # the scorer's output layer
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def forward(self, h: Tensor, p: Tensor) -> Tensor:
        """``h [B, M, H]`` (zero where missing), ``p [B, M]`` -> weights ``[B, M]``, 0 where missing."""
        logits = self.logits.expand(h.shape[0], -1)
        if self.scorers is not None:
            logits = logits + torch.cat([s(h[:, i]) for i, s in enumerate(self.scorers)], dim=1)
        return masked_softmax(logits, p)
