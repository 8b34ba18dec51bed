"""The IEMOCAP adapter on a small copy in the release layout: the 4-class map merges excited into happy
and leaves other labels out (or keeps them unlabelled), V/A/D ratings, words and metadata per utterance,
speaker groups, and clear errors for a folder that is not the release."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectfusion.data import DATASETS
from affectfusion.data.examples.iemocap import make_iemocap
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options


def _load(root: Path, split: str = "train", **options) -> list:
    cls = DATASETS.get("iemocap")
    return cls(validate_options(cls, options, "options")).load(root, split)


def test_four_classes_with_excited_merged_into_happy(tmp_path: Path) -> None:
    root = make_iemocap(tmp_path, sessions=2, per_speaker=7)
    raw = _load(root, sessions={"train": [1, 2]}, label_map=None)
    mapped = _load(root, sessions={"train": [1, 2]})
    codes = {s.id: s.targets["emotion"] for s in raw}
    assert {"exc", "fru", "xxx"} <= set(codes.values())
    for s in mapped:
        expected = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}[codes[s.id]]
        assert s.targets["emotion"] == expected
    assert len(mapped) == sum(c in ("neu", "hap", "exc", "sad", "ang") for c in codes.values())
    kept = _load(root, sessions={"train": [1, 2]}, keep_unmapped=True)
    assert len(kept) == len(raw) and sum(s.targets["emotion"] is None for s in kept) == len(raw) - len(mapped)


def test_utterance_metadata_words_ratings_and_speaker_groups(tmp_path: Path) -> None:
    root = make_iemocap(tmp_path, sessions=1, per_speaker=7)
    samples = _load(root, sessions={"train": [1]})
    s = next(s for s in samples if s.id == "Ses01F_impro01_M000")
    assert s.group == "Ses01M" and s.metadata == {
        "session": "Ses01",
        "speaker": "Ses01M",
        "gender": "male",
        "dialogue": "Ses01F_impro01",
        "type": "improvised",
    }
    assert s.raw["audio"] == root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"
    assert s.raw["audio"].is_file() and isinstance(s.raw["text"], str) and s.raw["text"]
    assert all(1.0 <= s.targets[t] <= 5.0 for t in ("valence", "arousal", "dominance"))
    assert {x.group for x in samples} == {"Ses01F", "Ses01M"}


def test_not_the_release_or_unknown_split_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="EmoEvaluation") as info:
        _load(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    make_iemocap(tmp_path / "r", sessions=1)
    with pytest.raises(AffectFusionError, match="'valid'"):
        _load(tmp_path / "r", "valid")
