"""Text corpus adapters on tiny same-format fixtures, on the shared data (when present), and end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import affectfusion.data.text_corpora  # registers the adapters
import affectfusion.extract.text  # noqa: F401  (registers the extractors)
from affectfusion.config import validate
from affectfusion.data import DATASETS, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import load_dataset
from affectfusion.registry import validate_options


def load(name: str, root: Path, split: str, **options: Any) -> list[Sample]:
    cls = DATASETS.get(name)
    return cls(validate_options(cls, options, "data.options")).load(root, split)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def meld_row(dia: int, utt: int, speaker: str, text: str, emotion: str, sentiment: str) -> dict[str, Any]:
    return {
        "Sr No.": 0,
        "Utterance": text,
        "Speaker": speaker,
        "Emotion": emotion,
        "Sentiment": sentiment,
        "Dialogue_ID": dia,
        "Utterance_ID": utt,
        "Season": 1,
        "Episode": 1,
        "StartTime": "00:00:01,000",
        "EndTime": "00:00:02,000",
    }


@pytest.fixture
def meld(tmp_path: Path) -> Path:
    """Two dialogues; dialogue 0 is stored out of order and has an empty utterance."""
    write_csv(
        tmp_path / "train.csv",
        [
            meld_row(0, 0, "Ross", "Hi, everyone.", "neutral", "neutral"),
            meld_row(0, 2, "Monica", "What?!", "surprise", "negative"),
            meld_row(0, 1, "Rachel", "I got the job!", "joy", "positive"),
            meld_row(0, 3, "Ross", "", "neutral", "neutral"),
            meld_row(1, 0, "Joey", "How you doin'?", "joy", "positive"),
        ],
    )
    return tmp_path


def test_meld_samples(meld: Path) -> None:
    samples = load("meld", meld, "train")
    assert [s.id for s in samples] == [
        "train/dia0_utt0",
        "train/dia0_utt2",
        "train/dia0_utt1",
        "train/dia0_utt3",
        "train/dia1_utt0",
    ]
    assert [s.group for s in samples] == ["train/dia0"] * 4 + ["train/dia1"]
    assert samples[1].targets == {"emotion": "surprise", "sentiment": "negative"}
    assert samples[1].raw == {"text": "What?!"} and samples[1].features == {}
    assert samples[1].source == f"{meld / 'train.csv'}:3"
    assert samples[3].raw["text"] == ""  # kept, so the extractor reports it


def test_meld_context_follows_utterance_order_within_the_dialogue(meld: Path) -> None:
    samples = {s.id: s.raw["text"] for s in load("meld", meld, "train", context=2)}
    assert samples["train/dia0_utt0"] == "Ross: Hi, everyone."
    assert samples["train/dia0_utt2"] == "Ross: Hi, everyone.\nRachel: I got the job!\nMonica: What?!"
    assert samples["train/dia0_utt3"] == ""  # an empty utterance stays empty whatever its context
    assert samples["train/dia1_utt0"] == "Joey: How you doin'?"  # no context from another dialogue
    one = {s.id: s.raw["text"] for s in load("meld", meld, "train", context=1)}
    assert one["train/dia0_utt2"] == "Rachel: I got the job!\nMonica: What?!"


def test_meld_options(meld: Path) -> None:
    samples = load("meld", meld, "train", group_by="speaker", targets={"label": "Sentiment"})
    assert [s.group for s in samples] == ["Ross", "Monica", "Rachel", "Ross", "Joey"]
    assert samples[0].targets == {"label": "neutral"}
    with pytest.raises(AffectFusionError, match=r"missing column\(s\) \['Mood'\]"):
        load("meld", meld, "train", targets={"mood": "Mood"})


def test_missing_split_lists_the_files(meld: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"test\.csv does not exist; files in .*: train\.csv"):
        load("meld", meld, "test")


def test_emorynlp(tmp_path: Path) -> None:
    def row(scene: int, utt: int, speakers: str, text: str, emotion: str) -> dict[str, Any]:
        return {
            "Utterance": text,
            "Speaker": speakers,
            "Emotion": emotion,
            "Scene_ID": scene,
            "Utterance_ID": utt,
            "Season": 1,
            "Episode": 15,
            "Start_Time": "00:00:03.795",
            "End_Time": "00:00:05.004",
        }

    write_csv(
        tmp_path / "dev.csv",
        [
            row(1, 1, "['Rachel Green']", "Coffee.", "Neutral"),
            row(1, 2, "['Joey Tribbiani', 'Monica Geller']", "Thank you.", "Joyful"),
            row(2, 1, "['Ross Geller']", "Hi.", "Sad"),
        ],
    )
    samples = load("emorynlp", tmp_path, "dev", context=1)
    assert [s.id for s in samples] == ["dev/s01e15c01_utt1", "dev/s01e15c01_utt2", "dev/s01e15c02_utt1"]
    assert [s.group for s in samples] == ["s01e15c01", "s01e15c01", "s01e15c02"]
    assert samples[1].raw["text"] == "Rachel Green: Coffee.\nJoey Tribbiani, Monica Geller: Thank you."
    assert samples[1].targets == {"emotion": "Joyful"}
    assert load("emorynlp", tmp_path, "dev", group_by="speaker")[1].group == "Joey Tribbiani, Monica Geller"


@pytest.fixture
def goemotions(tmp_path: Path) -> Path:
    for labels, names in {"original": ["admiration", "anger", "neutral"], "ekman": ["anger", "joy", "neutral"]}.items():
        folder = tmp_path / labels
        folder.mkdir()
        (folder / "labels.txt").write_text("\n".join(names), encoding="utf-8")
        lines = ["Great job!\t0\tc1", "So angry\u2028and happy\t1,0\tc2", "\t2\tc3", "meh\t2\tc4"]
        (folder / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_goemotions_multilabel_names(goemotions: Path) -> None:
    samples = load("goemotions", goemotions, "dev")
    assert [s.id for s in samples] == ["dev/c1", "dev/c2", "dev/c3", "dev/c4"]
    assert [s.targets["emotions"] for s in samples] == [
        ["admiration"],
        ["anger", "admiration"],
        ["neutral"],
        ["neutral"],
    ]
    assert samples[1].raw["text"] == "So angry\u2028and happy"  # one line despite the Unicode line separator
    assert samples[2].raw["text"] == "" and samples[2].source == f"{goemotions / 'original' / 'dev.tsv'}:3"
    assert [s.group for s in samples] == ["c1", "c2", "c3", "c4"]
    ekman = load("goemotions", goemotions, "dev", labels="ekman", target_name="ekman")
    assert ekman[1].targets == {"ekman": ["joy", "anger"]}


def test_extra_views_give_the_same_text_to_more_modalities(goemotions: Path, meld: Path) -> None:
    samples = load("goemotions", goemotions, "dev", extra_views=["lexicon"])
    assert samples[1].raw == {"text": "So angry\u2028and happy", "lexicon": "So angry\u2028and happy"}
    assert set(load("meld", meld, "train", extra_views=["lexicon"])[0].raw) == {"text", "lexicon"}
    with pytest.raises(AffectFusionError, match="extra_views"):
        load("goemotions", goemotions, "dev", extra_views=["text"])


def test_goemotions_errors(goemotions: Path) -> None:
    with pytest.raises(AffectFusionError, match=r"train\.tsv does not exist; files in .*: dev\.tsv, labels\.txt"):
        load("goemotions", goemotions, "train")
    (goemotions / "original" / "bad.tsv").write_text("text\t7\tc9\n", encoding="utf-8")
    with pytest.raises(AffectFusionError, match=r"bad\.tsv:1: label id '7' is not one of 0\.\.2"):
        load("goemotions", goemotions, "bad")


def test_emobank_split_files_and_the_original_single_file(tmp_path: Path) -> None:
    rows = [
        {
            "id": "110CYL068_1036_1079",
            "split": "train",
            "V": 3.0,
            "A": 3.1,
            "D": 3.2,
            "text": "Hello there.",
            "category": "letters",
        },
        {
            "id": "SemEval_64",
            "split": "dev",
            "V": 2.2,
            "A": "",
            "D": 2.9,
            "text": "Storm hits town",
            "category": "SemEval",
        },
        {
            "id": "110CYL068_1811_1946",
            "split": "dev",
            "V": 3.25,
            "A": 2.88,
            "D": 3.12,
            "text": " ",
            "category": "letters",
        },
    ]
    single = tmp_path / "single"
    single.mkdir()
    write_csv(single / "emobank.csv", rows)
    per_split = tmp_path / "per_split"
    per_split.mkdir()
    write_csv(per_split / "dev.csv", rows[1:])
    for root, first_row in ((single, 3), (per_split, 2)):
        samples = load("emobank", root, "dev")
        assert [s.id for s in samples] == ["dev/SemEval_64", "dev/110CYL068_1811_1946"]
        assert samples[0].targets == {"valence": 2.2, "arousal": None, "dominance": 2.9}
        assert [s.group for s in samples] == ["SemEval_64", "110CYL068"]
        assert samples[1].raw["text"] == ""
        assert samples[0].source.endswith(f".csv:{first_row}")
    assert load("emobank", per_split, "dev", targets={"V": "V"})[1].targets == {"V": 3.25}
    with pytest.raises(AffectFusionError, match="no row has split 'test'"):
        load("emobank", single, "test")


def test_fb_valence_arousal(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "train.csv",
        [
            {"id": 2, "split": "train", "Anonymized Message": "thinking at charity cup", "Valence1": 5, "Valence2": 5,
             "Arousal1": 1, "Arousal2": 1, "valence": 5.0, "arousal": 1.0},
            {"id": 70, "split": "train", "Anonymized Message": "", "Valence1": 6, "Valence2": 6,
             "Arousal1": 2, "Arousal2": 2, "valence": 6.0, "arousal": 2.0},
            {"id": 71, "split": "train", "Anonymized Message": "yay", "Valence1": 8, "Valence2": "x",
             "Arousal1": 6, "Arousal2": 7, "valence": 8.0, "arousal": 6.5},
        ],
    )  # fmt: skip
    samples = load("fb_valence_arousal", tmp_path, "train")
    assert [s.id for s in samples] == ["train/2", "train/70", "train/71"]
    assert samples[0].targets == {"valence": 5.0, "arousal": 1.0}
    assert samples[1].raw["text"] == "" and samples[1].group == "70"
    with pytest.raises(AffectFusionError, match=r"train\.csv:4 column 'Valence2': 'x' is not a number"):
        load("fb_valence_arousal", tmp_path, "train", targets={"valence": "Valence2"})


def test_load_dataset_extracts_text_and_reports_the_empty_utterance(meld: Path, tmp_path: Path) -> None:
    """Adapter -> lexicon extractor -> encoded targets; the empty utterance is one failure line and left out."""
    cfg = validate(
        {
            "name": "meld_lexicon",
            "data": {
                "adapter": "meld",
                "root": str(meld),
                "extract": {"text": {"name": "lexicon"}},
                "cache_dir": str(tmp_path / "cache"),
                "bad_media": "drop_modality",
            },
            "tasks": [
                {
                    "name": "emotion",
                    "type": "classification",
                    "classes": ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"],
                }
            ],
            "train": {"progress": False},
        }
    )
    dataset = load_dataset(cfg, "train")
    assert [s.id for s in dataset.samples] == [
        "train/dia0_utt0",
        "train/dia0_utt2",
        "train/dia0_utt1",
        "train/dia1_utt0",
    ]
    assert dataset.modalities["text"].dim == 14
    assert [s.targets["emotion"] for s in dataset.samples] == [0, 2, 1, 1]
    (failures,) = (tmp_path / "cache" / "lexicon").glob("*/failures.csv")
    rows = pd.read_csv(failures).to_dict("records")
    assert rows == [{"id": "train/dia0_utt3", "source": f"{meld / 'train.csv'}:5", "error": "empty text"}]


# The shared data: split sizes and label sets as PROVENANCE.md states them.

MELD_EMOTIONS = {"neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"}


@pytest.mark.shared_data
def test_shared_meld(shared_data: Path) -> None:
    sizes = {split: load("meld", shared_data / "meld", split) for split in ("train", "dev", "test_small")}
    assert {k: len(v) for k, v in sizes.items()} == {"train": 9407, "dev": 1109, "test_small": 582}
    dev = sizes["dev"]
    assert {s.targets["emotion"] for s in dev} == MELD_EMOTIONS
    assert {s.targets["sentiment"] for s in dev} == {"neutral", "positive", "negative"}
    assert len({s.group for s in dev}) == 114
    assert len({s.id for s in sizes["train"]}) == 9407
    assert dev[0].raw["text"] == "Oh my God, he’s lost it. He’s totally lost it."
    assert load("meld", shared_data / "meld", "dev", context=1)[1].raw["text"].startswith("Phoebe: Oh my God")


@pytest.mark.shared_data
def test_shared_emorynlp(shared_data: Path) -> None:
    dev = load("emorynlp", shared_data / "emorynlp", "dev")
    assert len(dev) == 954 and len({s.id for s in dev}) == 954
    assert {s.targets["emotion"] for s in dev} == {"Neutral", "Joyful", "Scared", "Mad", "Peaceful", "Powerful", "Sad"}
    assert all("[" not in s.id for s in dev) and dev[0].raw["text"] == "Coffee."


@pytest.mark.shared_data
def test_shared_goemotions(shared_data: Path) -> None:
    original = load("goemotions", shared_data / "goemotions", "dev")
    ekman = load("goemotions", shared_data / "goemotions", "dev", labels="ekman")
    assert len(original) == len(ekman) == 5426
    assert [s.id for s in original] == [s.id for s in ekman]
    assert len({label for s in original for label in s.targets["emotions"]}) == 28
    assert {label for s in ekman for label in s.targets["emotions"]} == MELD_EMOTIONS
    assert 0.05 < sum(len(s.targets["emotions"]) > 1 for s in ekman) / len(ekman) < 0.2


@pytest.mark.shared_data
def test_shared_dimensional_sets(shared_data: Path) -> None:
    emobank = load("emobank", shared_data / "emobank", "dev")
    assert len(emobank) == 1000
    for task in ("valence", "arousal", "dominance"):
        values = [s.targets[task] for s in emobank]
        assert all(1 <= v <= 5 for v in values) and 2.8 < sum(values) / len(values) < 3.2
    fb = load("fb_valence_arousal", shared_data / "fb_valence_arousal", "train")
    assert len(fb) == 1883
    assert [s.id for s in fb if not s.raw["text"]] == ["train/70"]  # the one empty post, kept
    assert all(1 <= s.targets["valence"] <= 9 and 1 <= s.targets["arousal"] <= 9 for s in fb)
