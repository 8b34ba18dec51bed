"""The LoRA-tuned text encoder: local loading (tiny random DistilBERT), adapters-only checkpoints, learning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from affectfusion.config import validate
from affectfusion.errors import AffectFusionError
from affectfusion.extract import build_extractor
from affectfusion.rundir import read_run
from affectfusion.serve import Predictor
from affectfusion.training.loading import load_model
from affectfusion.training.trainer import Trainer
from tests.fixtures_media import make_media_table, media_config


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def lora_config(root: Path, cache: Path, model_path: str | None, **encoder: Any) -> dict[str, Any]:
    raw = media_config(root, cache)
    tokens = {"name": "hf_tokens", "options": {"model_path": model_path} if model_path else {}}
    raw["data"]["extract"] = {"text": tokens}
    raw["data"]["options"]["inputs"] = {"text": "text"}
    options = {"model_path": model_path, **encoder} if model_path else encoder
    raw["model"]["encoders"] = {"text": {"name": "hf_lora", "options": options}}
    raw["train"].update({"lr": 0.003, "epochs": 2})
    return raw


def test_tokens_extractor_gives_integer_ids(tiny_distilbert: Path) -> None:
    ex = build_extractor("hf_tokens", {"model_path": str(tiny_distilbert), "max_length": 8}, "test")
    short, long_, empty = ex.extract_batch(["I am happy", "word " * 50, "  "])
    assert short.shape[1] == 1 and short.shape[0] == 5  # [CLS] i am happy [SEP]
    assert np.array_equal(short, np.round(short))
    assert long_.shape == (8, 1)
    assert "empty text" in str(empty)


def test_only_adapters_and_projection_are_trained_and_saved(tiny_distilbert: Path, tmp_path: Path) -> None:
    root = make_media_table(tmp_path / "data")
    cfg = validate(lora_config(root, tmp_path / "cache", str(tiny_distilbert), r=4, alpha=8))
    run_dir = tmp_path / "run"
    Trainer(cfg, run_dir).fit()
    with safe_open(str(run_dir / "checkpoints" / "best.safetensors"), "pt") as f:
        text_keys = [k for k in f.keys() if k.startswith("encoders.text.")]  # noqa: SIM118
        lora_a = f.get_tensor(next(k for k in text_keys if "q_lin.lora_A" in k))
    assert text_keys and all(".lora_" in k or k.startswith("encoders.text.proj.") for k in text_keys)
    assert lora_a.shape[0] == 4  # rank from the config
    meta = read_run(run_dir).meta
    assert meta["n_trainable_parameters"] < meta["n_parameters"] / 5

    model = load_model(read_run(run_dir))
    encoder = model.encoders["text"]
    fresh = type(encoder)(1, cfg.model.hidden_dim, 0.0, type(encoder).Options(model_path=str(tiny_distilbert)))
    base_now = dict(encoder.base.named_parameters())
    for name, p in fresh.base.named_parameters():
        if ".lora_" not in name:
            assert torch.equal(p, base_now[name]), f"frozen weight {name} changed"
    trained_b = next(p for n, p in encoder.base.named_parameters() if "lora_B" in n)
    assert trained_b.abs().sum() > 0  # LoRA B starts at zero: non-zero means the adapters trained and reloaded


def test_reloaded_run_predicts_like_the_trained_model(tiny_distilbert: Path, tmp_path: Path) -> None:
    root = make_media_table(tmp_path / "data")
    cfg = validate(lora_config(root, tmp_path / "cache", str(tiny_distilbert)))
    Trainer(cfg, tmp_path / "run").fit()
    a = Predictor.load(tmp_path / "run").predict_one({"text": "I feel wonderful"})
    b = Predictor.load(tmp_path / "run").predict_one({"text": "I feel wonderful"})
    assert a.error is None and a.tasks == b.tasks


def test_lora_on_minilm_learns_the_task(tmp_path: Path) -> None:
    """The default (all-MiniLM-L6-v2 from its package) fits an easy lexical task within 4 epochs."""
    root = make_media_table(tmp_path / "data")
    raw = lora_config(root, tmp_path / "cache", None)
    raw["train"]["epochs"] = 4
    result = Trainer(validate(raw), tmp_path / "run").fit()
    assert result["dev"]["macro_f1"] >= 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data.extract.text": {"name": "minilm"}}, "go together"),
        ({"data.extract.text.options.model_path": "/elsewhere"}, "differs from the hf_tokens"),
    ],
)
def test_encoder_and_tokenizer_must_match(tiny_distilbert: Path, tmp_path: Path, change: dict, message: str) -> None:
    from affectfusion.config import apply_overrides

    raw = apply_overrides(lora_config(tmp_path, tmp_path / "cache", str(tiny_distilbert)), change)
    with pytest.raises(AffectFusionError, match=message):
        validate(raw)


def test_bad_model_folder_and_targets_are_clear_errors(tiny_distilbert: Path, tmp_path: Path) -> None:
    from affectfusion.models.hf_text import HFLoRAEncoder

    with pytest.raises(AffectFusionError, match="not a folder"):
        HFLoRAEncoder(1, 8, 0.0, HFLoRAEncoder.Options(model_path=str(tmp_path / "missing")))
    with pytest.raises(AffectFusionError, match="cannot add LoRA adapters"):
        HFLoRAEncoder(1, 8, 0.0, HFLoRAEncoder.Options(model_path=str(tiny_distilbert), target_modules=["nope"]))
    with pytest.raises(AffectFusionError, match="token ids"):
        HFLoRAEncoder(384, 8, 0.0, HFLoRAEncoder.Options(model_path=str(tiny_distilbert)))
