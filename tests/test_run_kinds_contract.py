"""Every registered run kind honours the same contract: its tiny example trains through
``affectfusion train`` (the registry, no special case), the folder is detected as that kind, its
predictor loads and predicts one input, and its dashboard backend builds and summarises the run.

A kind without a recipe or a tiny example fails here (it is not skipped). Each kind is trained once
per session; the vision-language one on a tiny random BLIP-2 (a few seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from affectfusion.recipes import config_kind
from affectfusion.runkinds import KindExample, get_run_kind, list_run_kinds, run_kind_of
from affectfusion.serve.base import Prediction, RunPredictor
from affectfusion.serve.dashboard.backends import Backend, load_backend
from affectfusion.serve.predictor import load_predictor
from tests.helpers import call_cli

KINDS = list_run_kinds()
_TRAINED: dict[str, tuple[Path, KindExample]] = {}


def set_args(overrides: dict[str, object]) -> list[str]:
    """``--set key=value`` for each override (values as YAML: JSON scalars, strings as they are)."""
    args = []
    for key, value in overrides.items():
        args += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def trained(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KindExample]:
    """The kind's example, trained once with ``affectfusion train``: (run folder, example)."""
    if name not in _TRAINED:
        kind = get_run_kind(name)
        assert kind.example is not None, f"run kind {name!r} has no tiny example (RunKind.example)"
        base = tmp_path_factory.mktemp(f"kind_{name}")
        example = kind.resolve("example")(base / "example")
        out = base / "run"
        assert call_cli(["train", example.config, "--out", str(out), *set_args(example.overrides)]) == 0
        _TRAINED[name] = (out, example)
    return _TRAINED[name]


def test_the_built_in_kinds_are_registered() -> None:
    assert KINDS[:3] == ["fusion", "specialists", "vlm"], "fusion first: it is tried last"


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_has_a_recipe_and_a_tiny_example(name: str) -> None:
    kind = get_run_kind(name)
    assert kind.train is not None, f"run kind {name!r} has no recipe (RunKind.train)"
    assert kind.example is not None, f"run kind {name!r} has no tiny example (RunKind.example)"


@pytest.mark.parametrize("name", KINDS)
def test_a_trained_example_is_detected_loaded_and_predicts(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, example = trained(name, tmp_path_factory)
    assert config_kind(example.config) == name
    assert run_kind_of(out).name == name
    predictor = load_predictor(out)
    assert isinstance(predictor, RunPredictor)
    assert predictor.modalities and predictor.info()["tasks"]
    prediction = predictor.predict_one(example.inputs, "x")
    assert isinstance(prediction, Prediction) and prediction.id == "x"
    assert prediction.error is None, prediction.error
    assert set(prediction.tasks) <= {t["name"] for t in predictor.info()["tasks"]} and prediction.tasks
    if not predictor.supports_explain:
        return
    explained = predictor.predict_one(example.inputs, "x", explain=True)
    assert explained.error is None and explained.tasks.keys() == prediction.tasks.keys()


@pytest.mark.parametrize("name", KINDS)
def test_a_trained_example_has_a_dashboard_backend(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, _ = trained(name, tmp_path_factory)
    backend = load_backend(out)
    assert isinstance(backend, Backend)
    assert backend.slots(), "the Analyse page needs at least one input"
    assert backend.summary() and backend.usage()


def test_train_reads_the_config_once(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kind is found and the run trained (here: answered as already trained) from one read of the file."""
    import affectfusion.config.files as files

    out, example = trained("fusion", tmp_path_factory)
    reads: list[Path] = []
    real = files.load_raw

    def counted(path: str | Path) -> dict[str, object]:
        reads.append(Path(path).resolve())
        return real(path)

    monkeypatch.setattr(files, "load_raw", counted)
    assert call_cli(["train", example.config, "--out", str(out), *set_args(example.overrides)]) == 0
    assert reads.count(Path(example.config).resolve()) == 1, reads
