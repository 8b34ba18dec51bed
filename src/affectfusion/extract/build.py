"""The one way to make an extractor: a registered name and its options -> a validated instance.

The registry imports every extractor module on its first lookup, so a fresh worker process can build
any of them. Training (through the feature store) and serving both build here.
"""

from __future__ import annotations

import functools
import json

from affectfusion.extract.base import EXTRACTORS, Extractor
from affectfusion.registry import validate_options


def build_extractor(name: str, options: dict, where: str, device: str | None = None) -> Extractor:
    """A new extractor; ``where`` names the config path in validation errors; ``device``: where model-based
    extractors run (``auto``/None = CUDA if available, else CPU)."""
    cls = EXTRACTORS.get(name)
    return cls(name, validate_options(cls, options, where), device=device)


@functools.lru_cache(maxsize=16)
def shared_extractor(name: str, options_json: str, where: str, device: str | None = None) -> Extractor:
    """One extractor (and one loaded model) per setting for the whole process: train, dev and test
    splits are extracted one after another, and a text model should not load three times."""
    return build_extractor(name, json.loads(options_json), where, device)
