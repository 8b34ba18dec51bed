"""A synthetic multimodal dataset whose ground truth is known, for demos and tests.

Each modality gets a seed-fixed prototype per class (classification) or a seed-fixed direction
(regression); a sample's feature is that signal, scaled by the modality's informativeness, plus
Gaussian noise. In ``additive`` mode every informative modality carries the label on its own; in
``xor`` mode each modality carries an independent latent and only their combination determines
the label, so unimodal models sit at chance while a fusion of all informative modalities does not.

Which modalities a sample has can follow a real corpus (P3: every Reddit post has text, 75.5 % an
image, 19.8 % a video): per-modality ``presence`` probabilities drawn independently, or a joint
distribution over ``presence_patterns``. Both come from their own seed-fixed generator, so leaving
them at their defaults reproduces the features of earlier versions bit for bit.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from affectfusion.data import examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample

if TYPE_CHECKING:
    from affectfusion.data.shards import SplitWriter

# Norm of a class prototype / regression direction at informativeness 1. With the defaults
# (additive, noise 1, 4 classes, 16 dimensions, 600 training samples) one modality alone gives
# roughly 50-60 % accuracy and the three fused roughly 80 %: clearly above chance, not perfect.
# xor is harder by nature: it becomes learnable with fewer classes/modalities and noise <= 0.5.
SIGNAL_NORM = 1.2
CHUNK = 1024  # samples drawn at a time: bounds the memory of a large split's shared noise


class ModalityOptions(BaseModel):
    """Shape and strength of one synthetic modality."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(16, ge=1, description="feature dimension D")
    seq_len: int = Field(
        0,
        ge=0,
        description="0 = one [D] vector per sample; > 0 = a [T, D] sequence with T drawn in [seq_len//2, seq_len]",
    )
    informativeness: float = Field(
        1.0, ge=0.0, le=1.0, description="scale of the label signal: 0 = pure noise, 1 = full signal"
    )
    noise: float | None = Field(
        None,
        ge=0.0,
        description="this modality's feature noise std (default: the adapter's `noise`); the signal norm is "
        "fixed, so high-dimensional modalities (768-d) need a lower noise to stay learnable",
    )
    fixed_length: bool = Field(
        False, description="sequences always have seq_len steps (e.g. 8 uniformly sampled video frames)"
    )
    presence: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="probability that a sample has this modality, drawn independently per modality "
        "(a sample never loses all of its modalities)",
    )


PATTERN_SEPARATOR = "+"


def _default_modalities() -> dict[str, ModalityOptions]:
    return {m: ModalityOptions() for m in ("text", "audio", "video")}


def _rng(*keys: int | str) -> np.random.Generator:
    """A generator seeded by a stable hash of ``keys`` (Python's ``hash()`` varies per process)."""
    return np.random.default_rng([k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys])


def _prototypes(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` vectors of norm SIGNAL_NORM; orthogonal when n <= dim, so all classes are equally apart."""
    x = rng.standard_normal((dim, max(n, dim)))
    if n <= dim:
        q, _ = np.linalg.qr(x)
        return SIGNAL_NORM * q[:, :n].T
    x = x[:, :n].T
    return SIGNAL_NORM * x / np.linalg.norm(x, axis=1, keepdims=True)


@DATASETS.register("synthetic")
class SyntheticAdapter(DatasetAdapter):
    """Generated features with a known label mechanism (additive or xor interaction); needs no files."""

    write_example = staticmethod(examples.synthetic)

    needs_root = False

    class Options(DatasetAdapter.Options):
        modalities: dict[str, ModalityOptions] = Field(
            default_factory=_default_modalities,
            min_length=1,
            description="modality name -> {dim, seq_len, informativeness, noise, presence}; default text, audio, video",
        )
        task: Literal["classification", "regression"] = Field("classification", description="kind of target generated")
        num_classes: int = Field(4, ge=2, description="number of classes (classification)")
        target_name: str = Field("label", description="task name the target is stored under")
        target_range: tuple[float, float] | None = Field(
            None,
            description="regression: map the target linearly from [-1, 1] into [low, high] (e.g. [0, 24])",
        )
        integer_targets: bool = Field(False, description="regression: round targets to integers")
        interaction: Literal["additive", "xor"] = Field(
            "additive",
            description="additive: each informative modality carries the label alone; "
            "xor: only the combination of all informative modalities determines it "
            "(learnable with lower noise, e.g. 0.5, and few classes/modalities)",
        )
        noise: float = Field(1.0, ge=0.0, description="feature noise std (signal norm is fixed)")
        missing_rate: float = Field(
            0.0,
            ge=0.0,
            lt=1.0,
            description="probability that a modality is dropped per sample (never all of a sample's)",
        )
        presence_patterns: dict[str, float] | None = Field(
            None,
            description="joint presence: modality pattern ('text+image', 'text') -> probability, summing to 1; "
            "each sample draws one pattern. Use instead of per-modality `presence` when modalities "
            "exclude each other (P3: a post has an image or a video, rarely both)",
        )
        class_probs: list[float] | None = Field(
            None,
            description="classification (additive): probability of each class, summing to 1 "
            "(default: uniform); an imbalanced corpus such as P3's 32/29/27/7/5 %",
        )
        n_train: int = Field(600, ge=1, description="number of samples in the 'train' split")
        n_eval: int = Field(200, ge=1, description="number of samples in any other split")
        seed: int = Field(0, ge=0, description="fixes prototypes (shared by all splits) and per-split draws")
        groups: int = Field(20, ge=1, description="number of group ids (g00, g01, ...) assigned at random")

        @model_validator(mode="after")
        def _check_range(self) -> SyntheticAdapter.Options:
            if self.target_range is not None and not self.target_range[0] < self.target_range[1]:
                raise ValueError(f"target_range must be [low, high] with low < high, got {self.target_range}")
            if self.class_probs is not None:
                if self.task != "classification" or self.interaction != "additive":
                    raise ValueError("class_probs is for additive classification (xor derives the label)")
                _check_distribution(self.class_probs, "class_probs")
                if len(self.class_probs) != self.num_classes:
                    raise ValueError(
                        f"class_probs has {len(self.class_probs)} values for num_classes {self.num_classes}"
                    )
            if self.presence_patterns is not None:
                self._check_patterns(self.presence_patterns)
            return self

        def _check_patterns(self, patterns: dict[str, float]) -> None:
            if not patterns:
                raise ValueError("presence_patterns is empty; give at least one pattern or leave it unset")
            partial = [m for m, mo in self.modalities.items() if mo.presence < 1.0]
            if partial:
                raise ValueError(
                    f"presence_patterns and per-modality presence ({', '.join(partial)}) exclude each other"
                )
            seen: dict[frozenset[str], str] = {}
            for name in patterns:
                mods = parse_pattern(name)
                unknown = [m for m in mods if m not in self.modalities]
                if not mods or unknown:
                    raise ValueError(
                        f"presence_patterns key {name!r}: expected modality names joined by "
                        f"{PATTERN_SEPARATOR!r} from {', '.join(self.modalities)}"
                    )
                if frozenset(mods) in seen:
                    raise ValueError(f"presence_patterns keys {seen[frozenset(mods)]!r} and {name!r} are the same")
                seen[frozenset(mods)] = name
            _check_distribution(list(patterns.values()), "presence_patterns")

    groups_identify_sources = False  # group ids are drawn at random, shared across splits by design
    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        return self._generate(split, None)

    def write_split(self, root: Path | None, split: str, writer_for: Callable[[int], SplitWriter]) -> None:
        """Stream the split into shards as it is drawn (the same numbers as ``load``), so a split of
        many gigabytes never sits in memory."""
        o = self.options
        writer = writer_for(o.n_train if split == "train" else o.n_eval)
        try:
            writer.finish(self._generate(split, writer))
        except BaseException:
            writer.abort()
            raise

    def _generate(self, split: str, writer: SplitWriter | None) -> list[Sample]:
        """The split's samples; given a ``writer``, their features go there instead of into the samples."""
        o = self.options
        n = o.n_train if split == "train" else o.n_eval
        rng = _rng(o.seed, split)
        names = list(o.modalities)
        informative = [m for m in names if o.modalities[m].informativeness > 0]
        classification = o.task == "classification"

        # Per-modality latent: a class index (classification) or a value in [-1, 1] (regression).
        latent: dict[str, np.ndarray]
        label: np.ndarray
        if classification:
            k = o.num_classes
            if o.interaction == "additive":
                label = rng.integers(0, k, n) if o.class_probs is None else rng.choice(k, n, p=_normed(o.class_probs))
                latent = {m: label for m in names}
            else:
                latent = {m: rng.integers(0, k, n) for m in names}
                label = np.sum([latent[m] for m in informative], axis=0) % k if informative else rng.integers(0, k, n)
        else:
            latent = {m: rng.uniform(-1.0, 1.0, n) for m in names}
            if not informative:
                label = rng.uniform(-1.0, 1.0, n)
            elif o.interaction == "additive":
                label = np.mean([latent[m] for m in informative], axis=0)
            else:
                label = np.prod([latent[m] for m in informative], axis=0)
            if o.target_range is not None:
                low, high = o.target_range
                label = low + (label + 1.0) / 2.0 * (high - low)
            if o.integer_targets:
                label = np.round(label)

        features: dict[str, list[np.ndarray]] = {}
        for m in names:  # drawn one modality after the other, whether kept or written
            arrays = self._features(m, latent[m], rng)
            if writer is None:
                features[m] = list(arrays)
            else:
                for i, x in enumerate(arrays):
                    writer.add(m, i, _sample_id(split, i), x)
        present = self._presence(n, len(names), rng)
        drawn = self._drawn_presence(n, names, _rng(o.seed, split, "presence"))
        if drawn is not None:
            present = _keep_one(present & drawn, drawn, _rng(o.seed, split, "presence", "repair"))
        if writer is not None:
            for j, m in enumerate(names):
                writer.drop(m, np.flatnonzero(~present[:, j]))
        group = rng.integers(0, o.groups, n)
        width = max(2, len(str(o.groups - 1)))
        samples = []
        for i in range(n):
            y = int(label[i]) if classification or o.integer_targets else float(label[i])
            samples.append(
                Sample(
                    id=_sample_id(split, i),
                    features={m: features[m][i] for j, m in enumerate(names) if present[i, j] and m in features},
                    targets={o.target_name: y},
                    group=f"g{group[i]:0{width}d}",
                )
            )
        return samples

    def _features(self, modality: str, latent: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Signal from the seed-fixed prototypes plus noise; one array per sample, drawn in chunks.

        The steps of a sequence share one noise draw plus per-step jitter, so averaging over time
        does not make a sequence modality easier than a vector one. The shared draws come first in
        ``rng`` for the whole split; a copy of ``rng`` replays them chunk by chunk alongside the
        per-step draws, so the numbers are those of one [n, D] draw without holding it.
        """
        o, mo = self.options, self.options.modalities[modality]
        proto_rng = _rng(o.seed, "prototypes", modality)
        n = len(latent)
        protos = _prototypes(o.num_classes if o.task == "classification" else 1, mo.dim, proto_rng)
        noise = o.noise if mo.noise is None else mo.noise
        shared = copy.deepcopy(rng)
        for start in range(0, n, CHUNK):
            rng.standard_normal((min(CHUNK, n - start), mo.dim))
        if mo.seq_len == 0:
            lengths = None
        elif mo.fixed_length:
            lengths = np.full(n, mo.seq_len)
        else:
            lengths = rng.integers(max(1, mo.seq_len // 2), mo.seq_len + 1, n)
        for start in range(0, n, CHUNK):
            part = latent[start : start + CHUNK]
            base = protos[part] if o.task == "classification" else part[:, None] * protos[0]
            signal = mo.informativeness * base + noise * shared.standard_normal(base.shape)
            if lengths is None:
                yield from signal.astype(np.float32)
                continue
            for s, t in zip(signal, lengths[start : start + CHUNK], strict=True):
                yield (s + noise * rng.standard_normal((t, mo.dim))).astype(np.float32)

    def _presence(self, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """[n, m] bool; a sample that would lose every modality keeps one chosen at random."""
        present = rng.random((n, m)) >= self.options.missing_rate
        empty = ~present.any(axis=1)
        present[np.flatnonzero(empty), rng.integers(0, m, int(empty.sum()))] = True
        return present

    def _drawn_presence(self, n: int, names: list[str], rng: np.random.Generator) -> np.ndarray | None:
        """[n, m] bool from ``presence_patterns`` or per-modality ``presence``; None if neither is set.

        Every row keeps at least one modality: a sample that drew none keeps one, chosen with
        probability proportional to the modalities' presence.
        """
        o = self.options
        if o.presence_patterns is not None:
            masks = np.array([[m in parse_pattern(p) for m in names] for p in o.presence_patterns], dtype=bool)
            return masks[rng.choice(len(masks), n, p=_normed(list(o.presence_patterns.values())))]
        probs = np.array([o.modalities[m].presence for m in names])
        if (probs >= 1.0).all():
            return None
        present = rng.random((n, len(names))) < probs
        empty = np.flatnonzero(~present.any(axis=1))
        present[empty, rng.choice(len(names), len(empty), p=probs / probs.sum())] = True
        return present


def _sample_id(split: str, i: int) -> str:
    return f"{split}-{i:05d}"


def parse_pattern(name: str) -> list[str]:
    """'text+image' -> ['text', 'image'] (whitespace around names ignored, empty parts dropped)."""
    return [part.strip() for part in name.split(PATTERN_SEPARATOR) if part.strip()]


def _check_distribution(values: list[float], field: str) -> None:
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"{field} must be non-negative probabilities summing to 1, got {values} (sum {sum(values)})")


def _normed(values: list[float]) -> np.ndarray:
    """Probabilities that sum to exactly 1 (numpy's ``choice`` is stricter than the 1e-6 we accept)."""
    p = np.asarray(values, dtype=np.float64)
    return p / p.sum()


def _keep_one(present: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows left empty (``missing_rate`` removed all the drawn modalities) get one of ``allowed`` back."""
    for i in np.flatnonzero(~present.any(axis=1)):
        present[i, rng.choice(np.flatnonzero(allowed[i]))] = True
    return present
