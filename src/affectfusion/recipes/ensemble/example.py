"""A tiny ensemble: the fusion kind's tiny run trained with two seeds (about 4 s on a CPU)."""

from __future__ import annotations

from pathlib import Path

import yaml

from affectfusion.recipes.fusion.example import example as fusion_example
from affectfusion.runkinds import KindExample


def example(folder: Path) -> KindExample:
    """Write the member config and the ensemble config into ``folder``; the input is the member's."""
    member = fusion_example(folder)
    config = {"kind": "ensemble", "name": "tiny_ensemble", "config": Path(member.config).name, "seeds": [0, 1]}
    path = Path(folder) / "tiny_ensemble.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return KindExample(str(path), dict(member.overrides), member.inputs)
