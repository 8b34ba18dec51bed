"""Generated text -> structured fields, tolerant of whatever a language model writes.

A generative model can stop mid-sentence, reorder sections, write ``Happy`` for ``happiness``,
give five numbers instead of six, or produce noise. The parser never raises: each field is read
from its own section when that section is there, from weaker evidence when it is not, and every
deviation is listed in ``issues``. ``parse_ok`` is True only when all three sections (emotions,
a 6-value vector, action units) were read as written by :func:`affectfusion.recipes.vlm.targets.target_text`
or an equivalent wording.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from affectfusion.recipes.vlm.targets import EMOTIONS, NEUTRAL, SYNONYMS

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_WORD = re.compile(r"[a-z]+")
# "This face exhibits: ..." / "Emotions: ..." / "emotion: ..." (not "emotion vector (...):").
_EMOTION_SECTION = re.compile(r"(?:exhibits|shows|expresses|emotions?)\s*[:=-]\s*", re.IGNORECASE)
# A section ends at a sentence end (a period not inside a number), a newline or the next section.
_SECTION_END = re.compile(r"\.(?!\d)|\n|emotion vector|action units?|\baus?\b\s*:|\[", re.IGNORECASE)
_VECTOR_SECTION = re.compile(r"(?:emotion\s+)?vector", re.IGNORECASE)
_AU_SECTION = re.compile(r"action\s+units?\s*[:=-]|\baus?\s*:", re.IGNORECASE)
_AU = re.compile(r"\bAU\s*-?\s*(\d{1,2})[A-E]?\b", re.IGNORECASE)
_NONE_WORDS = {"none", "no", "nothing", "n/a"}


@dataclass
class ParsedOutput:
    """The fields read from one generated text."""

    emotions: list[str] = field(default_factory=list)  # canonical names, in the order written
    emotion_vector: dict[str, float] = field(default_factory=dict)  # EMOTIONS -> value; empty if unreadable
    action_units: list[str] = field(default_factory=list)  # "AU6", in the order written, no repeats
    top_emotion: str | None = None  # strongest emotion, "neutral", or None if nothing usable
    parse_ok: bool = False
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _emotion_words(text: str) -> list[str]:
    """Canonical emotions named in ``text`` in order, without repeats."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        emotion = SYNONYMS.get(word)
        if emotion is not None and emotion not in out:
            out.append(emotion)
    return out


def _section(text: str, start: re.Match) -> str:
    rest = text[start.end() :]
    end = _SECTION_END.search(rest)
    return rest[: end.start()] if end else rest


def _parse_emotions(text: str, issues: list[str]) -> tuple[list[str], bool]:
    """Emotions from their section; else any emotion word outside the vector header and brackets."""
    for match in _EMOTION_SECTION.finditer(text):
        section = _section(text, match)
        found = _emotion_words(section)
        if found:
            return found, True
        if set(_WORD.findall(section.lower())) & _NONE_WORDS:
            return [NEUTRAL], True
    # Fallback: the vector header "(happiness, sadness, ...)" and bracketed numbers name every emotion.
    stripped = re.sub(r"\([^)]*\)|\[[^\]]*\]?", " ", text)
    stripped = re.sub(r"emotion vector[^:]*:", " ", stripped, flags=re.IGNORECASE)
    found = _emotion_words(stripped)
    issues.append("no emotions section" + ("; emotion words taken from the text" if found else ""))
    return found, False


def _header_order(text: str, before: int) -> list[str] | None:
    """The emotion order named in a "(a, b, ...)" header just before the vector, if it names all six."""
    header = re.search(r"\(([^)]*)\)\s*[:=]?\s*$", text[:before])
    if not header:
        return None
    names = [SYNONYMS.get(w.strip().lower()) for w in re.split(r"[,;/]", header.group(1))]
    known = [n for n in names if n]
    return known if len(known) == len(names) and sorted(known) == sorted(EMOTIONS) else None


def _to_float(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_vector(text: str, issues: list[str]) -> dict[str, float]:
    """Six numbers in brackets (after "vector" if that is written), or "happiness: 0.8"-style pairs."""
    anchor = _VECTOR_SECTION.search(text)
    search_from = anchor.end() if anchor else 0
    for bracket in re.finditer(r"\[([^\]\[]*)(\]|$)", text[search_from:]):
        numbers = [v for v in (_to_float(t) for t in re.findall(_NUMBER, bracket.group(1))) if v is not None]
        if not numbers:
            continue
        closed = bracket.group(2) == "]"
        if len(numbers) != len(EMOTIONS):
            issues.append(
                f"emotion vector has {len(numbers)} values, expected {len(EMOTIONS)}"
                + ("" if closed else " (unclosed bracket)")
            )
            return {}
        if not closed:
            issues.append("emotion vector bracket is not closed")
        order = _header_order(text, search_from + bracket.start()) or list(EMOTIONS)
        values = dict(zip(order, numbers, strict=True))
        return {e: values[e] for e in EMOTIONS}
    pairs: dict[str, float] = {}
    for name, value in re.findall(rf"\b([a-z]+)\s*[:=]\s*({_NUMBER})", text.lower()):
        emotion = SYNONYMS.get(name)
        number = _to_float(value)
        if emotion in EMOTIONS and number is not None and emotion not in pairs:
            pairs[emotion] = number
    if pairs:
        issues.append("emotion vector read from name: value pairs" + ("" if len(pairs) == 6 else "; missing as 0"))
        return {e: pairs.get(e, 0.0) for e in EMOTIONS}
    issues.append("no emotion vector")
    return {}


def _parse_action_units(text: str, issues: list[str]) -> tuple[list[str], bool]:
    aus: list[str] = []
    for match in _AU.finditer(text):
        code = f"AU{int(match.group(1))}"
        if code not in aus:
            aus.append(code)
    section = _AU_SECTION.search(text)
    if section is None:
        issues.append("no action units section" + ("; AU codes taken from the text" if aus else ""))
        return aus, False
    if not aus:
        words = set(_WORD.findall(_section(text, section).lower()))
        if not words & _NONE_WORDS:
            issues.append("action units section lists no AU codes")
            return aus, False
    return aus, True


def _top_emotion(emotions: list[str], vector: dict[str, float], issues: list[str]) -> str | None:
    """The named emotion with the largest vector value (the first named if none has one); with no
    emotion named, the vector's argmax (all zeros -> neutral)."""
    vector_top = None
    if vector:
        best = max(vector.values())
        vector_top = NEUTRAL if best <= 0 else next(e for e, v in vector.items() if v == best)
    if not emotions:
        return vector_top
    scored = [e for e in emotions if vector.get(e, 0.0) > 0]
    top = max(scored, key=lambda e: vector[e]) if scored else emotions[0]
    if vector_top is not None and vector_top != top:
        issues.append(f"the vector's top emotion {vector_top!r} differs from the named one ({top!r})")
    return top


def parse_output(text: Any) -> ParsedOutput:
    """Read emotions, the 6-d vector and action units from one generated text; never raises."""
    text = "" if text is None else str(text)
    issues: list[str] = []
    if not text.strip():
        return ParsedOutput(issues=["empty text"])
    emotions, emotions_ok = _parse_emotions(text, issues)
    vector = _parse_vector(text, issues)
    aus, aus_ok = _parse_action_units(text, issues)
    top = _top_emotion(emotions, vector, issues)
    return ParsedOutput(
        emotions=emotions,
        emotion_vector=vector,
        action_units=aus,
        top_emotion=top,
        parse_ok=emotions_ok and bool(vector) and aus_ok,
        issues=issues,
    )
