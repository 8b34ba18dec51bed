"""Every registered encoder meets the same contract (timm-style: a new encoder is tested by registering it).

Shapes, finite output for a missing modality (no valid step), padding invariance, gradients, and a
state-dict round trip. Encoders that read token ids (``raw_input``) get ids and a tiny local model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectfusion.models import ENCODERS
from affectfusion.models.base import Encoder

B, T, D, H = 3, 6, 5, 8


def build(name: str, in_dim: int, folder: Path) -> Encoder:
    cls = ENCODERS.get(name)
    options = {"model_path": str(folder)} if getattr(cls, "raw_input", False) else {}
    torch.manual_seed(0)
    return cls(in_dim, H, 0.0, cls.Options(**options)).eval()


def inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch with a full row, a padded row and a missing row (all steps masked)."""
    g = torch.Generator().manual_seed(1)
    if getattr(ENCODERS.get(name), "raw_input", False):
        x = torch.randint(1000, 2000, (B, T, 1), generator=g).float()
    else:
        x = torch.randn(B, T, D, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2] = False
    return x * mask.unsqueeze(-1), mask


@pytest.fixture(params=ENCODERS.names())
def encoder_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_shapes_and_finite_output_for_a_missing_row(encoder_name: str, tiny_distilbert: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], tiny_distilbert)
    out = enc(x, mask)
    assert out.pooled.shape == (B, H) and out.seq.shape[0] == B and out.seq.shape[-1] == H
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.seq).all()


def test_padding_does_not_change_the_pooled_embedding(encoder_name: str, tiny_distilbert: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], tiny_distilbert)
    with torch.no_grad():
        padded = enc(x[1:2], mask[1:2]).pooled
        trimmed = enc(x[1:2, :4], mask[1:2, :4]).pooled
    torch.testing.assert_close(padded, trimmed, atol=1e-5, rtol=1e-4)


def test_gradients_reach_trainable_parameters(encoder_name: str, tiny_distilbert: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], tiny_distilbert).train()
    enc(x, mask).pooled[:2].sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_state_dict_round_trip(encoder_name: str, tiny_distilbert: Path) -> None:
    x, mask = inputs(encoder_name)
    a = build(encoder_name, x.shape[-1], tiny_distilbert)
    with torch.no_grad():
        for p in a.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    b = build(encoder_name, x.shape[-1], tiny_distilbert)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(a(x, mask).pooled, b(x, mask).pooled)
