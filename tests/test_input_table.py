"""Every input format is listed once, in ``affectfusion.inputs``: the data check's suffixes, the
extractors' kinds and ``predict``'s flags are read from it, and these tests hold them to it."""

from __future__ import annotations

from typing import get_args

import typer

from affectfusion.cli.app import app
from affectfusion.data import fingerprints
from affectfusion.extract import EXTRACTORS
from affectfusion.extract.base import Extractor
from affectfusion.inputs import INPUT_KINDS, INPUTS, MediaKind


def predict_flags() -> set[str]:
    predict = typer.main.get_command(app).commands["predict"]  # type: ignore[attr-defined]
    return {opt for p in predict.params for opt in p.opts}


def test_predict_has_one_flag_per_input_kind() -> None:
    assert all(INPUTS[k].cli_flag for k in INPUT_KINDS), "every raw input kind needs a predict flag"
    flags = {v.cli_flag for v in INPUTS.values() if v.cli_flag}
    assert flags <= predict_flags(), flags - predict_flags()


def test_data_check_reads_the_formats_the_extractors_accept() -> None:
    assert set(INPUTS["audio"].suffixes) == fingerprints.AUDIO_SUFFIXES
    assert set(INPUTS["image"].suffixes) == fingerprints.IMAGE_SUFFIXES
    assert not {".gif", ".webp"} & fingerprints.IMAGE_SUFFIXES  # the face reader refuses them


def test_every_extractor_reads_a_kind_of_the_table() -> None:
    assert get_args(MediaKind) == INPUT_KINDS
    assert set(INPUT_KINDS) <= set(INPUTS)
    for name in EXTRACTORS.names():
        cls: type[Extractor] = EXTRACTORS.get(name)
        assert cls.kind in INPUT_KINDS, f"{name}: kind {cls.kind!r} is not in affectfusion.inputs"
