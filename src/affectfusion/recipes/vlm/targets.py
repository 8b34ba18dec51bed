"""Class label -> the text a vision-language model learns to write (P4's output: emotions, 6-d vector, AUs).

P4's BLIP-2 answers with the emotions it sees, a 6-dimensional emotion vector and the facial action
units (AUs) behind them. Datasets such as FER2013 have one class label per image and no AU
annotation, so the training text is built from the label alone:

- emotions: the label's basic emotion (``neutral`` for a neutral face);
- emotion vector: one-hot over :data:`EMOTIONS` (all zeros for neutral);
- action units: the EMFACS *prototype* of that emotion (:data:`PROTOTYPES`). These AUs are derived
  from the label, not annotated on the image: a model trained on them learns the textbook AU set of
  the emotion it recognises, and AU "accuracy" measured against them says nothing about the AUs
  actually present in a face.

The prototype table is the commonly cited EMFACS one (Friesen & Ekman, 1983; as tabulated in the
FACS literature): happiness 6+12, sadness 1+4+15, surprise 1+2+5+26, fear 1+2+4+5+7+20+26,
anger 4+5+7+23, disgust 9+15+16.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from affectfusion.errors import AffectFusionError

# P4's 6-d emotion vector, in this order (Ekman's six basic emotions).
EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "anger", "fear", "surprise", "disgust")
NEUTRAL = "neutral"
CANONICAL: tuple[str, ...] = (*EMOTIONS, NEUTRAL)

# FACS action unit names (Ekman, Friesen & Hager, 2002) for every AU in the prototypes.
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    12: "lip corner puller",
    15: "lip corner depressor",
    16: "lower lip depressor",
    20: "lip stretcher",
    23: "lip tightener",
    26: "jaw drop",
}

# EMFACS prototype AUs per basic emotion (see the module docstring); neutral has none.
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "anger": (4, 5, 7, 23),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    "surprise": (1, 2, 5, 26),
    "disgust": (9, 15, 16),
    NEUTRAL: (),
}

# Words a dataset label or a generated answer may use for each canonical emotion.
SYNONYMS: dict[str, str] = {
    "happiness": "happiness",
    "happy": "happiness",
    "joy": "happiness",
    "joyful": "happiness",
    "sadness": "sadness",
    "sad": "sadness",
    "anger": "anger",
    "angry": "anger",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "surprise": "surprise",
    "surprised": "surprise",
    "disgust": "disgust",
    "disgusted": "disgust",
    "neutral": NEUTRAL,
    "neutrality": NEUTRAL,
    "calm": NEUTRAL,
}

VECTOR_HEADER = f"Emotion vector ({', '.join(EMOTIONS)})"


def canonical_emotion(word: str) -> str | None:
    """The canonical emotion a word names (``happy`` -> ``happiness``), or None."""
    return SYNONYMS.get(word.strip().lower())


def au_code(au: int) -> str:
    return f"AU{au}"


def resolve_label_map(classes: Iterable[str], label_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Dataset class -> canonical emotion, from ``label_map`` first, then the built-in synonyms.

    Every class must land on one of :data:`CANONICAL`, and no two classes on the same one (the
    generated emotion could not be mapped back to a single class).
    """
    label_map = dict(label_map or {})
    out: dict[str, str] = {}
    for cls in classes:
        target = label_map.get(cls, cls)
        emotion = canonical_emotion(target)
        if emotion is None:
            raise AffectFusionError(
                f"targets.label_map: class {cls!r} maps to {target!r}, which is not one of "
                f"{', '.join(CANONICAL)} (or a synonym such as happy, angry, sad); set targets.label_map.{cls}"
            )
        out[cls] = emotion
    seen: dict[str, str] = {}
    for cls, emotion in out.items():
        if emotion in seen:
            raise AffectFusionError(
                f"targets.label_map: classes {seen[emotion]!r} and {cls!r} both map to {emotion!r}; "
                "each class needs its own emotion"
            )
        seen[emotion] = cls
    return out


def target_vector(emotion: str) -> list[float]:
    """One-hot over :data:`EMOTIONS` (all zeros for neutral)."""
    if emotion not in CANONICAL:
        raise AffectFusionError(f"unknown emotion {emotion!r}; expected one of {', '.join(CANONICAL)}")
    return [1.0 if e == emotion else 0.0 for e in EMOTIONS]


def target_text(emotion: str) -> str:
    """The answer the model learns for one canonical emotion, e.g. for happiness::

    This face exhibits: happiness. Emotion vector (happiness, sadness, anger, fear, surprise,
    disgust): [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]. Action units: AU6 (cheek raiser), AU12 (lip corner puller).
    """
    vector = ", ".join(f"{v:.1f}" for v in target_vector(emotion))
    aus = ", ".join(f"{au_code(au)} ({AU_NAMES[au]})" for au in PROTOTYPES[emotion]) or "none"
    return f"This face exhibits: {emotion}. {VECTOR_HEADER}: [{vector}]. Action units: {aus}."


def target_action_units(emotion: str) -> list[str]:
    """The prototype AU codes of an emotion (``["AU6", "AU12"]``)."""
    return [au_code(au) for au in PROTOTYPES[emotion]]


def all_target_texts() -> list[str]:
    """Every answer the targets can produce (the tiny model's tokenizer is trained on these)."""
    return [target_text(e) for e in CANONICAL]
