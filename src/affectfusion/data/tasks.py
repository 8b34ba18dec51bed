"""Turn raw sample targets into what the loss needs: class indices, derived labels, scaled values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from affectfusion.config import TaskConfig
from affectfusion.data.types import Sample, _is_labelled
from affectfusion.errors import AffectFusionError


def encode_targets(samples: Sequence[Sample], tasks: Sequence[TaskConfig], where: str) -> None:
    """In place: derive thresholded tasks, map class names to indices, check ranges.

    A classification target may be given as a class name or an index; anything else, or a name
    outside ``classes``, is an error naming the sample.
    """
    for task in tasks:
        if task.threshold_of is None:
            continue
        for s in samples:
            v = s.targets.get(task.threshold_of)
            if task.name not in s.targets:
                s.targets[task.name] = int(float(v) >= task.threshold) if _is_labelled(v) else None
    for task in tasks:
        if task.type != "classification":
            for s in samples:
                v = s.targets.get(task.name)
                if _is_labelled(v):
                    try:
                        s.targets[task.name] = float(v)
                    except (TypeError, ValueError):
                        raise AffectFusionError(
                            f"{where}: sample {s.id!r} target {task.name!r} = {v!r} is not a number"
                        ) from None
            continue
        classes = task.classes or []
        index = {c: i for i, c in enumerate(classes)}
        lower = {c.lower(): i for i, c in enumerate(classes)}
        for s in samples:
            v = s.targets.get(task.name)
            if not _is_labelled(v):
                s.targets[task.name] = None
                continue
            if isinstance(v, str) and (v in index or v.lower() in lower):
                s.targets[task.name] = index.get(v, lower.get(v.lower()))
                continue
            try:
                i = int(v)
                ok = float(v) == i and 0 <= i < len(classes)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise AffectFusionError(
                    f"{where}: sample {s.id!r} has label {v!r} for task {task.name!r}, "
                    f"which is not in its class list {classes}"
                )
            s.targets[task.name] = i
    labelled = [t.name for t in tasks if any(_is_labelled(s.targets.get(t.name)) for s in samples)]
    if not labelled:
        found = sorted({k for s in samples for k in s.targets} - {t.name for t in tasks})
        raise AffectFusionError(
            f"{where}: no sample has a label for any task {[t.name for t in tasks]}; "
            f"the data has targets {found} (task names must match them)"
        )


def class_counts(samples: Sequence[Sample], task: TaskConfig) -> np.ndarray:
    counts = np.zeros(len(task.classes or []), dtype=np.int64)
    for s in samples:
        v = s.targets.get(task.name)
        if v is not None:
            counts[int(v)] += 1
    return counts


def balanced_class_weights(counts: np.ndarray) -> list[float]:
    """sklearn's 'balanced' rule, n / (k * count); an unseen class gets weight 0."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = counts.sum(), (counts > 0).sum()
    return [float(n / (k * c)) if c > 0 else 0.0 for c in counts]


@dataclass
class TargetScaler:
    """z-scores a regression target for training; predictions are mapped back to the user's scale."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: Sequence[float]) -> TargetScaler:
        arr = np.asarray([v for v in values if _is_labelled(v)], dtype=np.float64)
        if arr.size == 0:
            return cls(0.0, 1.0)
        std = float(arr.std())
        return cls(float(arr.mean()), std if std > 1e-8 else 1.0)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}
