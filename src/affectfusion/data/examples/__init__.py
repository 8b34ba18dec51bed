"""Tiny datasets in each adapter's own on-disk format, written on demand: what the registry-wide contract
test (``tests/test_adapter_contract.py``) loads through every registered adapter, and a quick way to see
a format by example.

Declaring one is a line in the adapter class: ``write_example = staticmethod(examples.meld)``, where
the function writes a few samples under ``root`` and returns an :class:`ExampleSpec` (the options to
load them with, the split and the task names every sample carries a target for). A registered adapter
without its own ``write_example`` fails the contract test, so a new adapter cannot slip through.
Writers never download anything; media files are synthetic (see :mod:`affectfusion.data.examples.media`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExampleSpec:
    """How to load an example dataset: adapter ``options``, the ``split`` written, and the ``tasks`` whose
    targets every sample carries (a task may be unlabelled on some samples, never on all)."""

    split: str
    tasks: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows (same keys) as a UTF-8 CSV, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


_LINES = [
    ("Chandler", "I can't believe you did that, this is wonderful!", "joy", "positive"),
    ("Monica", "Why would you say that to me?", "anger", "negative"),
    ("Chandler", "Okay.", "neutral", "neutral"),
    ("Ross", "I'm scared we are going to lose it all.", "fear", "negative"),
]


def meld(root: Path) -> ExampleSpec:
    """MELD: ``<root>/train.csv`` with dialogue/utterance numbers, speaker, emotion and sentiment."""
    rows = [
        {
            "Sr No.": i + 1,
            "Utterance": text,
            "Speaker": speaker,
            "Emotion": emotion,
            "Sentiment": sentiment,
            "Dialogue_ID": i // 2,
            "Utterance_ID": i % 2,
        }
        for i, (speaker, text, emotion, sentiment) in enumerate(_LINES)
    ]
    write_csv(root / "train.csv", rows)
    return ExampleSpec("train", ("emotion", "sentiment"))


def emorynlp(root: Path) -> ExampleSpec:
    """EmoryNLP: ``<root>/dev.csv`` with season/episode/scene, a speaker list literal and the emotion."""
    emotions = ["Joyful", "Mad", "Neutral", "Scared"]
    rows = [
        {
            "Utterance": text,
            "Speaker": repr([speaker]),
            "Emotion": emotions[i],
            "Scene_ID": 1 + i // 2,
            "Utterance_ID": i % 2,
            "Season": 1,
            "Episode": 3,
        }
        for i, (speaker, text, _, _) in enumerate(_LINES)
    ]
    write_csv(root / "dev.csv", rows)
    return ExampleSpec("dev", ("emotion",))


def goemotions(root: Path) -> ExampleSpec:
    """GoEmotions: ``<root>/ekman/{labels.txt,test.tsv}``; text, comma-separated label ids, comment id."""
    folder = root / "ekman"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    (folder / "labels.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    lines = ["This made my day, thank you!\t3\tc001", "Wow, I did not see that coming\t6,3\tc002", "ok\t4\tc003"]
    (folder / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ExampleSpec("test", ("emotions",), {"labels": "ekman"})


def emobank(root: Path) -> ExampleSpec:
    """EmoBank: the original single ``<root>/emobank.csv`` with a split column and V/A/D ratings (1-5)."""
    texts = ["What a lovely morning.", "The meeting was moved to Tuesday.", "I am furious about this."]
    rows = [
        {
            "id": f"doc{i}_0_{len(t)}",
            "split": "dev",
            "V": 3.0 + (i == 0) - (i == 2),
            "A": 3.0 + 0.8 * (i == 2),
            "D": 3.0,
            "text": t,
        }
        for i, t in enumerate(texts)
    ]
    write_csv(root / "emobank.csv", [*rows, {**rows[0], "id": "doc9_0_5", "split": "train"}])
    return ExampleSpec("dev", ("valence", "arousal", "dominance"))


def fb_valence_arousal(root: Path) -> ExampleSpec:
    """Facebook valence/arousal posts: ``<root>/train.csv`` with the message and mean ratings (1-9)."""
    posts = ["Best weekend ever with my family!!", "Stuck in traffic again.", "Just had lunch."]
    rows = [
        {
            "id": i + 1,
            "split": "train",
            "Anonymized Message": p,
            "Valence1": 7 - 2 * i,
            "Valence2": 8 - 2 * i,
            "Arousal1": 6 - i,
            "Arousal2": 5,
            "valence": 7.5 - 2 * i,
            "arousal": 5.5 - i / 2,
        }
        for i, p in enumerate(posts)
    ]
    write_csv(root / "train.csv", rows)
    return ExampleSpec("train", ("valence", "arousal"))


def feature_folder(root: Path) -> ExampleSpec:
    """Pre-extracted features: a JSONL manifest with a split column, one ``.npy`` sequence per sample for
    ``audio`` and one ``.npz`` per split (id -> vector) for ``text``; one sample lacks its audio file."""
    rng = np.random.default_rng(0)
    ids = ["s1", "s2", "s3"]
    rows = [{"id": sid, "split": "train", "group": f"spk{i % 2}", "valence": 0.5 * i} for i, sid in enumerate(ids)]
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    for sid in ids[:2]:
        np.save(root / "audio" / f"{sid}.npy", rng.standard_normal((4, 6)).astype(np.float32))
    vectors: dict[str, Any] = {sid: rng.standard_normal(8).astype(np.float32) for sid in ids}  # Any: not allow_pickle
    np.savez(root / "train_text.npz", **vectors)
    options = {"manifest": "manifest.jsonl", "features": {"audio": "audio/{id}.npy", "text": "{split}_text.npz"}}
    return ExampleSpec("train", ("valence",), options)


def mosi(root: Path) -> ExampleSpec:
    """CMU-MOSI: ``<root>/dev.npz`` with two videos padded to 3 utterances (padding holds non-zero values)."""
    rng = np.random.default_rng(0)
    n, u = 2, 3
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=np.float32)
    root.mkdir(parents=True, exist_ok=True)
    label = np.where(mask == 1, rng.integers(0, 2, (n, u)), -1)
    arrays: dict[str, Any] = {m: rng.standard_normal((n, u, 50)).astype(np.float32) for m in ("text", "audio", "video")}
    np.savez(
        root / "dev.npz",
        **arrays,
        audio_raw=rng.standard_normal((n, u, 73)).astype(np.float32),
        mask=mask,
        label=label,
        source_index=np.array([4, 7]),
        source_split=np.array("dev"),
    )
    return ExampleSpec("dev", ("sentiment",))


def synthetic(root: Path) -> ExampleSpec:
    """Generated in memory (the adapter reads no folder): two small modalities, three classes."""
    modalities = {"text": {"dim": 4}, "audio": {"dim": 3, "seq_len": 2}}
    return ExampleSpec("dev", ("label",), {"modalities": modalities, "num_classes": 3, "n_eval": 6})
