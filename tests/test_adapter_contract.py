"""Registry-wide contract of dataset adapters: every registered adapter loads its own example dataset
(``write_example``, see :mod:`affectfusion.data.examples`) into well-formed samples, reports a missing
split as a one-line error naming the path, and loads identically twice. Also: every module under
``data/`` and ``extract/`` that registers something is imported by its package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectfusion.data import DATASETS, DatasetAdapter, Sample
from affectfusion.data.examples import ExampleSpec
from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options

NAMES = DATASETS.names()


def load_example(name: str, root: Path) -> tuple[DatasetAdapter, ExampleSpec, list[Sample]]:
    cls = DATASETS.get(name)
    spec = cls.write_example(root)
    adapter = cls(validate_options(cls, spec.options, f"{name} example options"))
    return adapter, spec, adapter.load(root if cls.needs_root else None, spec.split)


def test_every_registered_adapter_declares_its_own_example() -> None:
    assert len(NAMES) >= 17
    missing = [n for n in NAMES if "write_example" not in vars(DATASETS.get(n))]
    assert not missing, f"adapters without their own write_example (see affectfusion.data.examples): {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_example_loads_into_well_formed_samples(name: str, tmp_path: Path) -> None:
    _, spec, samples = load_example(name, tmp_path)
    assert samples, f"{name}: the example loaded no samples"
    ids = [s.id for s in samples]
    assert len(set(ids)) == len(ids), f"{name}: duplicate sample ids {ids}"
    assert spec.tasks
    for s in samples:
        assert isinstance(s.id, str) and s.id
        assert s.features or s.raw, f"{name}: sample {s.id!r} has neither features nor raw inputs"
        for m, x in s.features.items():
            x = np.asarray(x)
            assert x.ndim in (1, 2) and x.size and np.isfinite(x).all(), f"{name}: {s.id} feature {m!r} {x.shape}"
        for m, item in s.raw.items():
            assert isinstance(item, str | Path | Signal), f"{name}: {s.id} raw {m!r} is {item!r}"
            if isinstance(item, Path):
                assert item.is_relative_to(tmp_path) or not item.is_absolute(), f"{name}: {item} outside the root"
        assert set(spec.tasks) <= set(s.targets), f"{name}: {s.id} targets {sorted(s.targets)} lack {spec.tasks}"
    for task in spec.tasks:
        assert any(s.targets[task] is not None for s in samples), f"{name}: task {task!r} is never labelled"


@pytest.mark.parametrize("name", NAMES)
def test_missing_split_or_folder_is_a_one_line_error_naming_it(name: str, tmp_path: Path) -> None:
    """A split with no file names the path looked at; a split the options do not define (DAIC-WOZ's split
    files, EAV's subject lists) names the split. A root folder that lost its content names the path."""
    adapter, spec, _ = load_example(name, tmp_path / "data")
    if not type(adapter).needs_root:
        pytest.skip(f"{name} reads no folder")
    with pytest.raises(AffectFusionError) as info:
        adapter.load(tmp_path / "data", "no_such_split")
    message = str(info.value)
    assert "\n" not in message and (str(tmp_path / "data") in message or "'no_such_split'" in message), message
    (tmp_path / "empty").mkdir()
    with pytest.raises(AffectFusionError) as info:
        adapter.load(tmp_path / "empty", spec.split)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "empty") in message, message


@pytest.mark.parametrize("name", NAMES)
def test_loading_twice_is_identical(name: str, tmp_path: Path) -> None:
    adapter, spec, first = load_example(name, tmp_path)
    again = type(adapter)(adapter.options).load(tmp_path if type(adapter).needs_root else None, spec.split)
    assert [s.id for s in again] == [s.id for s in first]
    for a, b in zip(first, again, strict=True):
        assert (a.targets, a.group, a.source, a.raw.keys()) == (b.targets, b.group, b.source, b.raw.keys())
        assert all(_same_input(a.raw[m], b.raw[m]) for m in a.raw), f"{name}: {a.id} raw inputs differ"
        assert a.features.keys() == b.features.keys()
        assert all(np.array_equal(a.features[m], b.features[m]) for m in a.features)


def _same_input(a: object, b: object) -> bool:
    if isinstance(a, Signal) and isinstance(b, Signal):
        return a.sfreq == b.sfreq and np.array_equal(a.data, b.data)
    return a == b
