"""Training recipes (torchtune-style): one per run kind, apart from the components they use.

A config's top-level ``kind`` picks the recipe; each kind is registered once, with its predictor
and dashboard, in :mod:`affectfusion.runkinds`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectfusion.config import load_raw, resolve_config_path
from affectfusion.errors import AffectFusionError
from affectfusion.runkinds import get_run_kind, list_run_kinds


def config_kind(config: str) -> str:
    """``fusion`` (a RunConfig) unless the YAML names another registered kind (``kind: specialists``)."""
    kind = load_raw(resolve_config_path(config)).get("kind", "fusion")
    if kind not in list_run_kinds():
        raise AffectFusionError(
            f"config {config}: unknown kind {kind!r} (expected one of {', '.join(list_run_kinds())})"
        )
    return kind


def train_kind(kind: str, config: str, overrides: dict[str, Any], out: Path | None, overwrite: bool) -> Path:
    """Run the recipe registered for ``kind``: (config name or path, --set overrides, --out, --overwrite) -> run dir."""
    return get_run_kind(kind).resolve("train")(config, overrides, out, overwrite)
