"""Acceptance tests: fusing modalities pays off where it must, and learned weights shun pure noise.

1. On a synthetic ``xor`` task each modality alone is at chance and only the combination carries
   the label, so every fusion strategy must clearly beat the best single-modality model.
2. On an ``additive`` task with one pure-noise modality, the learned modality weights of
   ``weighted`` (and of ``cross_attention`` with ``combine: weighted``) must be lowest for it and
   well below uniform.

Parametrised over ``FUSIONS.names()``, so a strategy registered later is covered automatically.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from affectfusion.config import RunConfig
from affectfusion.models.base import FUSIONS
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config

# train.seed. The settings below were checked with train.seed 0-15 (xor) and 0-11 (noise weights);
# the comments quote what those runs showed.
SEED = 0

# -- 1. xor: only the fused signal separates the classes -------------------------------------

XOR_CLASSES = 2
CHANCE = 1.0 / XOR_CLASSES
MARGIN = 0.15  # fused accuracy must beat the best single modality by at least this much
NEAR_CHANCE = 0.1  # a single modality must stay within this of chance
# One vector and one short-sequence modality, so sequence handling (padding, masks) is exercised.
XOR_MODALITIES = {"a": {"dim": 8}, "b": {"dim": 6, "seq_len": 4}}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These models are tiny: intra-op threads only add synchronisation (several times slower on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def xor_config(fusion: str, modalities: list[str] | None = None) -> RunConfig:
    overrides: dict[str, Any] = {
        "name": f"xor_{fusion}",
        "data.options": {
            "modalities": XOR_MODALITIES,
            "interaction": "xor",
            "num_classes": XOR_CLASSES,
            "noise": 0.5,  # each latent is recovered ~95 % of the time: ~0.91 is the best possible accuracy
            "n_train": 400,
            "n_eval": 400,
        },
        "tasks": [{"name": "label", "type": "classification", "classes": [f"c{i}" for i in range(XOR_CLASSES)]}],
        "model.fusion.name": fusion,
        "model.hidden_dim": 16,
        # The head is the only nonlinearity after the strategies that sum modality embeddings
        # (weighted, cross_attention, gated). With a narrow head (32-64), `weighted`'s
        # sample-dependent softmax sometimes (~1 seed in 16) locked onto one modality and stalled
        # near 0.7; at 128 no train seed did. Same width for every strategy.
        "model.head_hidden": 128,
        "model.dropout": 0.0,
        "train.epochs": 20,
        "train.lr": 0.005,  # 0.01 sometimes collapsed `transformer` (post-norm attention) to chance
        "train.seed": SEED,
        "train.early_stopping": None,
    }
    if modalities is not None:
        overrides["model.modalities"] = modalities
    return tiny_config(overrides)


@pytest.fixture(scope="module")
def unimodal_accuracy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Test accuracy of a model trained on each modality alone (trained once for the module)."""
    root = tmp_path_factory.mktemp("xor_unimodal")
    return {m: Trainer(xor_config("concat", [m]), root / m).fit()["test"]["accuracy"] for m in XOR_MODALITIES}


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_fusion_beats_best_single_modality_on_xor(
    fusion: str, unimodal_accuracy: dict[str, float], tmp_path: Path
) -> None:
    for m, acc in unimodal_accuracy.items():
        assert abs(acc - CHANCE) < NEAR_CHANCE, f"modality {m} alone should be at chance on xor, got {acc:.3f}"
    best_single = max(unimodal_accuracy.values())
    fused = Trainer(xor_config(fusion), tmp_path / "run").fit()["test"]["accuracy"]
    assert fused > best_single + MARGIN, (
        f"{fusion}: fused accuracy {fused:.3f} does not beat the best single modality "
        f"({best_single:.3f}) by {MARGIN}; per modality: {unimodal_accuracy}"
    )


# -- 2. a pure-noise modality gets a low learned weight --------------------------------------

NOISE_MODALITIES = {
    "text": {"dim": 8, "informativeness": 1.0},
    "audio": {"dim": 6, "seq_len": 4, "informativeness": 1.0},
    "noise": {"dim": 8, "informativeness": 0.0},
}
# variant -> (strategy, options, bound on the noise modality's mean weight as a fraction of uniform 1/M).
WEIGHTING = {
    # Weights over the raw modality embeddings: the noise embedding carries nothing, so it should be
    # all but switched off (observed 0.005-0.12 over 12 seeds, vs a bound of 0.167).
    "weighted": ("weighted", {}, 0.5),
    # Weights over the streams *after* cross-modal attention: the noise stream has attended to the
    # informative modalities and carries some of their signal, so it is not pure noise any more and
    # is only partly discounted (observed 0.03-0.26 over 12 seeds; above half of uniform in 3 of 12).
    # Deliberately a weaker bound for this variant: lowest weight and below uniform (0.333).
    "cross_attention[combine=weighted]": ("cross_attention", {"combine": "weighted"}, 1.0),
}


def noise_config(fusion: str, options: dict[str, Any]) -> RunConfig:
    return tiny_config(
        {
            "name": "noise_weight",
            "data.options": {
                "modalities": NOISE_MODALITIES,
                "interaction": "additive",
                "num_classes": 3,
                "n_train": 400,
                "n_eval": 200,
            },
            "model.fusion.name": fusion,
            "model.fusion.options": options,
            "model.hidden_dim": 16,
            "model.head_hidden": 32,
            "train.epochs": 15,
            "train.lr": 0.005,
            "train.seed": SEED,
            "train.early_stopping": None,
        }
    )


@pytest.mark.parametrize("variant", list(WEIGHTING))
def test_pure_noise_modality_gets_lowest_weight(variant: str, tmp_path: Path) -> None:
    fusion, options, bound = WEIGHTING[variant]
    results = Trainer(noise_config(fusion, options), tmp_path / "run").fit()
    run = read_run(tmp_path / "run")
    model = load_model(run)
    preds = predict(model, load_dataset(run.config, "test", modalities=run.modalities), run.scalers)
    weights = preds.explanations["modality_weights"]  # [N, M] in model.modalities order
    names = list(model.modalities)
    assert weights.shape == (len(preds.ids), len(names))
    mean = dict(zip(names, weights.mean(0).tolist(), strict=True))
    assert results["test"]["accuracy"] > 0.6, f"{variant} did not learn the task: {results['test']}"
    assert min(mean, key=mean.get) == "noise", f"{variant}: noise is not the lowest-weighted modality: {mean}"
    uniform = 1.0 / len(names)
    assert mean["noise"] < bound * uniform, (
        f"{variant}: noise weight {mean['noise']:.3f} is not below {bound} x uniform ({bound * uniform:.3f}): {mean}"
    )
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
