"""The ``fusion`` run kind: a multimodal fusion run (config.yaml + meta.json + checkpoints).

``recipe`` trains a config (each variant, each seed) and compares; ``train`` is ``affectfusion train``
for it (``--fusion``, ``--seeds``, a finished run answered before torch loads); ``example`` is the tiny
run of the contract test. Its predictor, :class:`affectfusion.serve.predictor.Predictor`, and the
dashboard's :class:`~affectfusion.serve.dashboard.backends.PredictorBackend` stay in ``serve``: every
serving path and the specialists composition build on them.

Kinds are tried newest registration first, so ``fusion`` -- the plain run, registered first -- is
tried last; when it does not match either, its ``diagnose`` says why in one line (no config, not trained).
"""

from __future__ import annotations

from pathlib import Path

from affectfusion.rundir import RunPaths, declared_kind
from affectfusion.runkinds import RunKind


def fusion_run_problem(run_dir: Path) -> str | None:
    """Why ``run_dir`` is no trained plain run (no ``kind`` or ``kind: fusion``), or None when it is one."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        return f"{run_dir} is not a run directory (expected {paths.config.name} in it)"
    kind = declared_kind(paths.root)
    if kind is None:
        return f"{paths.config}: not readable YAML (a run's config is a YAML mapping)"
    if kind != "fusion":
        return f"{paths.config}: unknown run kind {kind!r}"
    if not paths.meta.is_file():
        return f"{run_dir} is not a trained run (expected {paths.meta.name} next to {paths.config.name})"
    return None


def is_fusion_run(run_dir: Path) -> bool:
    """A trained plain run: tried last, so a folder of no other kind gets :func:`fusion_run_problem`'s reason."""
    return fusion_run_problem(run_dir) is None


KIND = RunKind(
    "fusion",
    is_fusion_run,
    "affectfusion.serve.predictor:Predictor.load",
    "affectfusion.serve.dashboard.backends:PredictorBackend",
    train="affectfusion.recipes.fusion.train:train_kind",
    example="affectfusion.recipes.fusion.example:example",
    options=("fusion", "seeds"),
    description="a multimodal fusion run (config.yaml + meta.json + checkpoints)",
    diagnose=fusion_run_problem,
)
