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
from tests.fixtures_backbones import tiny_speech  # noqa: F401  (fixture)

B, T, D, H = 3, 6, 5, 8


def example_input(name: str) -> str:
    """What an encoder reads in these tests: features, token ids, or a waveform (its ``example_input``)."""
    cls = ENCODERS.get(name)
    return getattr(cls, "example_input", "token_ids" if getattr(cls, "raw_input", False) else "features")


@pytest.fixture
def folder(encoder_name: str, tiny_distilbert: Path, tiny_speech) -> Path:  # noqa: F811
    """The tiny local model an encoder over a pretrained backbone loads."""
    return tiny_speech("hubert") if example_input(encoder_name) == "waveform" else tiny_distilbert


def build(name: str, in_dim: int, folder: Path) -> Encoder:
    cls = ENCODERS.get(name)
    options = dict(getattr(cls, "example_options", {}))
    if example_input(name) != "features":
        options["model_path"] = str(folder)
    torch.manual_seed(0)
    return cls(in_dim, H, 0.0, cls.Options(**options)).eval()


def inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch with a full row, a padded row and a missing row (all steps masked)."""
    g = torch.Generator().manual_seed(1)
    kind, steps = example_input(name), T
    if kind == "token_ids":
        x = torch.randint(1000, 2000, (B, T, 1), generator=g).float()
    elif kind == "waveform":
        steps = 1600  # 0.1 s at 16 kHz: a few frames of a speech model
        x = 0.1 * torch.randn(B, steps, 1, generator=g)
    else:
        x = torch.randn(B, T, D, generator=g)
    mask = torch.ones(B, steps, dtype=torch.bool)
    mask[1, steps * 2 // 3 :] = False
    mask[2] = False
    return x * mask.unsqueeze(-1), mask


@pytest.fixture(params=ENCODERS.names())
def encoder_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_shapes_and_finite_output_for_a_missing_row(encoder_name: str, folder: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], folder)
    out = enc(x, mask)
    assert out.pooled.shape == (B, H) and out.seq.shape[0] == B and out.seq.shape[-1] == H
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.seq).all()


def test_padding_does_not_change_the_pooled_embedding(encoder_name: str, folder: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], folder)
    with torch.no_grad():
        padded = enc(x[1:2], mask[1:2]).pooled
        trimmed = enc(x[1:2, : mask[1].sum()], mask[1:2, : mask[1].sum()]).pooled
    torch.testing.assert_close(padded, trimmed, atol=1e-5, rtol=1e-4)


def test_gradients_reach_trainable_parameters(encoder_name: str, folder: Path) -> None:
    x, mask = inputs(encoder_name)
    enc = build(encoder_name, x.shape[-1], folder).train()
    enc(x, mask).pooled[:2].sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_state_dict_round_trip(encoder_name: str, folder: Path) -> None:
    x, mask = inputs(encoder_name)
    a = build(encoder_name, x.shape[-1], folder)
    with torch.no_grad():
        for p in a.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    b = build(encoder_name, x.shape[-1], folder)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(a(x, mask).pooled, b(x, mask).pooled)


def test_mean_encoder_on_real_frames_equals_the_padded_one() -> None:
    """``real_frames`` skips the padding: the same outputs without dropout, and each real step still
    reaches the gradient; in training it drops about the configured share of activations."""
    cls = ENCODERS.get("mean")
    torch.manual_seed(0)
    padded = cls(D, H, 0.5, cls.Options())
    packed = cls(D, H, 0.5, cls.Options(real_frames=True))
    packed.load_state_dict(padded.state_dict())
    x = torch.randn(B, T, D)
    mask = torch.arange(T)[None, :] < torch.tensor([[6], [2], [0]])
    x = x * mask[..., None]
    a, b = padded.eval()(x, mask), packed.eval()(x, mask)
    torch.testing.assert_close(b.pooled, a.pooled)
    torch.testing.assert_close(b.seq * mask[..., None], a.seq * mask[..., None])
    x.requires_grad_(True)
    packed.train()(x, mask).pooled.sum().backward()
    assert x.grad is not None and (x.grad[mask].abs().sum(-1) > 0).float().mean() > 0.5
    big = torch.randn(4, 300, D)
    h = packed.train()(big, torch.ones(4, 300, dtype=torch.bool)).seq
    kept = packed.proj[:-1](big)
    dropped = ((h == 0) & (kept != 0)).sum() / (kept != 0).sum()
    assert 0.45 < float(dropped) < 0.55


def test_mean_encoder_pooling_before_projects_the_average_of_the_real_steps() -> None:
    """``pool: before`` is the projection of the masked mean: padding values never matter, a missing
    modality gives zeros, and every real step reaches the gradient."""
    cls = ENCODERS.get("mean")
    torch.manual_seed(0)
    enc = cls(D, H, 0.0, cls.Options(pool="before")).eval()
    x = torch.randn(B, T, D)
    mask = torch.arange(T)[None, :] < torch.tensor([[6], [2], [0]])
    out = enc(x, mask)
    mean = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    expected = enc.proj(mean) * mask.any(1, keepdim=True)
    torch.testing.assert_close(out.pooled, expected)
    assert out.seq.shape == (B, 1, H) and out.mask.tolist() == [[True], [True], [False]]
    noisy = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    torch.testing.assert_close(enc(noisy, mask).pooled, out.pooled)
    x.requires_grad_(True)
    enc.train()(x, mask).pooled.sum().backward()
    assert x.grad is not None and bool((x.grad[mask].abs().sum(-1) > 0).all())
