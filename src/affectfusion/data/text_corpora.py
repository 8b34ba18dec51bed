"""Text emotion corpora in their published layouts (``shared/data``): one sample per utterance or post.

Each adapter puts the text in ``raw["text"]``, so a config's ``data.extract: {text: ...}`` turns it
into features. A row with empty text is kept with empty text: the extractor then reports it, one line
in the failure report naming ``source`` (``<file>:<row>``, the header counting as row 1), instead of
the whole split failing to load.
"""

from __future__ import annotations

import ast
import re
from abc import abstractmethod
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import pandas as pd
from pydantic import Field, field_validator

from affectfusion.data import examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError


def _split_file(folder: Path, split: str, suffix: str) -> Path:
    """``<folder>/<split><suffix>``; a missing file is an error listing the files that do exist."""
    path = folder / f"{split}{suffix}"
    if path.is_file():
        return path
    raise _missing(path, folder)


def _missing(path: Path, folder: Path) -> AffectFusionError:
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return AffectFusionError(f"{path} does not exist; files in {folder}: {', '.join(found) or 'none'}")


def _read_csv(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """Rows as strings (empty cells stay ``""``, never NaN), checked to have ``columns``."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AffectFusionError(f"{path} could not be read as a UTF-8 CSV file: {detail}") from None
    missing = [c for c in dict.fromkeys(columns) if c not in table.columns]
    if missing:
        raise AffectFusionError(f"{path}: missing column(s) {missing}; it has {list(table.columns)}")
    return cast(list[dict[str, str]], table.to_dict("records"))  # read with dtype=str


def _number(value: str, where: str) -> float | None:
    """A continuous rating; an empty cell is unlabelled, anything else non-numeric is an error."""
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise AffectFusionError(f"{where}: {value!r} is not a number") from None


def _int(value: str, column: str, where: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise AffectFusionError(f"{where}: column {column!r} = {value!r} is not an integer") from None


class _TextOptions(DatasetAdapter.Options):
    extra_views: list[str] = Field(
        default_factory=list,
        description="more modality names that get the same text, so several extractors can read it "
        "(e.g. [lexicon] with data.extract: {text: {name: minilm}, lexicon: {name: lexicon}})",
    )

    @field_validator("extra_views")
    @classmethod
    def _distinct(cls, views: list[str]) -> list[str]:
        if len(set(views)) != len(views) or "text" in views:
            raise ValueError(f"extra_views must be distinct names other than 'text', got {views}")
        return views

    def raw(self, text: str) -> dict[str, str]:
        """``raw`` of a sample: the text under ``text`` and every extra view."""
        return dict.fromkeys(["text", *self.extra_views], text)


class _DialogueOptions(_TextOptions):
    context: int = Field(
        0,
        ge=0,
        description="prepend the previous k utterances of the same dialogue, one 'Speaker: text' line each; "
        "the utterance itself then follows as 'Speaker: text' (an empty utterance stays empty)",
    )
    group_by: Literal["dialogue", "speaker"] = Field(
        "dialogue", description="sample group, for group-disjoint splits and analysis"
    )
    targets: dict[str, str] = Field(default_factory=dict, description="task name -> CSV column")


class _DialogueCsvAdapter(DatasetAdapter):
    """Utterance CSVs of TV dialogues: one sample per row, in file order, with optional preceding context."""

    text_column: ClassVar[str] = "Utterance"
    speaker_column: ClassVar[str] = "Speaker"
    utterance_column: ClassVar[str] = "Utterance_ID"
    dialogue_columns: ClassVar[tuple[str, ...]]
    # True if dialogue numbers restart in every split file, so the group name needs the split.
    split_local_dialogues: ClassVar[bool] = False

    options: _DialogueOptions

    @abstractmethod
    def dialogue(self, row: dict[str, str], where: str) -> str:
        """The dialogue's name within its split file."""

    def speaker(self, value: str) -> str:
        return value.strip()

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        path = _split_file(root, split, ".csv")
        o = self.options
        columns = [self.text_column, self.speaker_column, self.utterance_column, *self.dialogue_columns]
        rows = _read_csv(path, [*columns, *o.targets.values()])
        parsed = []
        for i, row in enumerate(rows):
            where = f"{path}:{i + 2}"
            parsed.append(
                (
                    where,
                    self.dialogue(row, where),
                    _int(row[self.utterance_column], self.utterance_column, where),
                    self.speaker(row[self.speaker_column]),
                    row[self.text_column].strip(),
                    {task: row[column].strip() or None for task, column in o.targets.items()},
                )
            )
        turns: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for _, dialogue, utterance, speaker, text, _ in parsed:
            turns[dialogue].append((utterance, speaker, text))
        for dialogue_turns in turns.values():
            dialogue_turns.sort()
        samples = []
        for where, dialogue, utterance, speaker, text, targets in parsed:
            if o.context and text:
                earlier = [t for t in turns[dialogue] if t[0] < utterance][-o.context :]
                lines = [f"{s}: {t}" for _, s, t in earlier if t]
                text = "\n".join([*lines, f"{speaker}: {text}"])
            group = f"{split}/{dialogue}" if self.split_local_dialogues else dialogue
            samples.append(
                Sample(
                    id=f"{split}/{dialogue}_utt{utterance}",
                    features={},
                    targets=targets,
                    group=group if o.group_by == "dialogue" else speaker,
                    source=where,
                    raw=o.raw(text),
                    metadata={"speaker": speaker, "dialogue": dialogue},
                    order=utterance if o.group_by == "dialogue" else None,
                    speaker=speaker or None,
                )
            )
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            dup = next(s for s in samples if ids.count(s.id) > 1)
            raise AffectFusionError(f"{dup.source}: utterance {dup.id!r} appears more than once in {path}")
        return samples


@DATASETS.register("meld")
class MeldAdapter(_DialogueCsvAdapter):
    """MELD utterances (<root>/<split>.csv): text, 7 emotions + 3 sentiments, speaker, dialogue context."""

    write_example = staticmethod(examples.meld)

    class Options(_DialogueOptions):
        targets: dict[str, str] = Field(
            {"emotion": "Emotion", "sentiment": "Sentiment"},
            description="task name -> CSV column; Emotion is one of neutral, joy, surprise, anger, sadness, "
            "disgust, fear; Sentiment one of neutral, positive, negative",
        )

    dialogue_columns = ("Dialogue_ID",)
    split_local_dialogues = True
    options: Options

    def dialogue(self, row: dict[str, str], where: str) -> str:
        """``dia{D}``: with the utterance, ids end in ``dia{D}_utt{U}``, the name of the clip in MELD.Raw."""
        return f"dia{_int(row['Dialogue_ID'], 'Dialogue_ID', where)}"


@DATASETS.register("emorynlp")
class EmoryNlpAdapter(_DialogueCsvAdapter):
    """EmoryNLP Friends utterances (<root>/<split>.csv): text, 7 emotions, speaker(s), scene context."""

    write_example = staticmethod(examples.emorynlp)

    class Options(_DialogueOptions):
        targets: dict[str, str] = Field(
            {"emotion": "Emotion"},
            description="task name -> CSV column; Emotion is one of Neutral, Joyful, Scared, Mad, Peaceful, "
            "Powerful, Sad",
        )

    dialogue_columns = ("Season", "Episode", "Scene_ID")
    options: Options

    def dialogue(self, row: dict[str, str], where: str) -> str:
        """A scene is named by season, episode and scene (``s01e15c03``), unique across splits."""
        season, episode, scene = (_int(row[c], c, where) for c in self.dialogue_columns)
        return f"s{season:02d}e{episode:02d}c{scene:02d}"

    def speaker(self, value: str) -> str:
        """Speakers are stored as a Python list literal (``['Monica Geller', 'Phoebe Buffay']``)."""
        try:
            names = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value.strip()
        return ", ".join(str(n) for n in names) if isinstance(names, list | tuple) else str(names)


@DATASETS.register("goemotions")
class GoEmotionsAdapter(DatasetAdapter):
    """GoEmotions Reddit comments (<root>/<labels>/<split>.tsv + labels.txt): multi-label, a list of label names."""

    write_example = staticmethod(examples.goemotions)

    class Options(_TextOptions):
        labels: Literal["original", "ekman"] = Field(
            "original",
            description="original = 27 emotions + neutral; ekman = anger, disgust, fear, joy, "
            "neutral, sadness, surprise",
        )
        target_name: str = Field("emotions", description="task name of the list of label names")

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        folder = root / self.options.labels
        if not folder.is_dir():
            raise _missing(folder, root)
        path = _split_file(folder, split, ".tsv")
        names_file = folder / "labels.txt"
        if not names_file.is_file():
            raise _missing(names_file, folder)
        names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
        try:
            # Split on "\n" only: comments may hold other Unicode line breaks that splitlines() would cut at.
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError:
            raise AffectFusionError(f"{path} is not UTF-8 text") from None
        samples = []
        for n, line in enumerate(lines, start=1):
            line = line.rstrip("\r")
            if not line:
                continue
            where = f"{path}:{n}"
            fields = line.split("\t")
            if len(fields) != 3:
                raise AffectFusionError(f"{where}: expected 3 tab-separated fields (text, label ids, comment id)")
            text, ids, comment = fields
            labels = [self._label(i, names, where) for i in ids.split(",") if i.strip()]
            samples.append(
                Sample(
                    id=f"{split}/{comment}",
                    features={},
                    targets={self.options.target_name: labels or None},
                    group=comment,
                    source=where,
                    raw=self.options.raw(text.strip()),
                )
            )
        return samples

    @staticmethod
    def _label(value: str, names: list[str], where: str) -> str:
        try:
            return names[int(value)]
        except (ValueError, IndexError):
            raise AffectFusionError(f"{where}: label id {value!r} is not one of 0..{len(names) - 1}") from None


def _ratings(row: dict[str, str], targets: dict[str, str], where: str) -> dict[str, Any]:
    return {task: _number(row[column], f"{where} column {column!r}") for task, column in targets.items()}


@DATASETS.register("emobank")
class EmoBankAdapter(DatasetAdapter):
    """EmoBank sentences (<root>/<split>.csv, or the original emobank.csv filtered on its split column): V/A/D 1-5."""

    write_example = staticmethod(examples.emobank)

    class Options(_TextOptions):
        targets: dict[str, str] = Field(
            {"valence": "V", "arousal": "A", "dominance": "D"}, description="task name -> CSV column"
        )

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        columns = ["id", "text", *self.options.targets.values()]
        path = root / f"{split}.csv"
        if path.is_file():
            rows = list(enumerate(_read_csv(path, columns)))
        elif (root / "emobank.csv").is_file():
            path = root / "emobank.csv"
            rows = [(i, r) for i, r in enumerate(_read_csv(path, [*columns, "split"])) if r["split"] == split]
            if not rows:
                raise AffectFusionError(f"{path}: no row has split {split!r}")
        else:
            raise _missing(path, root)
        samples = []
        for i, row in rows:
            where = f"{path}:{i + 2}"
            samples.append(
                Sample(
                    id=f"{split}/{row['id']}",
                    features={},
                    targets=_ratings(row, self.options.targets, where),
                    # MASC ids are <document>_<start>_<end>; the official split is by sentence, not document.
                    group=re.sub(r"_\d+_\d+$", "", row["id"]),
                    source=where,
                    raw=self.options.raw(row["text"].strip()),
                )
            )
        return samples


@DATASETS.register("fb_valence_arousal")
class FbValenceArousalAdapter(DatasetAdapter):
    """Facebook posts (<root>/<split>.csv) rated for valence and arousal, 1-9 (mean of two raters)."""

    write_example = staticmethod(examples.fb_valence_arousal)

    class Options(_TextOptions):
        text_column: str = Field("Anonymized Message", description="CSV column holding the post")
        targets: dict[str, str] = Field(
            {"valence": "valence", "arousal": "arousal"},
            description="task name -> CSV column (Valence1/Valence2/Arousal1/Arousal2 are the single raters)",
        )

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        o = self.options
        path = _split_file(root, split, ".csv")
        samples = []
        for i, row in enumerate(_read_csv(path, ["id", o.text_column, *o.targets.values()])):
            where = f"{path}:{i + 2}"
            samples.append(
                Sample(
                    id=f"{split}/{row['id']}",
                    features={},
                    targets=_ratings(row, o.targets, where),
                    group=row["id"],
                    source=where,
                    raw=o.raw(row[o.text_column].strip()),
                )
            )
        return samples
