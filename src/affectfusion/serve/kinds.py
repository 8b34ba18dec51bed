"""How the built-in run kinds are recognised (the ``detect`` of :mod:`affectfusion.runkinds`' entries).

Kinds are tried newest registration first, so ``fusion`` -- the plain run, registered first -- is
tried last; when it does not match either, its test says why in one line (no config, not trained).
"""

from __future__ import annotations

from pathlib import Path

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths, SpecialistsPaths, declared_kind


def is_fusion_run(run_dir: Path) -> bool:
    """A plain run (no ``kind`` or ``kind: fusion``) with its metadata; else the reason it is none."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise AffectFusionError(f"{run_dir} is not a run directory (expected {paths.config.name} in it)")
    kind = declared_kind(paths.root)
    if kind is None:
        raise AffectFusionError(f"{paths.config}: not readable YAML (a run's config is a YAML mapping)")
    if kind != "fusion":
        raise AffectFusionError(f"{paths.config}: unknown run kind {kind!r}")
    if not paths.meta.is_file():
        raise AffectFusionError(
            f"{run_dir} is not a trained run (expected {paths.meta.name} next to {paths.config.name})"
        )
    return True


def is_specialists_run(run_dir: Path) -> bool:
    """The output folder of a ``kind: specialists`` config whose fusion stage is trained."""
    if declared_kind(Path(run_dir)) != "specialists":
        return False
    fusion = RunPaths(SpecialistsPaths(Path(run_dir)).fusion)
    if not fusion.meta.is_file():
        raise AffectFusionError(
            f"{run_dir} is a specialists run whose fusion is not trained yet (expected {fusion.meta} in it); "
            f"run `affectfusion train {RunPaths(Path(run_dir)).config} --out {run_dir}` to finish it"
        )
    return True


def is_vlm_run(run_dir: Path) -> bool:
    return declared_kind(Path(run_dir)) == "vlm"
