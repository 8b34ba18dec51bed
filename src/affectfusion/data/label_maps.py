"""Label maps: one common label space for corpora that name emotions differently.

A map is YAML with ``classes`` (the common space) and ``aliases`` (common class -> the labels of
any corpus that mean it, matched case-insensitively)::

    name: common6
    classes: [anger, disgust, fear, happiness, sadness, neutral]
    aliases:
      anger: [anger, angry, W]
      ...

``common6`` and ``common7`` ship with the package (``label_maps/``); any other YAML file of this
form is a user map. A label no alias names maps to ``None``: callers report it, never drop it silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from affectfusion.errors import AffectFusionError

SHIPPED_MAPS = Path(__file__).resolve().parents[1] / "label_maps"


@dataclass(frozen=True)
class LabelMap:
    name: str
    classes: list[str]
    aliases: dict[str, str]  # lower-cased corpus label -> common class

    def map(self, label: object) -> str | None:
        """The common class of a corpus label, or None if the map has no counterpart for it."""
        return None if label is None else self.aliases.get(str(label).strip().lower())

    def unmapped(self, labels: Iterable[object]) -> list[str]:
        """The labels among ``labels`` with no counterpart, in first-seen order."""
        return list(dict.fromkeys(str(x) for x in labels if self.map(x) is None))


def shipped_label_maps() -> list[str]:
    return sorted(p.stem for p in SHIPPED_MAPS.glob("*.yaml"))


def load_label_map(name_or_path: str | Path) -> LabelMap:
    """A shipped map by name (``common6``, ``common7``) or a user map from a YAML file."""
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        shipped = SHIPPED_MAPS / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise AffectFusionError(
                f"label map {str(name_or_path)!r} is neither a YAML file nor a shipped map "
                f"({', '.join(shipped_label_maps())})"
            )
        path = shipped
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise AffectFusionError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), list) or not raw["classes"]:
        raise AffectFusionError(f"{path}: expected a mapping with a non-empty 'classes' list")
    classes = [str(c) for c in raw["classes"]]
    aliases_raw = raw.get("aliases") or {}
    if not isinstance(aliases_raw, dict):
        raise AffectFusionError(f"{path}: 'aliases' must map each class to a list of labels")
    aliases: dict[str, str] = {c.lower(): c for c in classes}
    for common, labels in aliases_raw.items():
        if common not in classes:
            raise AffectFusionError(f"{path}: aliases key {common!r} is not one of classes {classes}")
        if not isinstance(labels, list):
            raise AffectFusionError(f"{path}: aliases.{common} must be a list of labels")
        for label in labels:
            key = str(label).strip().lower()
            if aliases.get(key, common) != common:
                raise AffectFusionError(f"{path}: label {label!r} is an alias of both {aliases[key]!r} and {common!r}")
            aliases[key] = common
    return LabelMap(str(raw.get("name") or path.stem), classes, aliases)
