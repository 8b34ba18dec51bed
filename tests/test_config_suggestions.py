"""Typos get a suggestion: a config name close to a shipped one, a config key close to a known one; and a
key mistyped in ``--set`` is blamed on that option, not on the YAML file it was applied to."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from affectfusion.config import load_config
from affectfusion.errors import AffectFusionError
from tests.helpers import run_cli, tiny_config


def test_a_mistyped_config_name_is_suggested_first(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", "ravdes_speech"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    message = " ".join(err.split())
    assert "did you mean ravdess_speech" in message
    assert message.index("did you mean") < message.index("shipped configs:")
    with pytest.raises(AffectFusionError) as info:
        load_config("completely_unrelated_name")
    assert "did you mean" not in str(info.value), "no suggestion when nothing is close"


def test_a_mistyped_set_key_names_the_option_and_the_close_key(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", "ravdess_speech", "--set", "train.epoch=5"], capsys, monkeypatch)
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert "--set train.epoch" in message and "did you mean 'train.epochs'" in message
    assert "ravdess_speech.yaml" not in message, "the shipped file is not what was mistyped"


def test_a_set_value_error_names_the_option() -> None:
    with pytest.raises(AffectFusionError, match=r"^--set train\.epochs: Input should be a valid integer"):
        load_config("demo", {"train.epochs": "many"})
    with pytest.raises(AffectFusionError, match=r"^--set train: unknown config key 'train\.epoch' \(did you"):
        load_config("demo", {"train": {"epoch": 3}})


def test_a_key_mistyped_in_a_file_is_blamed_on_the_file_with_suggestions(tmp_path: Path) -> None:
    raw = tiny_config().to_dict()
    raw["train"]["epoch"] = 5
    raw["tasks"][0]["clases"] = ["a"]
    raw["data"]["extract"] = {"text": {"name": "lexicon", "optionz": {}}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(AffectFusionError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "--set" not in message
    assert "unknown config key 'train.epoch' (did you mean 'train.epochs'?)" in message
    assert "unknown config key 'tasks.0.clases' (did you mean 'tasks.0.classes'" in message
    assert "'data.extract.text.optionz' (did you mean 'data.extract.text.options'?)" in message
