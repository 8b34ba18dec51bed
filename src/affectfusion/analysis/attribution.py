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
random permutations (each antithetic pair reversed) estimate the values, with their standard
error, still summing exactly to f(all) - f(none). A :class:`ShapleyBudget` bounds the time one
explanation may take (the server's): it times one forward pass of the batch, then picks exact,
sampled with as many permutations as fit, or refuses.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from affectfusion.config import TaskConfig
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.io import write_json
from affectfusion.models.model import MultimodalModel
from affectfusion.rundir import RunPaths
from affectfusion.training.predict import make_loader

if TYPE_CHECKING:  # the tables and the chart of a run's attribution; explaining one prediction needs neither
    import pandas as pd  # the per-class table only: one prediction's attribution needs none

MAX_EXACT = 8  # 2^8 = 256 forward passes
N_PERMUTATIONS = 64
MIN_PERMUTATIONS = 8

ValueFn = Callable[[frozenset[str]], np.ndarray]


@dataclass(frozen=True)
class ShapleyBudget:
    """What one explanation may cost: exact up to ``max_exact`` players, else at most ``n_permutations``
    (halved until the estimated time fits ``max_seconds``, down to ``MIN_PERMUTATIONS``)."""

    max_seconds: float = math.inf
    max_exact: int = MAX_EXACT
    n_permutations: int = N_PERMUTATIONS

    def plan(self, n_players: int, seconds_per_pass: float) -> int:
        """0 for exact, else the number of permutations; :class:`AffectFusionError` when even the fewest
        permutations would take longer than ``max_seconds``."""
        exact = 2**n_players
        if n_players <= self.max_exact and exact * seconds_per_pass <= self.max_seconds:
            return 0
        perms = max(MIN_PERMUTATIONS, self.n_permutations)
        while True:
            passes = sampled_passes(n_players, perms)
            if passes * seconds_per_pass <= self.max_seconds:
                return perms
            if perms // 2 < MIN_PERMUTATIONS:
                break
            perms //= 2
        raise AffectFusionError(
            f"explain: attributing {n_players} modalities needs at least {passes} forward passes of about "
            f"{seconds_per_pass:.3g} s each, over the limit max_explain_seconds={self.max_seconds:g}; "
            "send shorter inputs or fewer modalities, or predict without explain"
        )


def sampled_passes(n_players: int, n_permutations: int) -> int:
    """Most distinct subsets ``n_permutations`` orders visit (the empty and the full set are shared)."""
    return min(2**n_players, n_permutations * max(0, n_players - 1) + 2)


@dataclass
class Attribution:
    """Shapley values of one batch (player -> [B] or [B, K]); sampled ones with their standard error."""

    values: dict[str, np.ndarray]
    full: np.ndarray
    none: np.ndarray
    permutations: int = 0  # 0: exact
    standard_error: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def method(self) -> Literal["exact", "sampled"]:
        return "sampled" if self.permutations else "exact"


def exact_shapley(value: ValueFn, players: Sequence[str]) -> dict[str, np.ndarray]:
    """Every subset's marginal contribution, weighted: 2^n evaluations of ``value`` (cached)."""
    v = _cached(value)
    n = len(players)
    phi = {p: np.zeros_like(v(frozenset())) for p in players}
    for p in players:
        others = [q for q in players if q != p]
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for s in itertools.combinations(others, k):
                base = frozenset(s)
                phi[p] += weight * (v(base | {p}) - v(base))
    return phi


def sampled_shapley(
    value: ValueFn, players: Sequence[str], n_permutations: int = N_PERMUTATIONS, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Values estimated from ``n_permutations`` seeded orders (antithetic pairs: each order and its reverse)
    and their standard errors (over the pairs). Each order's contributions sum to f(all) - f(none), so the
    estimate does too."""
    v = _cached(value)
    rng = np.random.default_rng(seed)
    pairs = max(1, n_permutations // 2)
    total = {p: np.zeros_like(v(frozenset())) for p in players}
    squares = {p: np.zeros_like(total[p]) for p in players}
    for _ in range(pairs):
        order = list(rng.permutation(list(players)))
        pair = {p: np.zeros_like(total[p]) for p in players}
        for each in (order, order[::-1]):
            s: frozenset[str] = frozenset()
            for p in each:
                pair[p] += (v(s | {p}) - v(s)) / 2
                s = s | {p}
        for p in players:
            total[p] += pair[p]
            squares[p] += pair[p] ** 2
    mean = {p: x / pairs for p, x in total.items()}
    if pairs < 2:
        return mean, {p: np.full_like(x, np.nan) for p, x in mean.items()}
    var = {p: np.maximum(squares[p] / pairs - mean[p] ** 2, 0.0) * pairs / (pairs - 1) for p in players}
    return mean, {p: np.sqrt(x / pairs) for p, x in var.items()}


def shapley_values(
    value: ValueFn,
    players: Sequence[str],
    max_exact: int = MAX_EXACT,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Shapley value of every player for a (vector-valued) game; exact up to ``max_exact`` players."""
    if len(players) <= max_exact:
        return exact_shapley(value, players)
    return sampled_shapley(value, players, n_permutations, seed)[0]


def _cached(value: ValueFn) -> ValueFn:
    cache: dict[frozenset[str], np.ndarray] = {}

    def v(s: frozenset[str]) -> np.ndarray:
        if s not in cache:
            cache[s] = np.asarray(value(s), dtype=np.float64)
        return cache[s]

    return v


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
    budget: ShapleyBudget | None = None,
) -> Attribution:
    """Per-sample Shapley values of each modality for one batch (modality -> [B], or [B, K] multilabel),
    with f(all) and f(none).

    For classification the explained output is the probability of ``target`` (default: the full
    model's prediction). ``budget`` (default: unbounded time) decides exact or sampled from the time of
    one forward pass, before the others are run.
    """
    was_training = model.training
    model.eval()
    players = list(model.modalities)
    started = time.perf_counter()
    full = subset_output(model, batch, task, frozenset(players), scaler)
    seconds = time.perf_counter() - started
    if task.type == "classification":
        target = full.argmax(1) if target is None else np.asarray(target)
        rows = np.arange(len(target))

        def value(s: frozenset[str]) -> np.ndarray:
            return subset_output(model, batch, task, s, scaler)[rows, target]
    else:

        def value(s: frozenset[str]) -> np.ndarray:
            return subset_output(model, batch, task, s, scaler)

    try:
        perms = (budget or ShapleyBudget()).plan(len(players), seconds)
        if perms:
            phi, se = sampled_shapley(value, players, perms, seed)
        else:
            phi, se = exact_shapley(value, players), {}
        return Attribution(phi, value(frozenset(players)), value(frozenset()), perms, se)
    finally:
        model.train(was_training)


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
        found = batch_shapley(model, batch, task, scaler, seed=seed)
        phi, full = found.values, found.full
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
