"""Tiny random Hugging Face speech and vision backbones, built from their configs and saved like a user's
local folders (nothing is downloaded): the hf_audio, hf_image and hf_audio_lora tests run on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectfusion.extract.tiny_models import (  # noqa: F401  (re-exported for the tests)
    SPEECH_FAMILIES,
    VISION_FAMILIES,
    save_speech_model,
    save_vision_model,
)


@pytest.fixture(scope="session")
def tiny_speech(tmp_path_factory: pytest.TempPathFactory):
    """family -> folder of a tiny random speech model (built once per session and family)."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = save_speech_model(family, tmp_path_factory.mktemp(family.replace("-", "_")))
        return made[family]

    return get


@pytest.fixture(scope="session")
def tiny_vision(tmp_path_factory: pytest.TempPathFactory):
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = save_vision_model(family, tmp_path_factory.mktemp(family))
        return made[family]

    return get
