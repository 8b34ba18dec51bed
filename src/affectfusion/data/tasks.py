"""Turn raw sample targets into what the loss needs: class indices, multi-hot vectors, derived labels,
scaled values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectfusion.config import TaskConfig
from affectfusion.data.types import Collator, ModalitySpec, Sample, _is_labelled
from affectfusion.errors import AffectFusionError


def encode_targets(samples: Sequence[Sample], tasks: Sequence[TaskConfig], where: str) -> None:
    """In place: derive thresholded tasks, map class names to indices, check ranges.

    A classification target may be given as a class name or an index; anything else, or a name
    outside ``classes``, is an error naming the sample. A multilabel target becomes a multi-hot
    float32 vector over ``classes``; see :func:`multi_hot` for what it may be given as.
    """
    for task in tasks:
        if task.threshold_of is None or task.threshold is None:  # TaskConfig sets both or neither
            continue
        for s in samples:
            v = s.targets.get(task.threshold_of)
            if task.name not in s.targets:
                s.targets[task.name] = int(float(v) >= task.threshold) if _is_labelled(v) else None
    for task in tasks:
        if task.type == "regression":
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
        for s in samples:
            v = s.targets.get(task.name)
            if not _is_labelled(v):
                s.targets[task.name] = None
            elif task.type == "multilabel":
                try:
                    s.targets[task.name] = multi_hot(v, classes)
                except LookupError as e:
                    raise _label_error(where, s.id, e.args[0], task) from None
            else:
                i = class_index(v, classes)
                if i is None:
                    raise _label_error(where, s.id, v, task)
                s.targets[task.name] = i
    labelled = [t.name for t in tasks if any(_is_labelled(s.targets.get(t.name)) for s in samples)]
    if not labelled:
        found = sorted({k for s in samples for k in s.targets} - {t.name for t in tasks})
        raise AffectFusionError(
            f"{where}: no sample has a label for any task {[t.name for t in tasks]}; "
            f"the data has targets {found} (task names must match them)"
        )


def _label_error(where: str, sample_id: str, label: Any, task: TaskConfig) -> AffectFusionError:
    return AffectFusionError(
        f"{where}: sample {sample_id!r} has label {label!r} for task {task.name!r}, "
        f"which is not in its class list {task.classes}"
    )


def class_index(v: Any, classes: Sequence[str]) -> int | None:
    """Index of a class given by name (case-insensitive) or by integral index; None if neither."""
    if isinstance(v, str):
        lower = [c.lower() for c in classes]
        if v.lower() in lower:
            return classes.index(v) if v in classes else lower.index(v.lower())
    try:
        i = int(v)
        return i if float(v) == i and 0 <= i < len(classes) else None
    except (TypeError, ValueError):
        return None


def multi_hot(v: Any, classes: Sequence[str]) -> np.ndarray:
    """A multilabel target as a float32 multi-hot vector over ``classes``.

    Accepted: a list of class names or indices (``["joy", "love"]``, ``[17, 18]``), one name or
    index, a ``;``-joined string (CSV manifests: ``"joy;love"``), or a multi-hot list / array of
    length K with only 0/1 values (with 2 classes, ``[0, 1]`` is therefore read as multi-hot; name
    the labels to mean both). An empty list is a labelled sample with no class (all zeros); only
    ``None`` / NaN mean unlabelled. An unknown label raises ``LookupError(label)``.
    """
    if isinstance(v, str):
        items: list[Any] = [part.strip() for part in v.split(";") if part.strip()]
    elif isinstance(v, np.ndarray | list | tuple | set | frozenset):
        items = list(np.asarray(v).ravel()) if isinstance(v, np.ndarray) else list(v)
    else:
        items = [v]
    out = np.zeros(len(classes), dtype=np.float32)
    numeric = all(isinstance(x, int | float | np.number) for x in items)
    if numeric and len(items) == len(classes) and all(float(x) in (0.0, 1.0) for x in items):
        out[:] = [float(x) for x in items]
        return out
    for label in items:
        i = class_index(label, classes)
        if i is None:
            raise LookupError(label)
        out[i] = 1.0
    return out


def class_counts(samples: Sequence[Sample], task: TaskConfig) -> np.ndarray:
    """Labelled samples per class; for a multilabel task, positives per class."""
    counts = np.zeros(len(task.classes or []), dtype=np.int64)
    for s in samples:
        v = s.targets.get(task.name)
        if v is None:
            continue
        if task.type == "multilabel":
            counts += np.asarray(v, dtype=np.int64)
        else:
            counts[int(v)] += 1
    return counts


def balanced_class_weights(counts: np.ndarray) -> list[float]:
    """sklearn's 'balanced' rule, n / (k * count); an unseen class gets weight 0."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = counts.sum(), (counts > 0).sum()
    return [float(n / (k * c)) if c > 0 else 0.0 for c in counts]


def balanced_pos_weight(positives: np.ndarray, n: int) -> list[float]:
    """BCE pos_weight = negatives / positives per class (PyTorch's recommended rule), so each
    class's positive and negative terms weigh the same; a class with no positive gets 1."""
    pos = np.asarray(positives, dtype=np.float64)
    return [float((n - p) / p) if p > 0 else 1.0 for p in pos]


def collator_for(modalities: dict[str, ModalitySpec], tasks: Sequence[TaskConfig]) -> Collator:
    """The batch collator for a model of these tasks."""
    return Collator(
        modalities,
        {t.name: t.type for t in tasks},
        {t.name: len(t.classes or []) for t in tasks if t.type == "multilabel"},
    )


@dataclass
class TargetScaler:
    """z-scores a regression target for training; predictions are mapped back to the user's scale."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: Sequence[float | None]) -> TargetScaler:
        arr = np.asarray([v for v in values if _is_labelled(v)], dtype=np.float64)
        if arr.size == 0:
            return cls(0.0, 1.0)
        std = float(arr.std())
        return cls(float(arr.mean()), std if std > 1e-8 else 1.0)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}
