"""The data model: samples with any subset of modalities, a dataset that checks them, and batches.

Every modality is carried as a sequence ``[T, D]``; a vector feature is a sequence of length 1.
That keeps one code path for encoders and fusions (mean-pool of a length-1 sequence is the
vector itself) while sequence-aware parts (TCN, transformer fusion) still see time.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

import numpy as np
import torch
from torch import Tensor

from affectfusion.errors import AffectFusionError


class LazyFeatures(Mapping[str, np.ndarray]):
    """A sample's features kept on disk (:mod:`affectfusion.data.shards`): shapes without reading,
    arrays read on access or straight into a batch. Checked (2-D, finite, T > 0) when written."""

    @abstractmethod
    def shape(self, modality: str) -> tuple[int, int]: ...

    @abstractmethod
    def read_into(self, modality: str, out: np.ndarray) -> None: ...

    @abstractmethod
    def prints(self) -> dict[str, tuple[str, str]]:
        """Each modality's (exact, near) hashes, computed once when written (the data check reads them)."""


def feature_shape(features: Mapping[str, np.ndarray], modality: str) -> tuple[int, int]:
    """[T, D] of a present modality, read from disk for nothing."""
    if isinstance(features, LazyFeatures):
        return features.shape(modality)
    x = features[modality]
    return x.shape[0], x.shape[1]


@dataclass
class Sample:
    """One example. A modality absent from ``features`` is missing for this sample.

    Raw-media adapters fill ``raw`` instead (modality -> text, file path or :class:`Signal`);
    the extractors named in ``data.extract`` turn it into ``features`` before training.
    """

    id: str
    features: Mapping[str, np.ndarray]  # a dict in memory, or LazyFeatures read from shards
    targets: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # speaker / video / dialogue, for group-disjoint splits
    source: str | None = None  # file the sample came from, for failure reports
    raw: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # speaker, gender, ...: for subgroup evaluation
    order: int | None = None  # position within its conversation (``group``), for the context stage
    speaker: str | None = None  # who said it, for speaker embeddings of the context stage


@dataclass(frozen=True)
class Signal:
    """A raw multichannel signal held in memory (EEG): ``data`` is [channels, time]."""

    data: np.ndarray
    sfreq: float


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    dim: int
    sequence: bool  # True if any sample has T > 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "sequence": self.sequence}


def check_array(x: Any, where: str) -> np.ndarray:
    """A [T, D] float32 array (a [D] vector becomes [1, D]), or a clear error naming the sample and modality."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise AffectFusionError(f"{where}: expected a [D] vector or [T, D] sequence, got shape {x.shape}")
    if x.shape[0] == 0:
        raise AffectFusionError(f"{where}: empty sequence (T = 0)")
    if not np.isfinite(x).all():
        raise AffectFusionError(f"{where}: contains NaN or infinite values")
    return x


class MultimodalDataset(torch.utils.data.Dataset):
    """A list of samples whose per-modality feature dimensions are checked to agree."""

    def __init__(
        self,
        samples: Sequence[Sample],
        modalities: dict[str, ModalitySpec] | None = None,
        name: str = "dataset",
    ) -> None:
        if not samples:
            raise AffectFusionError(f"{name}: no samples")
        self.name = name
        self.samples = list(samples)
        for s in self.samples:
            if not isinstance(s.features, LazyFeatures):
                s.features = {
                    m: check_array(x, f"{name}: sample {s.id!r} modality {m!r}") for m, x in s.features.items()
                }
        inferred = self._infer_specs()
        if modalities is None:
            self.modalities = inferred
        else:
            self.modalities = dict(modalities)
            self._check_against(modalities)
        ids = [s.id for s in self.samples]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise AffectFusionError(f"{name}: sample id {dup!r} appears more than once")

    def _infer_specs(self) -> dict[str, ModalitySpec]:
        dims: dict[str, int] = {}
        seq: dict[str, bool] = {}
        first: dict[str, str] = {}
        for s in self.samples:
            for m in s.features:
                t, d = feature_shape(s.features, m)
                if m not in dims:
                    dims[m], seq[m], first[m] = d, False, s.id
                elif d != dims[m]:
                    raise AffectFusionError(
                        f"{self.name}: sample {s.id!r} modality {m!r} has feature dimension {d}, "
                        f"but sample {first[m]!r} has {dims[m]}"
                    )
                seq[m] = seq[m] or t > 1
        if not dims:
            raise AffectFusionError(f"{self.name}: no sample has any modality features")
        return {m: ModalitySpec(m, dims[m], seq[m]) for m in sorted(dims)}

    def _check_against(self, expected: dict[str, ModalitySpec]) -> None:
        for s in self.samples:
            for m in s.features:
                if m not in expected:
                    continue  # extra modalities are ignored by a model that was not trained on them
                d = feature_shape(s.features, m)[1]
                if d != expected[m].dim:
                    raise AffectFusionError(
                        f"{self.name}: sample {s.id!r} modality {m!r} has feature dimension {d}, "
                        f"the model expects {expected[m].dim}"
                    )
        if not any(m in s.features for s in self.samples for m in expected):
            raise AffectFusionError(f"{self.name}: none of the model's modalities ({', '.join(expected)}) are present")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


@dataclass(frozen=True)
class Window:
    """A run of one conversation's utterances in order; ``scored[i]`` False marks an utterance that is
    only context here (the overlap with the previous window, which already scores it)."""

    samples: list[Sample]
    scored: list[bool]


@dataclass
class ConversationIndex:
    """Where each row of a :class:`Batch` sits in a conversation window, all ``[B]``:
    window number in the batch, position in it, speaker number (0 = unknown, then by first
    appearance in the window) and whether the row is scored (False = context only)."""

    conversation: Tensor
    position: Tensor
    speaker: Tensor
    scored: Tensor

    def to(self, device: torch.device | str) -> ConversationIndex:
        return ConversationIndex(*(t.to(device) for t in (self.conversation, self.position, self.speaker, self.scored)))


@dataclass
class Batch:
    """Padded tensors for a list of samples.

    ``features[m]`` is ``[B, T, D]`` (zeros where padded or missing), ``padding[m]`` is ``[B, T]``
    (True = real time step), ``present[m]`` is ``[B]`` (True = sample has modality m).
    ``targets[t]`` holds class indices (long), values (float) or multi-hot rows ``[B, K]`` (float);
    ``target_mask[t]`` (``[B]``) says which samples are labelled for task t.
    """

    ids: list[str]
    features: dict[str, Tensor]
    padding: dict[str, Tensor]
    present: dict[str, Tensor]
    targets: dict[str, Tensor]
    target_mask: dict[str, Tensor]
    conversation: ConversationIndex | None = None  # set when the batch holds conversation windows

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on ``device``; ``non_blocking`` overlaps the copy with compute when the batch is pinned."""

        def move(d: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.to(device, non_blocking=non_blocking) for k, v in d.items()}

        return Batch(
            self.ids,
            move(self.features),
            move(self.padding),
            move(self.present),
            move(self.targets),
            move(self.target_mask),
            None if self.conversation is None else self.conversation.to(device),
        )

    def pin_memory(self) -> Batch:
        """Page-locked copy (called by a DataLoader with ``pin_memory=True``), for asynchronous GPU copies."""

        def pin(d: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.pin_memory() for k, v in d.items()}

        return Batch(
            self.ids, pin(self.features), pin(self.padding), pin(self.present), pin(self.targets), pin(self.target_mask)
        )

    def with_present(self, present: dict[str, Tensor]) -> Batch:
        """The same batch with some modalities marked missing (their features zeroed)."""
        feats = {m: x * present[m][:, None, None].to(x.dtype) for m, x in self.features.items()}
        return Batch(self.ids, feats, self.padding, present, self.targets, self.target_mask, self.conversation)


class Collator:
    """Turns samples into a :class:`Batch` for a fixed set of modalities and tasks.

    ``task_types`` maps task name -> "classification" | "regression" | "multilabel"; targets must
    already be encoded (:func:`affectfusion.data.tasks.encode_targets`): class indices, or multi-hot
    vectors whose length ``num_labels`` gives per multilabel task (so an all-unlabelled batch still
    gets a ``[B, K]`` tensor).
    """

    def __init__(
        self,
        modalities: dict[str, ModalitySpec],
        task_types: dict[str, str],
        num_labels: dict[str, int] | None = None,
    ) -> None:
        self.modalities = modalities
        self.task_types = task_types
        self.num_labels = num_labels or {}

    def __call__(self, samples: Sequence[Sample] | Sequence[Window]) -> Batch:
        if samples and isinstance(samples[0], Window):
            return self._windows(cast("Sequence[Window]", samples))
        items = cast("Sequence[Sample]", samples)  # a batch is all windows or all samples
        b = len(items)
        features, padding, present = {}, {}, {}
        for m, spec in self.modalities.items():
            lengths = np.array([feature_shape(s.features, m)[0] if m in s.features else 0 for s in items])
            t_max = max(int(lengths.max(initial=0)), 1)
            x = torch.empty(b, t_max, spec.dim)  # each row written once: its frames, then zero padding
            filled = x.numpy()  # copied numpy to numpy: read-only (memory-mapped, cached) arrays need no torch view
            for i, n in enumerate(lengths.tolist()):
                f = items[i].features
                if n and isinstance(f, LazyFeatures):
                    f.read_into(m, filled[i, :n])  # from disk straight into the batch
                elif n:
                    filled[i, :n] = f[m]
                filled[i, n:] = 0.0
            features[m] = x
            padding[m] = torch.from_numpy(np.arange(t_max)[None, :] < lengths[:, None])
            present[m] = torch.from_numpy(lengths > 0)
        targets, target_mask = {}, {}
        for t, kind in self.task_types.items():
            values = [s.targets.get(t) for s in items]
            mask = torch.tensor([_is_labelled(v) for v in values], dtype=torch.bool)
            if kind == "multilabel":
                rows = np.zeros((b, self.num_labels[t]), dtype=np.float32)
                for i, v in enumerate(values):
                    if mask[i]:
                        rows[i] = v
                targets[t] = torch.from_numpy(rows)
            elif kind == "classification":
                targets[t] = torch.tensor([int(v) if _is_labelled(v) else -1 for v in values], dtype=torch.long)
            else:
                targets[t] = torch.tensor([float(v) if _is_labelled(v) else 0.0 for v in values], dtype=torch.float32)
            target_mask[t] = mask
        return Batch([s.id for s in items], features, padding, present, targets, target_mask)

    def _windows(self, windows: Sequence[Window]) -> Batch:
        """Every window's utterances as rows; context-only rows are unlabelled, so losses and
        metrics count each utterance once."""
        batch = self([s for w in windows for s in w.samples])
        conv, pos, spk, scored = [], [], [], []
        for k, w in enumerate(windows):
            names: dict[str, int] = {}
            for i, s in enumerate(w.samples):
                conv.append(k)
                pos.append(i)
                spk.append(0 if s.speaker is None else names.setdefault(s.speaker, len(names) + 1))
            scored.extend(w.scored)
        keep = torch.tensor(scored, dtype=torch.bool)
        batch.target_mask = {t: m & keep for t, m in batch.target_mask.items()}
        batch.conversation = ConversationIndex(torch.tensor(conv), torch.tensor(pos), torch.tensor(spk), keep)
        return batch


def _is_labelled(v: Any) -> TypeGuard[Any]:
    if v is None:
        return False
    try:
        return not np.isnan(float(v))
    except (TypeError, ValueError):
        return True
