"""How much each modality contributed to a prediction: Shapley values over modality subsets.

The game: the players are the model's modalities, and the value of a subset S is the model's
output with every modality outside S marked missing (presence masking, the same mechanism as
``ablate --mode mask``). This is a faithful game for this toolkit because every fusion strategy
is built to take any subset of modalities. The Shapley value of m is its average marginal
contribution over all orders in which modalities could be added; the values of one prediction
sum to f(all) - f(none) (efficiency), two interchangeable modalities get equal values
(symmetry), and a modality the model ignores gets 0.

The output explained is the probability of the class the full model predicts (classification),
each label's probability (multilabel) or the predicted value on the user's scale (regression).
Up to ``MAX_EXACT`` modalities every subset is evaluated (2^n forward passes); beyond that,
random permutations (each antithetic pair reversed) estimate the values, still summing exactly
to f(all) - f(none).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.io import write_json
from affectfusion.models.model import MultimodalModel
from affectfusion.rundir import RunPaths
from affectfusion.training.predict import make_loader

if TYPE_CHECKING:  # the tables and the chart of a run's attribution; explaining one prediction needs neither
    import pandas as pd  # the per-class table only: one prediction's attribution needs none

MAX_EXACT = 6
N_PERMUTATIONS = 64

ValueFn = Callable[[frozenset[str]], np.ndarray]


def shapley_values(
    value: ValueFn,
    players: Sequence[str],
    max_exact: int = MAX_EXACT,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Shapley value of every player for a (vector-valued) game; exact up to ``max_exact`` players."""
    players = list(players)
    cache: dict[frozenset[str], np.ndarray] = {}

    def v(s: frozenset[str]) -> np.ndarray:
        if s not in cache:
            cache[s] = np.asarray(value(s), dtype=np.float64)
        return cache[s]

    n = len(players)
    if n <= max_exact:
        phi = {p: np.zeros_like(v(frozenset())) for p in players}
        for p in players:
            others = [q for q in players if q != p]
            for k in range(n):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for s in itertools.combinations(others, k):
                    base = frozenset(s)
                    phi[p] += weight * (v(base | {p}) - v(base))
        return phi
    rng = np.random.default_rng(seed)
    phi = {p: np.zeros_like(v(frozenset())) for p in players}
    orders = []
    for _ in range(max(1, n_permutations // 2)):
        order = list(rng.permutation(players))
        orders += [order, order[::-1]]
    for order in orders:
        s: frozenset[str] = frozenset()
        for p in order:
            phi[p] += v(s | {p}) - v(s)
            s = s | {p}
    return {p: x / len(orders) for p, x in phi.items()}


@torch.no_grad()
def subset_output(
    model: MultimodalModel, batch: Batch, task: TaskConfig, subset: frozenset[str], scaler: TargetScaler | None = None
) -> np.ndarray:
    """The model's output for ``task`` with only ``subset`` present: class probabilities [B, K],
    label probabilities [B, K] or values [B] on the user's scale."""
    present = {m: p & (m in subset) for m, p in batch.present.items()}
    out = model(batch.with_present(present)).outputs[task.name]
    if task.type == "classification":
        return torch.softmax(out, -1).cpu().numpy()
    if task.type == "multilabel":
        return torch.sigmoid(out).cpu().numpy()
    scale = scaler or TargetScaler(0.0, 1.0)
    return (out * scale.std + scale.mean).cpu().numpy()


def batch_shapley(
    model: MultimodalModel,
    batch: Batch,
    task: TaskConfig,
    scaler: TargetScaler | None = None,
    target: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-sample Shapley values of each modality for one batch.

    Returns (modality -> [B] (or [B, K] multilabel) values, f(all), f(none)). For classification
    the explained output is the probability of ``target`` (default: the full model's prediction).
    """
    was_training = model.training
    model.eval()
    players = list(model.modalities)
    full = subset_output(model, batch, task, frozenset(players), scaler)
    if task.type == "classification":
        target = full.argmax(1) if target is None else np.asarray(target)
        rows = np.arange(len(target))

        def value(s: frozenset[str]) -> np.ndarray:
            return subset_output(model, batch, task, s, scaler)[rows, target]
    else:

        def value(s: frozenset[str]) -> np.ndarray:
            return subset_output(model, batch, task, s, scaler)

    phi = shapley_values(value, players, seed=seed)
    model.train(was_training)
    return phi, value(frozenset(players)), value(frozenset())


def dataset_shapley(
    model: MultimodalModel,
    dataset: MultimodalDataset,
    task: TaskConfig,
    scaler: TargetScaler | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Shapley values of every sample (explaining the full model's prediction) and that prediction
    (class index, [N, K] probabilities or value)."""
    parts: dict[str, list[np.ndarray]] = {m: [] for m in model.modalities}
    preds = []
    for batch in make_loader(dataset, model, batch_size):
        phi, full, _ = batch_shapley(model, batch, task, scaler, seed=seed)
        for m, x in phi.items():
            parts[m].append(x)
        if task.type == "classification":
            preds.append(subset_output(model, batch, task, frozenset(model.modalities)).argmax(1))
        else:
            preds.append(full)
    return {m: np.concatenate(x) for m, x in parts.items()}, np.concatenate(preds)


def attribution_by_class(phi: dict[str, np.ndarray], predicted: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Mean Shapley value of each modality per predicted class (rows: classes with predictions, plus 'all')."""
    import pandas as pd  # the per-class table only: one prediction's attribution needs none

    rows = []
    for k, c in enumerate(classes):
        keep = predicted == k
        if keep.any():
            rows.append({"class": c, "n": int(keep.sum()), **{m: float(x[keep].mean()) for m, x in phi.items()}})
    rows.append({"class": "all", "n": len(predicted), **{m: float(x.mean()) for m, x in phi.items()}})
    return pd.DataFrame(rows)


def plot_attribution(by_class: pd.DataFrame, path: Path, title: str) -> Path:
    """Grouped bars: mean Shapley value of each modality per predicted class."""
    import matplotlib.pyplot as plt  # the chart only, never when predicting

    from affectfusion.evaluation.plots import save_figure  # also selects the headless Agg backend

    mods = [c for c in by_class.columns if c not in ("class", "n")]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(by_class) * max(1, len(mods)) / 2), 3.5))
    width = 0.8 / max(1, len(mods))
    x = np.arange(len(by_class))
    for i, m in enumerate(mods):
        ax.bar(x + i * width - 0.4 + width / 2, by_class[m], width, label=m)
    ax.axhline(0, c="grey", lw=0.8)
    ax.set_xticks(x, [f"{c}\n(n = {n})" for c, n in zip(by_class["class"], by_class["n"], strict=True)], fontsize=8)
    ax.set(ylabel="mean Shapley value", title=title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_attribution(
    model: MultimodalModel,
    dataset: MultimodalDataset,
    task: TaskConfig,
    paths: RunPaths,
    split: str,
    title: str,
    seed: int = 0,
) -> dict[str, Any]:
    """Shapley values of every sample, aggregated per predicted class: the run's attribution JSON and
    bar chart for ``split`` (in its analysis folder); returns the JSON content."""
    phi, predicted = dataset_shapley(model, dataset, task, seed=seed)
    by_class = attribution_by_class(phi, predicted, task.classes or [])
    summary = {
        "split": split,
        "task": task.name,
        "modalities": list(phi),
        "exact": len(phi) <= MAX_EXACT,
        "by_class": by_class.to_dict("records"),
        "mean_abs": {m: float(np.abs(x).mean()) for m, x in phi.items()},
    }
    write_json(paths.attribution(split), summary)
    plot_attribution(by_class, paths.attribution_plot(split), title)
    return summary
