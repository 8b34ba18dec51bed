"""A fusion run's network as a module of plain tensors in and out: what the ONNX exporter traces.

The graph takes, per modality ``m``, its features ``m`` ``[batch, steps, dim]`` and their step mask
``m_mask`` ``[batch, steps]`` (True = real step), plus ``present`` ``[batch, modalities]`` (True =
the sample has that modality, columns in the run's modality order). It rebuilds exactly the batch
the Predictor's collator makes - missing modalities and padded steps zeroed - so any subset of
modalities is one ``present`` row away, and whatever values a caller leaves in a missing
modality's slot cannot reach the output. Input standardisation is part of the model (its
``in_mean``/``in_std`` buffers), the regression target scale is folded in here, and a calibrated
run gets a second, temperature-scaled output per classification task.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch
from affectfusion.evaluation.calibration import PROB_FLOOR
from affectfusion.models.model import MultimodalModel
from affectfusion.rundir import LoadedRun

PRESENT = "present"

# Strategies, encoders and context stages whose graph ONNX cannot express, with the reason (docs/export.md).
UNSUPPORTED_FUSIONS: dict[str, str] = {}
UNSUPPORTED_ENCODERS: dict[str, str] = {
    "bilstm": "packs variable-length sequences (pack_padded_sequence), "
    "which torch.onnx cannot trace with symbolic sizes",
    "hf_lora": "fine-tunes a Hugging Face backbone on token ids; the export covers networks over extracted features",
}
CONTEXT_REASON = (
    "its context stage ({name}) reads whole conversation windows that the Predictor builds per request; "
    "the graph scores single utterances (export a run with model.context.name: none)"
)


def mask_name(modality: str) -> str:
    return f"{modality}_mask"


def input_names(modalities: list[str]) -> list[str]:
    """Graph inputs in order: each modality's features and mask, then ``present``."""
    return [n for m in modalities for n in (m, mask_name(m))] + [PRESENT]


def output_names(run: LoadedRun, temperatures: dict[str, float]) -> list[str]:
    """Graph outputs in order: per task its probabilities (and calibrated ones) or its value."""
    names = []
    for t in run.config.tasks:
        if t.type == "regression":
            names.append(f"{t.name}_value")
        else:
            names.append(f"{t.name}_probabilities")
            if t.type == "classification" and t.name in temperatures:
                names.append(f"{t.name}_calibrated_probabilities")
    return names


def refusal(run: LoadedRun) -> str | None:
    """Why ONNX cannot express this run's network, or None when it can."""
    model = run.config.model
    reasons = []
    if model.fusion.name in UNSUPPORTED_FUSIONS:
        reasons.append(f"fusion {model.fusion.name!r} {UNSUPPORTED_FUSIONS[model.fusion.name]}")
    for m in run.modalities:
        encoder = model.encoder_for(m).name
        if encoder in UNSUPPORTED_ENCODERS:
            reasons.append(f"encoder {encoder!r} of modality {m!r} {UNSUPPORTED_ENCODERS[encoder]}")
    if model.context.name != "none":
        reasons.append(CONTEXT_REASON.format(name=model.context.name))
    return "; ".join(reasons) or None


def dim_name(prefix: str) -> str:
    """A modality name as a symbolic dimension name (a Python identifier)."""
    return re.sub(r"\W", "_", prefix)


class ExportGraph(nn.Module):
    """``(m1, m1_mask, m2, m2_mask, ..., present) -> outputs`` with the Predictor's numbers."""

    def __init__(
        self, model: MultimodalModel, scalers: dict[str, TargetScaler], temperatures: dict[str, float]
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.modalities = list(model.modalities)
        self.scalers = scalers
        self.temperatures = temperatures

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        present = inputs[-1]
        features, padding, presence = {}, {}, {}
        for i, m in enumerate(self.modalities):
            x, mask = inputs[2 * i], inputs[2 * i + 1]
            keep = mask & present[:, i, None]
            features[m] = torch.where(keep.unsqueeze(-1), x, 0.0)  # what the collator gives a missing modality
            padding[m], presence[m] = keep, present[:, i]
        out = self.model(Batch([], features, padding, presence, {}, {}))
        results = []
        for t in self.model.tasks:
            z = out.outputs[t.name]
            if t.type == "regression":
                sc = self.scalers[t.name]
                results.append(z * sc.std + sc.mean)
            elif t.type == "multilabel":
                results.append(torch.sigmoid(z))
            else:
                p = torch.softmax(z, -1)
                results.append(p)
                if t.name in self.temperatures:  # evaluation.calibration.apply_temperature, in the graph
                    results.append(torch.softmax(torch.log(p.clamp(min=PROB_FLOOR)) / self.temperatures[t.name], -1))
        return tuple(results)

    def example_inputs(self, specs: dict[str, tuple[int, bool]]) -> tuple[Tensor, ...]:
        """A batch of 2 (sequences of 2 steps): sizes above 1, so the exporter keeps them symbolic."""
        args: list[Tensor] = []
        for m in self.modalities:
            dim, sequence = specs[m]
            steps = 2 if sequence else 1
            args += [torch.zeros(2, steps, dim), torch.ones(2, steps, dtype=torch.bool)]
        return (*args, torch.ones(2, len(self.modalities), dtype=torch.bool))

    def dynamic_shapes(self, specs: dict[str, tuple[int, bool]]) -> tuple[tuple[dict[int, object], ...]]:
        """Batch size dynamic everywhere, steps dynamic for sequence modalities (fixed 1 for vectors)."""
        batch = torch.export.Dim("batch", min=1)
        shapes: list[dict[int, object]] = []
        for m in self.modalities:
            if specs[m][1]:
                steps = torch.export.Dim(f"{dim_name(m)}_steps", min=1)
                shapes += [{0: batch, 1: steps}, {0: batch, 1: steps}]
            else:
                shapes += [{0: batch}, {0: batch}]
        return ((*shapes, {0: batch}),)
