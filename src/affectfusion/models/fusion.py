"""Fusion strategies: per-modality :class:`Encoded` embeddings -> one ``[B, out_dim]`` vector.

Every strategy accepts any non-empty subset of present modalities per sample. Missing modalities
and padded time steps are replaced by zeros (or by ``[0, ..., 0, 1]`` in the tensor-product
methods) with ``torch.where`` before anything else touches them, so their values - even NaN -
can never reach the output, and attention never runs a softmax over a row with no allowed key.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput, Options, masked_mean

# ---------------------------------------------------------------------------------------------
# Shared helpers


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


# ---------------------------------------------------------------------------------------------
# Strategies


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
                nn.init.zeros_(scorer[-1].weight)
                nn.init.zeros_(scorer[-1].bias)

    def forward(self, h: Tensor, p: Tensor) -> Tensor:
        """``h [B, M, H]`` (zero where missing), ``p [B, M]`` -> weights ``[B, M]``, 0 where missing."""
        logits = self.logits.expand(h.shape[0], -1)
        if self.scorers is not None:
            logits = logits + torch.cat([s(h[:, i]) for i, s in enumerate(self.scorers)], dim=1)
        return masked_softmax(logits, p)


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenation of pooled embeddings, missing ones zeroed (P1 v0); the task head adds the MLP."""

    class Options(Options):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.out_dim = len(self.modalities) * dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        return FusionOutput(stack_pooled(inputs, self.modalities, p).flatten(1))


@FUSIONS.register("concat_ln")
class ConcatLayerNormFusion(Fusion):
    """Concatenation -> LayerNorm -> dropout (P1 v1): puts modalities of different scale on par."""

    class Options(Options):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.out_dim = len(self.modalities) * dim
        self.norm = nn.LayerNorm(self.out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        return FusionOutput(self.drop(self.norm(stack_pooled(inputs, self.modalities, p).flatten(1))))


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Per-modality sigmoid gate vectors from all embeddings, gated embeddings summed (P2/P5).

    The gates see the concatenation of the (zeroed) embeddings plus the presence flags, so a gate
    knows which modalities are missing; a missing modality's gate is forced to 0 and the sum runs
    over present modalities only (out_dim = H). ``modality_weights`` is each modality's mean gate,
    normalised over the present ones; ``gates`` is the full ``[B, M, H]`` gate tensor.
    """

    class Options(Options):
        """No options."""

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        n = len(self.modalities)
        self.gate = nn.Linear(n * dim + n, n * dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        gates = torch.sigmoid(self.gate(torch.cat([h.flatten(1), p.to(h.dtype)], dim=1))).view_as(h)
        gates = torch.where(p.unsqueeze(-1), gates, 0.0)
        strength = gates.mean(-1)
        weights = strength / strength.sum(1, keepdim=True).clamp(min=torch.finfo(h.dtype).tiny)
        fused = self.drop((gates * h).sum(1))
        return FusionOutput(fused, {"modality_weights": weights, "gates": gates})


@FUSIONS.register("weighted")
class WeightedFusion(Fusion):
    """Softmax-weighted average of pooled embeddings (P1 v2 "dynamic fusion", P2 weighted average).

    The score of a modality is a learned logit plus, with ``dynamic``, a sample-dependent score
    from a small per-modality scorer. The softmax runs over present modalities only, so the
    weights (``modality_weights``, out_dim = H) renormalise when a modality is missing.
    """

    class Options(Options):
        dynamic: bool = Field(True, description="add a sample-dependent score computed from each embedding")

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.weighting = ModalityWeights(len(self.modalities), dim, options.dynamic)
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        weights = self.weighting(h, p)
        fused = self.drop((weights.unsqueeze(-1) * h).sum(1))
        return FusionOutput(fused, {"modality_weights": weights})


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(Fusion):
    """Bidirectional cross-modal attention (P1 v2 with 6 layers, P2, P5).

    In every layer each modality's sequence (plus a learned modality-type embedding) attends to the
    valid steps of all *other* present modalities; with no other modality present it attends to
    itself. Each modality is masked-mean-pooled and the pooled vectors are *averaged* over present
    modalities (out_dim = H). ``modality_attention [B, M, M]``: row i is how modality i's queries
    split their last-layer attention over the modalities (zero row for a missing modality).
    ``combine: weighted`` replaces the average by learned softmax modality weights (P1 v2's
    dynamic fusion after its cross-modal attention), reported as ``modality_weights``.
    """

    class Options(Options):
        layers: int = Field(2, ge=1)
        heads: int = Field(4, ge=1)
        combine: Literal["mean", "weighted"] = Field("mean", description="how pooled modalities are joined")

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        check_heads("cross_attention", dim, options.heads)
        n = len(self.modalities)
        self.type_emb = nn.Parameter(0.02 * torch.randn(n, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList(CrossBlock(dim, options.heads, dropout) for _ in range(n)) for _ in range(options.layers)
        )
        self.weighting = ModalityWeights(n, dim, dynamic=True) if options.combine == "weighted" else None
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        valids = [valid_steps(inputs[m], p[:, i]) for i, m in enumerate(self.modalities)]
        seqs = [zero_invalid(inputs[m].seq + self.type_emb[i], valids[i]) for i, m in enumerate(self.modalities)]
        # All modalities' steps side by side as one key sequence; owner[s] = modality of key s.
        valid = torch.cat(valids, dim=1)
        owner = torch.cat([torch.full((v.shape[1],), i, device=p.device) for i, v in enumerate(valids)])
        paddings = []
        for i in range(len(self.modalities)):
            others, own = valid & (owner != i), valid & (owner == i)
            paddings.append(key_padding(torch.where(others.any(1, keepdim=True), others, own)))
        for blocks in self.layers:
            kv = torch.cat(seqs, dim=1)
            outs = [block(x, kv, pad) for block, x, pad in zip(blocks, seqs, paddings, strict=True)]
            seqs = [zero_invalid(x, v) for (x, _), v in zip(outs, valids, strict=True)]
        pooled = torch.stack([masked_mean(x, v) for x, v in zip(seqs, valids, strict=True)], dim=1)
        attention = torch.stack(
            [
                masked_mean(w.new_zeros(*w.shape[:2], len(self.modalities)).index_add(2, owner, w), v)
                for (_, w), v in zip(outs, valids, strict=True)
            ],
            dim=1,
        )
        explanations = {"modality_attention": attention}
        if self.weighting is None:
            return FusionOutput(mean_over_present(pooled, p), explanations)
        weights = self.weighting(torch.where(p.unsqueeze(-1), pooled, 0.0), p)
        explanations["modality_weights"] = weights
        return FusionOutput((weights.unsqueeze(-1) * pooled).sum(1), explanations)


@FUSIONS.register("tensor")
class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al. 2017): outer product of ``[proj(h_m); 1]`` over modalities.

    The appended 1 keeps every unimodal and lower-order term in the product; a missing modality
    contributes ``[0, ..., 0, 1]`` so the product reduces to the other modalities' terms. The
    flattened ``(rank_dim + 1) ** M`` product goes through dropout and a linear map to out_dim.
    """

    class Options(Options):
        rank_dim: int = Field(16, ge=1, description="size each modality is projected to before the product")
        out_dim: int | None = Field(None, ge=1, description="output size (default: model.hidden_dim)")

    max_product = 2**20

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        size = (options.rank_dim + 1) ** len(self.modalities)
        if size > self.max_product:
            raise AffectFusionError(
                f"tensor fusion: (model.fusion.options.rank_dim + 1) ** {len(self.modalities)} modalities = "
                f"{size} features is too large; lower rank_dim or use low_rank"
            )
        self.proj = nn.ModuleList(nn.Linear(dim, options.rank_dim) for _ in self.modalities)
        self.drop = nn.Dropout(dropout)
        self.out_dim = options.out_dim or dim
        self.out = nn.Linear(size, self.out_dim)

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        product = h.new_ones(h.shape[0], 1)
        for i, proj in enumerate(self.proj):
            z = append_one(torch.where(p[:, i, None], proj(h[:, i]), 0.0))
            product = torch.einsum("bi,bj->bij", product, z).flatten(1)
        return FusionOutput(self.out(self.drop(product)))


@FUSIONS.register("low_rank")
class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al. 2018): the TFN product with rank-``rank`` factors.

    ``fused = sum_r w_r * prod_m ([h_m; 1] @ W_m[r]) + b`` never builds the outer product, so it
    scales to many modalities. A missing modality is ``[0, ..., 0, 1]`` and contributes only its
    learned constant row ``W_m[r, -1]``, initialised to 1 so that it starts as a no-op. out_dim = H.
    """

    class Options(Options):
        rank: int = Field(4, ge=1)

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        self.factors = nn.ParameterList()
        for _ in self.modalities:
            factor = torch.randn(options.rank, dim + 1, dim) * dim**-0.5
            factor[:, -1] = 1.0
            self.factors.append(nn.Parameter(factor))
        self.rank_weights = nn.Parameter(torch.randn(options.rank) * options.rank**-0.5)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        h = stack_pooled(inputs, self.modalities, p)
        product = h.new_ones(1)
        for i, factor in enumerate(self.factors):
            product = product * torch.einsum("bd,rdo->bro", append_one(h[:, i]), factor)
        fused = torch.einsum("r,bro->bo", self.rank_weights, product) + self.bias
        return FusionOutput(self.drop(fused))


@FUSIONS.register("transformer")
class MulTFusion(Fusion):
    """Multimodal Transformer, MulT (Tsai et al. 2019): directional pairwise cross-modal attention.

    For each target modality and each other source modality, ``layers`` cross-modal blocks let the
    target sequence (with sinusoidal positions) query the source sequence. The streams from present
    sources are averaged (no source present: the target sequence itself), then a self-attention
    layer, masked-mean pool, and the per-modality vectors are concatenated, zero for missing
    modalities (out_dim = M * H). ``attention:<target><-<source>`` is the last cross-modal layer's
    head-averaged attention map ``[B, T_target, T_source]`` (zero where either side is invalid).
    """

    class Options(Options):
        layers: int = Field(2, ge=1)
        heads: int = Field(4, ge=1)

    def __init__(self, modalities: list[str], dim: int, dropout: float, options: Options) -> None:
        super().__init__(modalities, dim, dropout, options)
        check_heads("transformer", dim, options.heads)
        n = len(self.modalities)
        self.cross = nn.ModuleDict(
            {
                f"{t}_{s}": nn.ModuleList(CrossBlock(dim, options.heads, dropout) for _ in range(options.layers))
                for t in range(n)
                for s in range(n)
                if s != t
            }
        )
        self.self_attn = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, options.heads, 2 * dim, dropout, batch_first=True) for _ in range(n)
        )
        self.out_dim = n * dim

    def forward(self, inputs: dict[str, Encoded], present: dict[str, Tensor]) -> FusionOutput:
        p = presence(present, self.modalities)
        valids = [valid_steps(inputs[m], p[:, i]) for i, m in enumerate(self.modalities)]
        seqs = [
            zero_invalid(inputs[m].seq + sinusoid(v.shape[1], self.dim, v.device), v)
            for m, v in zip(self.modalities, valids, strict=True)
        ]
        pooled, explanations = [], {}
        for t, target in enumerate(self.modalities):
            streams, used = [], []
            for s, source in enumerate(self.modalities):
                if s == t:
                    continue
                x = seqs[t]
                for block in self.cross[f"{t}_{s}"]:
                    x, w = block(x, seqs[s], key_padding(valids[s]))
                streams.append(x)
                used.append(valids[s].any(1))
                both = valids[t].unsqueeze(2) & valids[s].unsqueeze(1)
                explanations[f"attention:{target}<-{source}"] = torch.where(both, w, 0.0)
            x = seqs[t]
            if streams:
                u = torch.stack(used).to(x.dtype)[:, :, None, None]  # [S, B, 1, 1]
                total = u.sum(0)
                x = torch.where(total > 0, (u * torch.stack(streams)).sum(0) / total.clamp(min=1), x)
            x = self.self_attn[t](x, src_key_padding_mask=key_padding(valids[t]))
            pooled.append(masked_mean(x, valids[t]))
        return FusionOutput(torch.cat(pooled, dim=1), explanations)
