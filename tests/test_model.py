"""The assembled model: every fusion behind real encoders, channel scaling, input norm, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectfusion.data.types import Collator
from affectfusion.models import FUSIONS, MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.training.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import tiny_config


def model_and_batch(fusion: str, channel_scaling: bool = False):
    cfg = tiny_config({"model.fusion": {"name": fusion, "channel_scaling": channel_scaling}})
    ds = load_dataset(cfg, "train")
    torch.manual_seed(0)
    model = MultimodalModel(ds.modalities, cfg.tasks, cfg.model)
    model.fit_input_norm(ds)
    batch = Collator(ds.modalities, {"label": "classification"})(ds.samples[:16])
    return model, batch


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_channel_scaling_works_with_every_fusion(fusion: str) -> None:
    model, batch = model_and_batch(fusion, channel_scaling=True)
    out = model(batch)
    assert out.outputs["label"].shape == (16, 3)
    out.outputs["label"].logsumexp(-1).sum().backward()
    for m, scale in model.channel_scale.items():
        assert scale.shape == (16,)
        assert scale.grad is not None and scale.grad.abs().sum() > 0, m


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_full_model_checkpoint_round_trip(fusion: str, tmp_path: Path) -> None:
    model, batch = model_and_batch(fusion)
    model.eval()
    save_checkpoint(tmp_path / "ckpt", model, {"epoch": 1})
    torch.manual_seed(123)
    fresh, _ = model_and_batch(fusion)
    torch.nn.init.normal_(next(fresh.parameters()))
    info = load_checkpoint(tmp_path / "ckpt", fresh.eval())
    assert info["epoch"] == 1
    torch.testing.assert_close(fresh(batch).outputs["label"], model(batch).outputs["label"])


def test_input_norm_is_fitted_on_train_features() -> None:
    model, _ = model_and_batch("concat")
    cfg = tiny_config()
    ds = load_dataset(cfg, "train")
    text = torch.cat([torch.from_numpy(s.features["text"]) for s in ds.samples if "text" in s.features])
    torch.testing.assert_close(model.in_mean_text, text.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.in_std_text, text.std(0, unbiased=False), atol=1e-5, rtol=1e-4)


def test_missing_modality_does_not_change_prediction() -> None:
    """A sample's prediction depends only on the modalities it has, whatever the others hold."""
    model, batch = model_and_batch("cross_attention")
    model.eval()
    present = {m: p.clone() for m, p in batch.present.items()}
    present["audio"][:] = False
    masked = batch.with_present(present)
    junk = {m: x.clone() for m, x in masked.features.items()}
    junk["audio"] = torch.randn_like(junk["audio"]) * 50
    noisy = type(masked)(masked.ids, junk, masked.padding, present, masked.targets, masked.target_mask)
    torch.testing.assert_close(model(masked).outputs["label"], model(noisy).outputs["label"])


def test_an_encoder_that_reads_the_mean_gets_the_same_embedding_from_one_averaged_step() -> None:
    """``pool: before`` declares ``reads_mean``: the model averages the raw steps before standardising
    them, which must equal the encoder run on the whole standardised sequence."""
    cfg = tiny_config({"model.encoder": {"name": "mean", "options": {"pool": "before"}}})
    ds = load_dataset(cfg, "train")
    model = MultimodalModel(ds.modalities, cfg.tasks, cfg.model)
    model.fit_input_norm(ds)
    model.eval()
    batch = Collator(ds.modalities, {"label": "classification"})(ds.samples[:16])
    encoded = model.encode(batch)
    for m, enc in model.encoders.items():
        assert enc.reads_mean
        mask = batch.padding[m] & batch.present[m][:, None]
        x = (batch.features[m] - getattr(model, f"in_mean_{m}")) / getattr(model, f"in_std_{m}")
        whole = enc(x * mask.unsqueeze(-1), mask)
        torch.testing.assert_close(encoded[m].pooled, whole.pooled, atol=1e-5, rtol=1e-4)
