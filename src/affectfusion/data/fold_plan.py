"""Which samples each cross-validation fold tests and validates on: predefined folds, leave-one-group-out,
group k-fold (stratified where the task allows) or, without groups, plain k-fold.

The plan is a list of :class:`FoldPlan` stated by values (see :mod:`affectfusion.data.folds`), computed
once from the pooled samples, deterministically from the seed. Groups are the unit everywhere: a test
fold is a set of groups (or fold values), the validation part a set of training groups, so no group can
straddle train, validation and test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from affectfusion.data.folds import group_of, sample_value
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError


@dataclass(frozen=True)
class Protocol:
    """How folds are made: ``folds`` (a column naming each sample's test fold), ``group`` (leave one
    group out, or group ``k``-fold), or neither (plain ``k``-fold); ``val_fraction`` of the training
    groups validates."""

    folds: str | None = None
    group: str | None = None
    k: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    stratify: str | None = None  # a classification task's name: folds keep its class balance where possible
    consecutive: bool = False

    @property
    def name(self) -> str:
        if self.folds:
            return f"predefined folds (column {self.folds!r})"
        if self.group and self.k and self.consecutive:
            return f"group {self.k}-fold by {self.group!r}, consecutive blocks"
        if self.group and self.k:
            strat = ", stratified" if self.stratify else ""
            return f"group {self.k}-fold by {self.group!r}{strat}"
        if self.group:
            return f"leave-one-group-out by {self.group!r}"
        return f"{self.k}-fold over samples (no groups{', stratified' if self.stratify else ''})"

    def validation_rule(self) -> str:
        unit = f"{self.group!r} groups" if self.group else "groups (the adapter's, else samples)"
        return f"{self.val_fraction:.0%} of the training {unit}, held out whole (seed {self.seed} + fold" + (
            ", stratified where possible)" if self.stratify else ")"
        )


@dataclass
class FoldPlan:
    """One fold: the ``test`` values of ``column``, the ``val`` groups (of ``group_column``)."""

    index: int
    column: str | None
    group_column: str | None
    test: list[str]
    val: list[str]
    sizes: dict[str, int] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        return {"column": self.column, "group_column": self.group_column, "test": self.test, "val": self.val}


def _labels(samples: list[Sample], task: str | None) -> np.ndarray | None:
    if task is None:
        return None
    return np.asarray([str(s.targets.get(task)) for s in samples], dtype=object)


def _test_parts(samples: list[Sample], p: Protocol, where: str) -> tuple[str | None, list[list[str]]]:
    """The key column and, per fold, the key values it tests."""
    if p.consecutive and not (p.group and p.k):
        raise AffectFusionError(f"{where}: --consecutive makes blocks of groups; pass it with --group and --k")
    if p.folds:
        values = [sample_value(s, p.folds, where) for s in samples]
        folds = sorted(set(values), key=_natural)
        if len(folds) < 2:
            raise AffectFusionError(f"{where}: column {p.folds!r} has {len(folds)} distinct value(s); cv needs 2+")
        return p.folds, [[v] for v in folds]
    if p.group:
        groups = np.asarray([sample_value(s, p.group, where) for s in samples], dtype=object)
        distinct = sorted(set(groups), key=_natural)
        if len(distinct) < 2:
            raise AffectFusionError(f"{where}: column {p.group!r} has {len(distinct)} distinct value(s); cv needs 2+")
        if not p.k:
            return p.group, [[g] for g in distinct]
        if p.k > len(distinct):
            raise AffectFusionError(f"{where}: --k {p.k} is more than the {len(distinct)} groups of {p.group!r}")
        if p.consecutive:  # fixed blocks in natural order, as even as the count allows
            return p.group, [list(block) for block in np.array_split(np.asarray(distinct, dtype=object), p.k)]
        labels = _labels(samples, p.stratify)
        if labels is not None:
            splitter: Any = StratifiedGroupKFold(n_splits=p.k, shuffle=True, random_state=p.seed)
        else:
            splitter = GroupKFold(n_splits=p.k)
        idx = np.arange(len(samples))
        with warnings.catch_warnings():  # a class smaller than k: sklearn warns, the folds are still group-disjoint
            warnings.simplefilter("ignore", UserWarning)
            parts = [sorted(set(groups[test]), key=_natural) for _, test in splitter.split(idx, labels, groups)]
        return p.group, parts
    k = p.k or 5
    if k > len(samples):
        raise AffectFusionError(f"{where}: --k {k} is more than the {len(samples)} samples")
    ids = np.asarray([s.id for s in samples], dtype=object)
    labels = _labels(samples, p.stratify)
    counts = None if labels is None else np.unique(labels, return_counts=True)[1]
    if labels is not None and counts is not None and counts.min() >= k:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=p.seed).split(ids, labels)
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=p.seed).split(ids)
    return None, [sorted(ids[test]) for _, test in splits]


def _validation(train: list[Sample], p: Protocol, group_column: str | None, seed: int, where: str) -> list[str]:
    """Training groups held out for validation: stratified group folds (one of ~1/fraction) where the
    task allows, else a seeded group shuffle split."""
    groups = np.asarray([group_of(s, group_column, where) for s in train], dtype=object)
    distinct = set(groups)
    if len(distinct) < 2:
        raise AffectFusionError(f"{where}: a fold's training part has {len(distinct)} group(s); validation needs 2+")
    labels = _labels(train, p.stratify)
    n_splits = min(len(distinct), max(2, round(1 / p.val_fraction)))
    idx = np.arange(len(train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if labels is not None:
            _, val = next(
                StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(idx, labels, groups)
            )
        else:
            _, val = next(
                GroupShuffleSplit(n_splits=1, test_size=p.val_fraction, random_state=seed).split(idx, None, groups)
            )
    return sorted(set(groups[val]), key=_natural)


def plan_folds(samples: list[Sample], p: Protocol, where: str) -> list[FoldPlan]:
    """Every fold of ``p`` over ``samples``; each sample is tested in exactly one fold."""
    if not 0 < p.val_fraction < 1:
        raise AffectFusionError(f"--val-fraction must be between 0 and 1 (exclusive), got {p.val_fraction}")
    column, parts = _test_parts(samples, p, where)
    group_column = p.group  # None: the adapter's own groups (speakers, actors), else each sample alone
    keys = [sample_value(s, column, where) for s in samples]
    plans = []
    for i, test in enumerate(parts):
        chosen = set(test)
        train = [s for s, key in zip(samples, keys, strict=True) if key not in chosen]
        if not train:
            raise AffectFusionError(f"{where}: fold {i} tests every sample; nothing is left to train on")
        val = _validation(train, p, group_column, p.seed + i, where)
        n_test = len(samples) - len(train)
        n_val = sum(group_of(s, group_column, where) in set(val) for s in train)
        sizes = {"train": len(train) - n_val, "val": n_val, "test": n_test}
        plans.append(FoldPlan(i, column, group_column, list(test), val, sizes))
    return plans


def _natural(v: str) -> tuple:
    """Numbers in numeric order (fold 2 before fold 10), then text."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)
