from pathlib import Path

import pytest

from affectfusion.config import (
    apply_overrides,
    expand_variants,
    list_packaged_configs,
    load_config,
    load_raw,
    parse_set_options,
    resolve_config_path,
)
from affectfusion.errors import AffectFusionError
from affectfusion.recipes import config_kind
from tests.helpers import tiny_config


@pytest.mark.parametrize("name", list_packaged_configs())
def test_every_shipped_config_validates(name: str) -> None:
    kind = config_kind(name)
    if kind == "specialists":
        from affectfusion.recipes.specialists.config import load_specialists_config

        assert load_specialists_config(name).specialists
        return
    if kind == "vlm":
        from affectfusion.recipes.vlm.config import load_vlm_config

        assert load_vlm_config(name).name
        return
    if kind == "ensemble":
        from affectfusion.recipes.ensemble.train import EnsembleConfig

        ensemble = EnsembleConfig.model_validate(load_raw(resolve_config_path(name)))
        assert ensemble.members or load_config(ensemble.config or "").name  # a shipped one names a shipped config
        return
    cfg = load_config(name)
    assert cfg.name
    for variant in expand_variants(cfg).values():
        assert variant.model.fusion.name


def test_shipped_configs_cover_reference_systems() -> None:
    names = set(list_packaged_configs())
    assert {"demo", "mosi", "p1_v0_phq8_concat", "p1_v1_phq8_concat_ln", "p1_v2_phq8_multitask"} <= names
    assert {"p2_speech_text", "p5_eeg_audio"} <= names


def test_set_overrides_parse_yaml_scalars() -> None:
    assert parse_set_options(["train.epochs=5", "train.lr=1e-4", "data.root=/x/y", "a.b=[1, 2]"]) == {
        "train.epochs": 5,
        "train.lr": 1e-4,
        "data.root": "/x/y",
        "a.b": [1, 2],
    }
    with pytest.raises(AffectFusionError, match="key=value"):
        parse_set_options(["train.epochs"])


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(AffectFusionError, match=r"unknown config key 'train.epochz'"):
        load_config("demo", {"train.epochz": 3})


def test_data_root_override_and_variant_expansion() -> None:
    cfg = load_config("p2_speech_text", {"data.root": "/somewhere"})
    assert cfg.data.root == "/somewhere"
    variants = expand_variants(cfg)
    assert list(variants) == ["cross_attention", "concat", "gated", "weighted"]
    assert variants["gated"].model.fusion.name == "gated"
    assert variants["gated"].data.root == "/somewhere"


def test_task_validation() -> None:
    with pytest.raises(AffectFusionError, match="needs 'classes'"):
        tiny_config({"tasks": [{"name": "x", "type": "classification"}]})
    with pytest.raises(AffectFusionError, match="unknown task 'nope'"):
        tiny_config(
            {
                "tasks": [
                    {"name": "y", "type": "regression"},
                    {
                        "name": "x",
                        "type": "classification",
                        "classes": ["a", "b"],
                        "threshold_of": "nope",
                        "threshold": 1,
                    },
                ]
            }
        )


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(AffectFusionError, match="not valid YAML"):
        load_config(bad)


def test_apply_overrides_does_not_mutate() -> None:
    raw = {"a": {"b": 1}}
    out = apply_overrides(raw, {"a.c": 2})
    assert raw == {"a": {"b": 1}} and out == {"a": {"b": 1, "c": 2}}
