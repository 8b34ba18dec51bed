"""The ``cnn2d`` image encoder: augmentation only while training, mirror-averaged embeddings in eval,
images read back from flat pixels, and clear errors for features that are not an image."""

from __future__ import annotations

import pytest
import torch

from affectfusion.errors import AffectFusionError
from affectfusion.models.cnn2d import ImageCNNEncoder, random_affine

SIDE, H = 12, 8


def encoder(**options: object) -> ImageCNNEncoder:
    torch.manual_seed(0)
    return ImageCNNEncoder(SIDE * SIDE, H, 0.0, ImageCNNEncoder.Options(channels=[4, 8], **options))


def images(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 1, SIDE * SIDE, generator=torch.Generator().manual_seed(1))
    return x, torch.ones(n, 1, dtype=torch.bool)


def mirrored(x: torch.Tensor) -> torch.Tensor:
    return x.view(-1, 1, SIDE, SIDE).flip(-1).reshape(x.shape)


def test_eval_is_deterministic_and_training_augments() -> None:
    enc, (x, mask) = encoder(), images()
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x, mask).pooled, enc(x, mask).pooled)
    plain = encoder(augment=False)
    plain.load_state_dict(enc.state_dict())
    enc.train(), plain.train()
    torch.manual_seed(3)
    a = enc(x, mask).pooled
    torch.manual_seed(4)
    b = enc(x, mask).pooled
    assert not torch.allclose(a, b), "two training passes see two random versions of the images"
    torch.manual_seed(3)
    c = plain(x, mask).pooled
    torch.manual_seed(4)
    torch.testing.assert_close(c, plain(x, mask).pooled, msg="augment: false leaves training images as they are")


def test_flip_tta_makes_the_embedding_mirror_symmetric() -> None:
    x, mask = images()
    enc = encoder().eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x, mask).pooled, enc(mirrored(x), mask).pooled, atol=1e-5, rtol=1e-4)
        single = encoder(tta_flip=False).eval()
        assert not torch.allclose(single(x, mask).pooled, single(mirrored(x), mask).pooled, atol=1e-4)


def test_identity_affine_keeps_the_image_and_a_forced_flip_mirrors_it(monkeypatch: pytest.MonkeyPatch) -> None:
    img = torch.rand(3, 1, SIDE, SIDE)
    torch.testing.assert_close(random_affine(img, 0.0, 0.0, 0.0, flip=False), img, atol=1e-5, rtol=1e-5)
    # uniform draws of 0: every image is mirrored (its draw is below 0.5); shift, zoom and rotation are 0 anyway
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.zeros(*shape))
    flipped = random_affine(img, 0.0, 0.0, 0.0, flip=True)
    torch.testing.assert_close(flipped, img.flip(-1), atol=1e-5, rtol=1e-5)


def test_missing_rows_and_frames_give_zero_embeddings_and_gradients_flow() -> None:
    x = torch.randn(3, 2, SIDE * SIDE)
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    enc = encoder().train()
    out = enc(x * mask[..., None], mask)
    assert out.pooled.shape == (3, H) and out.seq.shape == (3, 2, H)
    assert torch.all(out.pooled[2] == 0) and torch.all(out.seq[1, 1] == 0)
    out.pooled[:2].sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    with torch.no_grad():
        none = enc.eval()(torch.zeros(2, 1, SIDE * SIDE), torch.zeros(2, 1, dtype=torch.bool))
    assert torch.all(none.pooled == 0)


def test_bf16_autocast_and_channels_last_match_fp32() -> None:
    x, mask = images(8)
    a, b = encoder().eval(), encoder(channels_last=False).eval()
    with torch.no_grad():
        ref = b(x, mask).pooled
        torch.testing.assert_close(a(x, mask).pooled, ref, atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = a(x, mask).pooled.float()
    assert torch.allclose(low, ref, atol=0.1 * ref.abs().max().item() + 1e-3)


def test_features_that_are_not_an_image_are_refused() -> None:
    with pytest.raises(AffectFusionError, match=r"cnn2d encoder: features of size 50 .*height"):
        ImageCNNEncoder(50, H, 0.0, ImageCNNEncoder.Options())
    with pytest.raises(AffectFusionError, match="height 7"):
        ImageCNNEncoder(50, H, 0.0, ImageCNNEncoder.Options(height=7))
    rect = ImageCNNEncoder(50, H, 0.0, ImageCNNEncoder.Options(height=5, channels=[4]))
    assert (rect.height, rect.width) == (5, 10)
