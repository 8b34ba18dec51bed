"""Training recipes (torchtune-style): one per run kind, apart from the components they use.

A config's top-level ``kind`` picks the recipe. Recipes are named as ``module:function`` and
imported only when used, so listing them costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from affectfusion.config import load_raw, resolve_config_path
from affectfusion.errors import AffectFusionError

# A recipe takes (config name or path, --set overrides, --out, --overwrite) and returns its run directory.
RecipeFn = Callable[[str, dict[str, Any], Path | None, bool], Path]

RECIPES: dict[str, str] = {
    "specialists": "affectfusion.recipes.specialists:train_specialists",
    "vlm": "affectfusion.vlm.train:train_vlm",
}


def config_kind(config: str) -> str:
    """``fusion`` (a RunConfig) unless the YAML names another kind (``kind: specialists``, ``kind: vlm``)."""
    kind = load_raw(resolve_config_path(config)).get("kind", "fusion")
    if kind != "fusion" and kind not in RECIPES:
        raise AffectFusionError(f"config {config}: unknown kind {kind!r} (expected fusion, {', '.join(RECIPES)})")
    return kind


def get_recipe(kind: str) -> RecipeFn:
    module, _, attr = RECIPES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)
