"""Content fingerprints of a sample's inputs, for finding the same input in two splits: an exact hash (the
file's bytes, the text, the feature array) and a near one that survives re-encoding (normalised text;
peak-normalised, coarsely quantised audio; an 8x8 average hash of an image; rounded features)."""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.types import LazyFeatures, Sample, Signal
from affectfusion.inputs import INPUTS

AUDIO_SUFFIXES = frozenset(INPUTS["audio"].suffixes)  # the formats the extractors read (affectfusion.inputs)
IMAGE_SUFFIXES = frozenset(INPUTS["image"].suffixes)
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_text(text: str) -> str:
    """Case, accents, punctuation and spacing removed: "Okay!!" and "okay" are the same text."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or text
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _audio_near(path: Path) -> str | None:
    import soundfile as sf  # decoding only when a dataset has audio files

    try:
        x, _ = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError):  # unreadable: no near hash, the exact one still counts
        return None
    x = x.mean(1)
    if x.size == 0:
        return None
    x = x[np.abs(x) > 1e-3 * (np.abs(x).max() + 1e-12)]  # leading / trailing silence and gain do not matter
    if x.size == 0:
        return None
    x = x / np.abs(x).max()
    coarse = np.round(np.interp(np.linspace(0, x.size - 1, 4000), np.arange(x.size), x) * 8).astype(np.int8)
    return _sha(coarse.tobytes())


def _image_near(path: Path) -> str | None:
    from PIL import Image  # decoding only when a dataset has image files

    try:
        with Image.open(path) as img:
            small = np.asarray(img.convert("L").resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float64)
    except (OSError, ValueError):  # unreadable: no near hash, the exact one still counts
        return None
    return _sha(np.packbits(small > small.mean()).tobytes())


def fingerprints(value: Any) -> tuple[str | None, str | None]:
    """(exact, near) content hashes of one modality's raw input or feature array."""
    if isinstance(value, str):
        return _sha(value.encode()), _sha(normalise_text(value).encode())
    if isinstance(value, Path):
        if not value.is_file():
            return None, None
        stat = value.stat()
        return _file_prints(str(value), stat.st_mtime_ns, stat.st_size)
    return array_prints(value.data if isinstance(value, Signal) else value)


def array_prints(x: Any) -> tuple[str, str]:
    """(exact, near) hashes of a feature array: its float32 bytes, and those rounded to 3 decimals."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    return _sha(arr.tobytes()), _sha(np.round(arr, 3).tobytes())


@functools.lru_cache(maxsize=100_000)
def _file_prints(path: str, mtime_ns: int, size: int) -> tuple[str | None, str | None]:
    """A media file's hashes, kept per file version: the folds of a cross-validation check the same files
    again in one process (decoding RAVDESS's 1080 clips took 13-29 s per check)."""
    value = Path(path)
    suffix = value.suffix.lower()
    near = _audio_near(value) if suffix in AUDIO_SUFFIXES else _image_near(value) if suffix in IMAGE_SUFFIXES else None
    return _sha(value.read_bytes()), near


def split_fingerprints(splits: dict[str, list[Sample]]) -> dict[str, dict[str, dict[str, tuple]]]:
    """split -> sample id -> modality -> (exact, near), from raw media if given, else features."""
    return {split: {s.id: _sample_prints(s) for s in samples} for split, samples in splits.items()}


def _sample_prints(s: Sample) -> dict[str, tuple]:
    """A sample's hashes; those of features held on disk were computed when they were written."""
    if isinstance(s.features, LazyFeatures):
        return {**s.features.prints(), **{m: fingerprints(v) for m, v in s.raw.items()}}
    return {m: fingerprints(v) for m, v in {**s.features, **s.raw}.items()}


def whole_sample_prints(prints: dict[str, dict[str, dict[str, tuple]]]) -> dict[str, dict[str, dict[str, tuple]]]:
    """One exact hash per sample over all its inputs (under the pseudo-modality "all inputs"): a sample of
    several modalities is a duplicate only when every input is, one shared text alone is not."""
    out: dict[str, dict[str, dict[str, tuple]]] = {}
    for split, samples in prints.items():
        out[split] = {}
        for sid, per_modality in samples.items():
            exact = sorted((m, h[0]) for m, h in per_modality.items())
            if exact and all(h is not None for _, h in exact):
                out[split][sid] = {"all inputs": (_sha(repr(exact).encode()), None)}
    return out
