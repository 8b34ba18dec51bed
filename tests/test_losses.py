"""Regression losses: a contract every registered loss keeps, and what CCC adds over MSE.

Every loss is called on z-scored predictions and targets (``MultiTaskLoss``); the contract asks for a
finite scalar, ~0 at a perfect prediction, more for a worse one, and finite gradients. CCC's own tests
pin down why it is there: unlike Pearson r it punishes a prediction shrunk towards the mean.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch
from affectfusion.evaluation.metrics import regression_metrics
from affectfusion.models.model import ModelOutput
from affectfusion.training.losses import REGRESSION_LOSSES, MultiTaskLoss, ccc_loss


def targets(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def configurable_regression_losses() -> set[str]:
    """The names ``tasks[].loss`` accepts for a regression task."""
    literal = next(a for a in get_args(TaskConfig.model_fields["loss"].annotation) if a is not type(None))
    return {name for name in get_args(literal) if name not in ("ce", "bce")}


def test_every_registered_regression_loss_is_configurable_and_back() -> None:
    assert configurable_regression_losses() == set(REGRESSION_LOSSES.names())
    for name in REGRESSION_LOSSES.names():
        assert TaskConfig.model_validate({"name": "valence", "type": "regression", "loss": name}).loss_name == name


@pytest.mark.parametrize("name", REGRESSION_LOSSES.names())
def test_regression_loss_contract(name: str) -> None:
    loss_fn = REGRESSION_LOSSES.get(name)
    t = targets()
    perfect = loss_fn(t.clone(), t)
    assert perfect.ndim == 0 and abs(float(perfect)) < 1e-3
    noise = targets(seed=1)
    close, far = loss_fn(t + 0.3 * noise, t), loss_fn(t + 1.5 * noise, t)
    assert 1e-3 < float(close) < float(far)
    pred = (t + 0.5 * noise).float().requires_grad_(True)
    value = loss_fn(pred, t.float())
    value.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # one labelled sample in a batch (the last batch, or a rarely labelled task) stays finite
    single = torch.tensor([0.5], requires_grad=True)
    lone = loss_fn(single, torch.tensor([0.1]))
    lone.backward()
    assert torch.isfinite(lone) and single.grad is not None and torch.isfinite(single.grad).all()


def test_unknown_regression_loss_is_a_config_error_naming_the_task() -> None:
    with pytest.raises(ValidationError, match="valence"):
        TaskConfig(name="valence", type="regression", loss="ce")
    with pytest.raises(ValidationError, match="loss"):
        TaskConfig.model_validate({"name": "valence", "type": "regression", "loss": "huber"})


def test_ccc_gradient_matches_finite_differences() -> None:
    t = targets(16)
    pred = (0.5 * t + 0.3 * targets(16, seed=2)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: ccc_loss(p, t), (pred,))


def test_ccc_punishes_scale_and_shift_that_pearson_ignores() -> None:
    t = targets()
    t = t - t.mean()  # a mean-zero target, so that shrinking it moves only its spread
    var = float(t.var(unbiased=False))
    # Pearson r of a shrunk or shifted copy is 1; CCC's loss is 1 - 2ab var / ((a^2 + 1) var + b^2 (shift))
    assert float(ccc_loss(0.5 * t, t)) == pytest.approx(1 - 2 * 0.5 * var / (1.25 * var), abs=1e-4)
    assert float(ccc_loss(t + 1.0, t)) == pytest.approx(1 - 2 * var / (2 * var + 1.0), abs=1e-4)
    assert float(ccc_loss(0.5 * t, t)) > float(ccc_loss(0.9 * t, t)) > float(ccc_loss(t, t))
    # predicting the mean, what MSE drifts to on clustered labels, is CCC's worst non-anticorrelated case
    assert float(ccc_loss(torch.zeros_like(t) + t.mean(), t)) == pytest.approx(1.0, abs=1e-4)
    # the loss is scale-free: the same relation on targets in 1-5 units costs the same
    assert float(ccc_loss(3 + 0.3 * t, 3 + 0.6 * t)) == pytest.approx(float(ccc_loss(0.5 * t, t)), abs=1e-4)


def test_ccc_loss_is_one_minus_the_reported_ccc_metric() -> None:
    t, p = targets(200), 0.7 * targets(200) + 0.4 * targets(200, seed=3) + 0.2
    reported = regression_metrics(t.numpy(), p.numpy())["ccc"]
    assert float(ccc_loss(p, t)) == pytest.approx(1 - reported, abs=1e-4)
    assert np.isfinite(reported)


def test_multitask_loss_applies_each_tasks_loss_to_its_z_scored_labelled_samples() -> None:
    tasks = [TaskConfig(name="valence", type="regression", loss="ccc"), TaskConfig(name="arousal", type="regression")]
    scalers = {"valence": TargetScaler(3.0, 0.35), "arousal": TargetScaler(3.0, 0.25)}
    y = 3.0 + 0.3 * targets(8).float()
    pred = targets(8, seed=4).float()
    keep = torch.tensor([True] * 6 + [False] * 2)
    batch = Batch(
        ids=[f"s{i}" for i in range(8)],
        features={},
        padding={},
        present={},
        targets={"valence": y, "arousal": y},
        target_mask={"valence": keep, "arousal": torch.ones(8, dtype=torch.bool)},
    )
    out = ModelOutput(outputs={"valence": pred, "arousal": pred}, embeddings={}, fused=torch.zeros(8, 4))
    total, parts = MultiTaskLoss(tasks, {}, scalers)(out, batch)
    expected_v = ccc_loss(pred[keep], (y[keep] - 3.0) / 0.35)
    expected_a = torch.nn.functional.mse_loss(pred, (y - 3.0) / 0.25)
    assert parts["valence"] == pytest.approx(float(expected_v), abs=1e-5)
    assert parts["arousal"] == pytest.approx(float(expected_a), abs=1e-5)
    assert float(total) == pytest.approx(float(expected_v + expected_a), abs=1e-5)


def test_label_smoothing_reaches_the_classification_loss_and_only_classification_takes_it() -> None:
    """A confident correct prediction costs more with smoothing (the target keeps mass on other classes)."""
    logits = torch.tensor([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    labels = torch.tensor([0, 1])
    batch = Batch(["a", "b"], {}, {}, {}, {"emotion": labels}, {"emotion": torch.ones(2, dtype=torch.bool)})
    out = ModelOutput(outputs={"emotion": logits}, embeddings={}, fused=torch.zeros(2, 4))

    def loss(smoothing: float) -> float:
        task = TaskConfig(name="emotion", type="classification", classes=["a", "b", "c"], label_smoothing=smoothing)
        return MultiTaskLoss([task], {}, {})(out, batch)[1]["emotion"]

    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert loss(0.1) == pytest.approx(float(expected), abs=1e-6)
    assert loss(0.1) > loss(0.0)
    with pytest.raises(ValidationError, match="label_smoothing is for classification"):
        TaskConfig(name="valence", type="regression", label_smoothing=0.1)
