"""The synthetic adapter: shapes, determinism, missingness and the label mechanism it promises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from affectfusion.data import DATASETS, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options


def load(split: str = "train", **options: Any) -> list[Sample]:
    cls = DATASETS.get("synthetic")
    return cls(validate_options(cls, options, "data.options")).load(None, split)


def accuracy(model: Any, use: list[str], **options: Any) -> float:
    """Held-out accuracy of ``model`` on the concatenated (time-averaged) features of modalities ``use``."""

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        samples = load(split, **options)
        x = np.stack([np.concatenate([np.atleast_2d(s.features[m]).mean(0) for m in use]) for s in samples])
        return x, np.array([s.targets["label"] for s in samples])

    return model.fit(*xy("train")).score(*xy("dev"))


def test_shapes_sizes_and_ids() -> None:
    mods = {"a": {"dim": 5}, "b": {"dim": 3, "seq_len": 8}}
    train, dev = (
        load("train", modalities=mods, n_train=50, n_eval=20),
        load("dev", modalities=mods, n_eval=20),
    )
    assert len(train) == 50 and len(dev) == 20
    assert train[12].id == "train-00012" and train[0].source is None
    for s in train:
        assert s.features["a"].shape == (5,) and s.features["a"].dtype == np.float32
        t, d = s.features["b"].shape
        assert d == 3 and 4 <= t <= 8 and s.features["b"].dtype == np.float32
        assert s.targets["label"] in range(4)
        assert s.group is not None and s.group.startswith("g") and len(s.group) == 3
    assert len({s.features["b"].shape[0] for s in train}) > 1  # lengths vary
    assert {s.group for s in train} <= {f"g{i:02d}" for i in range(20)}


def test_default_modalities() -> None:
    assert set(load(n_train=5)[0].features) == {"text", "audio", "video"}


def test_deterministic_and_split_dependent() -> None:
    a, b = load("train", n_train=30, seed=3), load("train", n_train=30, seed=3)
    for x, y in zip(a, b, strict=True):
        assert x.targets == y.targets and x.group == y.group
        assert all(np.array_equal(x.features[m], y.features[m]) for m in x.features)
    other_seed = load("train", n_train=30, seed=4)
    assert not np.array_equal(a[0].features["text"], other_seed[0].features["text"])
    dev = load("dev", n_eval=30, seed=3)
    assert not np.array_equal(a[0].features["text"], dev[0].features["text"])


def test_prototypes_shared_across_splits() -> None:
    """Noise-free class means agree between splits: only the sampling depends on the split."""

    def class_means(split: str) -> np.ndarray:
        samples = load(split, n_train=200, n_eval=200, noise=0.0, num_classes=3)
        return np.stack(
            [np.mean([s.features["text"] for s in samples if s.targets["label"] == c], 0) for c in range(3)]
        )

    np.testing.assert_allclose(class_means("train"), class_means("test"), atol=1e-6)


def test_missing_rate_keeps_one_modality() -> None:
    samples = load(n_train=2000, missing_rate=0.4)
    assert all(len(s.features) >= 1 for s in samples)
    dropped = np.mean([m not in s.features for s in samples for m in ("text", "audio", "video")])
    # 0.4 minus the few samples that would have lost all three and got one back (0.4**3 / 3 ~ 0.02).
    assert 0.34 < dropped < 0.42


def test_uninformative_modality_is_chance_level() -> None:
    mods = {"signal": {"dim": 16}, "noise": {"dim": 16, "informativeness": 0.0}}
    lr = LogisticRegression(max_iter=500)
    assert accuracy(lr, ["noise"], modalities=mods, n_eval=400) < 0.33  # chance 0.25
    assert accuracy(lr, ["signal"], modalities=mods, n_eval=400) > 0.45


def test_xor_needs_the_combination() -> None:
    opts = {
        "modalities": {"a": {"dim": 8}, "b": {"dim": 8}},
        "interaction": "xor",
        "num_classes": 3,
        "noise": 0.5,
        "n_eval": 400,
    }
    knn = KNeighborsClassifier(15)
    for m in ("a", "b"):
        assert accuracy(knn, [m], **opts) < 0.45  # chance 1/3
    assert accuracy(knn, ["a", "b"], **opts) > 0.7


def test_regression_range_and_integers() -> None:
    samples = load(task="regression", target_range=(0, 24), integer_targets=True, n_train=500)
    y = np.array([s.targets["label"] for s in samples])
    assert y.min() >= 0 and y.max() <= 24 and y.max() - y.min() > 12
    assert all(isinstance(s.targets["label"], int) for s in samples)
    xor = load(task="regression", interaction="xor", target_name="phq", n_train=200)
    values = [s.targets["phq"] for s in xor]
    assert all(isinstance(v, float) and -1 <= v <= 1 for v in values)


def test_regression_target_follows_features() -> None:
    samples = load(task="regression", noise=0.3, modalities={"a": {"dim": 4}}, n_train=300)
    x = np.stack([s.features["a"] for s in samples])
    y = np.array([s.targets["label"] for s in samples])
    fit = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    residual = y - np.c_[x, np.ones(len(x))] @ fit
    assert residual.var() < 0.3 * y.var()


@pytest.mark.parametrize(
    "options",
    [{"target_range": (5, 1)}, {"modalities": {"a": {"informativeness": 2}}}, {"unknown": 1}],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(AffectFusionError, match=r"data\.options"):
        load(**options)


def test_per_modality_noise_overrides_the_global_one() -> None:
    mods = {"clean": {"dim": 8, "noise": 0.0}, "noisy": {"dim": 8}}
    samples = load(modalities=mods, noise=1.0, num_classes=2, n_train=100)
    by_class: dict[int, list[np.ndarray]] = {}
    for s in samples:
        by_class.setdefault(s.targets["label"], []).append(s.features["clean"])
    for rows in by_class.values():
        assert np.ptp(np.stack(rows), axis=0).max() < 1e-6, "noise 0: every sample of a class is its prototype"
    noisy = np.stack([s.features["noisy"] for s in samples])
    assert noisy.std() > 0.5


# -- presence (P3: text always, image 75.5 %, video 19.8 %) ------------------------------------

P3_MODS = {"text": {"dim": 4}, "image": {"dim": 4}, "video": {"dim": 4, "seq_len": 8, "fixed_length": True}}
P3_PATTERNS = {"text+image": 0.755, "text+video": 0.198, "text": 0.047}


def rates(samples: list[Sample], names: list[str]) -> dict[str, float]:
    return {m: float(np.mean([m in s.features for s in samples])) for m in names}


def test_presence_defaults_keep_features_identical() -> None:
    """presence 1.0 (the default) draws nothing, so earlier datasets are reproduced bit for bit."""
    mods = {"a": {"dim": 5, "seq_len": 6}, "b": {"dim": 3}}
    explicit = {m: {**o, "presence": 1.0} for m, o in mods.items()}
    for x, y in zip(load(modalities=mods, n_train=40), load(modalities=explicit, n_train=40), strict=True):
        assert x.targets == y.targets and x.group == y.group and set(x.features) == {"a", "b"}
        assert all(np.array_equal(x.features[m], y.features[m]) for m in x.features)


def test_per_modality_presence_rates() -> None:
    mods = {"text": {"dim": 4}, "image": {"dim": 4, "presence": 0.755}, "video": {"dim": 4, "presence": 0.198}}
    samples = load(modalities=mods, n_train=4000)
    got = rates(samples, list(mods))
    assert got["text"] == 1.0
    assert abs(got["image"] - 0.755) < 0.025 and abs(got["video"] - 0.198) < 0.025
    # Drawn independently: both visual modalities together about 0.755 * 0.198 of the time.
    both = np.mean([{"image", "video"} <= set(s.features) for s in samples])
    assert abs(both - 0.755 * 0.198) < 0.025
    # Presence never changes which features a present modality gets.
    full = load(modalities={m: {"dim": 4} for m in mods}, n_train=4000)
    for s, f in zip(samples, full, strict=True):
        assert all(np.array_equal(s.features[m], f.features[m]) for m in s.features)


def test_presence_never_leaves_a_sample_empty_and_is_seeded() -> None:
    mods = {"a": {"dim": 2, "presence": 0.2}, "b": {"dim": 2, "presence": 0.1}}
    samples = load(modalities=mods, n_train=1000, missing_rate=0.3)
    assert all(s.features for s in samples)
    again = load(modalities=mods, n_train=1000, missing_rate=0.3)
    assert [set(s.features) for s in samples] == [set(s.features) for s in again]
    dev = load("dev", modalities=mods, n_eval=1000, missing_rate=0.3)
    assert [set(s.features) for s in samples] != [set(s.features) for s in dev]


def test_presence_patterns_follow_the_joint_distribution() -> None:
    samples = load(modalities=P3_MODS, presence_patterns=P3_PATTERNS, n_train=4000)
    patterns = ["+".join(m for m in P3_MODS if m in s.features) for s in samples]
    assert set(patterns) == {"text+image", "text+video", "text"}  # image and video exclude each other
    for pattern, p in P3_PATTERNS.items():
        assert abs(patterns.count(pattern) / len(samples) - p) < 0.02
    got = rates(samples, list(P3_MODS))
    assert got["text"] == 1.0 and abs(got["image"] - 0.755) < 0.02 and abs(got["video"] - 0.198) < 0.02


def test_fixed_length_sequences_and_class_probs() -> None:
    samples = load(modalities=P3_MODS, num_classes=5, class_probs=[0.316, 0.292, 0.266, 0.073, 0.053], n_train=4000)
    assert {s.features["video"].shape for s in samples} == {(8, 4)}
    counts = np.bincount([s.targets["label"] for s in samples], minlength=5) / len(samples)
    np.testing.assert_allclose(counts, [0.316, 0.292, 0.266, 0.073, 0.053], atol=0.02)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"presence_patterns": {"text+audio+smell": 1.0}}, "presence_patterns key 'text\\+audio\\+smell'"),
        ({"presence_patterns": {"text": 0.5, "audio": 0.4}}, "summing to 1"),
        ({"presence_patterns": {"text+audio": 0.5, "audio + text": 0.5}}, "are the same"),
        ({"presence_patterns": {}}, "presence_patterns is empty"),
        (
            {"modalities": {"a": {"presence": 0.5}, "b": {}}, "presence_patterns": {"a": 1.0}},
            "exclude each other",
        ),
        ({"modalities": {"a": {"presence": 0.0}}}, "presence"),
        ({"class_probs": [0.5, 0.5]}, "2 values for num_classes 4"),
        ({"class_probs": [0.5, 0.5], "num_classes": 2, "interaction": "xor"}, "additive classification"),
    ],
)
def test_bad_presence_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(AffectFusionError, match=rf"data\.options.*{message}"):
        load(**options)
