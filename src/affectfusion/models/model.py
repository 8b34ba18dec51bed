"""The one model: per-modality encoders -> optional channel scaling -> fusion -> one head per task."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from affectfusion.config import ModelConfig, TaskConfig
from affectfusion.data.moments import features_of, frame_moments
from affectfusion.data.types import Batch, ModalitySpec, MultimodalDataset
from affectfusion.models.base import ENCODERS, FUSIONS, Encoded, masked_mean
from affectfusion.models.context import CONTEXTS, Streams
from affectfusion.registry import validate_options


@dataclass
class ModelOutput:
    outputs: dict[str, Tensor]  # task -> logits [B, K] (softmax or per-class sigmoid) or standardised value [B]
    embeddings: dict[str, Tensor]  # modality -> pooled embedding [B, H] (after channel scaling)
    fused: Tensor  # [B, F] what the heads read: the fused utterance after the context stage
    explanations: dict[str, Tensor] = field(default_factory=dict)


def task_output_size(task: TaskConfig) -> int:
    """K logits for a classification or multilabel task, one value for regression."""
    return 1 if task.type == "regression" else len(task.classes or [])


class Head(nn.Module):
    """MLP head (P1: fused -> 512 -> 1); ``hidden = 0`` gives a linear head."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
            )
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MultimodalModel(nn.Module):
    """Encoders over a dict of modalities, a fusion strategy and task heads, all chosen by config."""

    def __init__(self, modalities: dict[str, ModalitySpec], tasks: list[TaskConfig], cfg: ModelConfig) -> None:
        super().__init__()
        self.modalities = dict(modalities)
        self.tasks = list(tasks)
        h = cfg.hidden_dim
        self.encoders = nn.ModuleDict()
        for m, spec in self.modalities.items():
            enc_cfg = cfg.encoder_for(m)
            cls = ENCODERS.get(enc_cfg.name)
            where = f"model.encoders.{m}.options" if m in cfg.encoders else "model.encoder.options"
            self.encoders[m] = cls(spec.dim, h, cfg.dropout, validate_options(cls, enc_cfg.options, where))
            # Input standardisation, fitted on the training split (fit_input_norm), saved with weights.
            self.register_buffer(f"in_mean_{m}", torch.zeros(spec.dim))
            self.register_buffer(f"in_std_{m}", torch.ones(spec.dim))
        self.channel_scale = (
            nn.ParameterDict({m: nn.Parameter(torch.ones(h)) for m in self.modalities})
            if cfg.fusion.channel_scaling
            else None
        )
        fcls = FUSIONS.get(cfg.fusion.name)
        self.fusion = fcls(
            list(self.modalities),
            h,
            cfg.dropout,
            validate_options(fcls, cfg.fusion.options, "model.fusion.options"),
        )
        ccfg = cfg.context
        ccls = CONTEXTS.get(ccfg.name)
        self.context = ccls(
            self.fusion.out_dim,
            cfg.dropout,
            ccfg.speakers,
            validate_options(ccls, ccfg.options, "model.context.options"),
            {m: h for m in self.modalities},
        )
        self.heads = nn.ModuleDict(
            {t.name: Head(self.context.out_dim, cfg.head_hidden, task_output_size(t), cfg.dropout) for t in tasks}
        )
        # Per-class decision thresholds of each multilabel task. Not weights (so not in checkpoints):
        # the config's until ``load_model`` applies the ones tuned on the validation split.
        self.thresholds: dict[str, np.ndarray] = {
            t.name: np.full(len(t.classes or []), t.threshold) for t in tasks if t.type == "multilabel"
        }

    @torch.no_grad()
    def fit_input_norm(self, dataset: MultimodalDataset) -> None:
        """Per-feature mean/std over every real time step of the training split (not for token ids),
        streamed over the samples in float64, so a split larger than memory can be standardised."""
        for m in self.modalities:
            moments = None if self.raw_input(m) else frame_moments(features_of(dataset.samples, m))
            if moments is None:
                continue
            mean, std = (torch.from_numpy(v) for v in moments)
            getattr(self, f"in_mean_{m}").copy_(mean.float())
            getattr(self, f"in_std_{m}").copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())

    def raw_input(self, modality: str) -> bool:
        """Whether the modality's encoder reads its features unstandardised (token ids)."""
        return getattr(self.encoders[modality], "raw_input", False)

    def encode(self, batch: Batch) -> dict[str, Encoded]:
        out = {}
        for m, enc in self.encoders.items():
            mask = batch.padding[m] & batch.present[m][:, None]
            features = batch.features[m]
            if getattr(enc, "reads_mean", False):
                features, mask = masked_mean(features, mask).unsqueeze(1), mask.any(1, keepdim=True)
            # Standardised ((x - mean) / std as one multiply-add) and its padding zeroed, in one new tensor.
            scale = 1.0 / getattr(self, f"in_std_{m}")
            x = torch.addcmul(-getattr(self, f"in_mean_{m}") * scale, features, scale)
            x = x.mul_(mask.unsqueeze(-1).to(x.dtype))
            e = enc(x, mask)
            if self.channel_scale is not None:
                scale = self.channel_scale[m]
                e = Encoded(seq=e.seq * scale, mask=e.mask, pooled=e.pooled * scale)
            out[m] = e
        return out

    def forward(self, batch: Batch) -> ModelOutput:
        encoded = self.encode(batch)
        fused = self.fusion(encoded, batch.present)
        streams = Streams({m: e.pooled for m, e in encoded.items()}, batch.present)
        utterances = self.context(fused.fused, batch.conversation, streams)
        outputs = {}
        for t in self.tasks:
            y = self.heads[t.name](utterances)
            outputs[t.name] = y.squeeze(-1) if t.type == "regression" else y
        embeddings = {m: e.pooled for m, e in encoded.items()}
        return ModelOutput(outputs, embeddings, utterances, fused.explanations)

    def n_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
