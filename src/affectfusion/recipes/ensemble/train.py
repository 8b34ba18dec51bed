"""``affectfusion train`` for the ensemble kind, and the ensemble ``train --seeds`` makes of its seeds.

A ``kind: ensemble`` config names either a fusion config and the seeds to train it with (the same
folders ``train CONFIG --seeds ...`` writes) or existing run folders (``members``). Either way the output
folder gets ``ensemble.json`` and the ensemble's scores on the validation and test splits beside the
members' mean ± std (``report.md``). ``cv`` over only some of a config's splits makes its folds one
ensemble the same way (:func:`serve_folds`), scored on the splits it held out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from rich.console import Console

from affectfusion.config import RunConfig, Strict, apply_overrides, format_validation_error, validate
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.ensemble.members import MAX_MEMBERS, scored_splits, write_manifest
from affectfusion.rundir import RunPaths, SeedPaths, default_run_dir
from affectfusion.runkinds import TrainRequest, TrainView


class EnsembleConfig(Strict):
    """A ``kind: ensemble`` config: ``config`` + ``seeds`` (trained here), or ``members`` (trained already)."""

    kind: Literal["ensemble"]
    name: str
    description: str = ""
    config: str | None = Field(None, description="the fusion config trained once per seed (path or shipped name)")
    seeds: list[int] | None = Field(None, min_length=1, max_length=MAX_MEMBERS)
    members: list[str] | None = Field(
        None, min_length=1, max_length=MAX_MEMBERS, description="trained run folders (relative to this file)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnsembleConfig:
        if (self.members is None) == (self.config is None):
            raise ValueError("give either config (with seeds) or members, not both")
        if self.config is not None and self.seeds is None:
            raise ValueError("config needs seeds, e.g. seeds: [0, 1, 2]")
        if self.seeds is not None and (len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        return self


def train_kind(request: TrainRequest) -> Path | None:
    """Train (or gather) the members, write the manifest, score the ensemble. ``--set`` keys of this
    config's own fields set them; any other key (``train.epochs``) is passed on to the member config."""
    fields = set(EnsembleConfig.model_fields)
    own = {k: v for k, v in request.overrides.items() if k.split(".")[0] in fields}
    passed = {k: v for k, v in request.overrides.items() if k not in own}
    try:
        cfg = EnsembleConfig.model_validate(apply_overrides(request.raw, own))
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, request.where, EnsembleConfig, own)) from None
    out = request.out or default_run_dir(cfg.name)
    folder = request.path.parent
    if cfg.members is not None:
        if passed:
            raise AffectFusionError(
                f"--set {next(iter(passed))}: an ensemble of trained members trains nothing; "
                f"it takes only its own keys ({', '.join(sorted(fields))})"
            )
        members = [(folder / m).resolve() for m in cfg.members]
        write_manifest(out, members, cfg.name, f"kind: ensemble config {request.path.name}")
        return score_ensemble(out, scored_splits(out), request.view)
    assert cfg.config is not None and cfg.seeds is not None  # checked by EnsembleConfig
    near = folder / cfg.config
    base = TrainRequest.read(
        str(near if near.is_file() else cfg.config),
        overrides=passed,
        out=out,
        overwrite=request.overwrite,
        seeds=cfg.seeds,
        leakage_allowed_by=request.leakage_allowed_by,
        view=request.view,
    )
    if base.kind.name == "fusion" and validate(base.merged, base.where, passed).variants:
        raise AffectFusionError(
            f"{request.where}: config {cfg.config!r} has variants; an ensemble's members are one model "
            "(choose one with --set variants=null and its options, or list trained runs as members)"
        )
    if base.kind.name != "fusion":
        raise AffectFusionError(
            f"{request.where}: config {cfg.config!r} is a {base.kind.name} config; ensemble members are fusion runs"
        )
    result = base.kind.train_run(base)  # the seeds, then their ensemble (serve_seeds), as train --seeds does
    if result is not None and RunPaths(out).ensemble.is_file():  # named after this config, not the member config
        from affectfusion.recipes.ensemble.evaluate import ensemble_vs_members, write_report  # pandas: when trained

        write_manifest(out, [SeedPaths(out).seed(s) for s in cfg.seeds], cfg.name, f"{request.path.name} (seeds)")
        write_report(out, ensemble_vs_members(out))
    return result


def score_ensemble(out: Path, splits: list[str], view: TrainView | None) -> Path:
    """Score the ensemble at ``out`` on ``splits``, write its report and show single run vs ensemble."""
    # deferred: torch and pandas load only when an ensemble is scored
    from affectfusion.recipes.ensemble.evaluate import (
        ensemble_vs_members,
        evaluate_ensemble,
        side_by_side,
        write_report,
    )

    for split in splits:
        evaluate_ensemble(out, split)
    report = write_report(out, ensemble_vs_members(out))
    if view is not None:
        for split in splits:
            view.table(side_by_side(out, split), "single run vs ensemble")
        view.console.print(f"ensemble report: {report}", highlight=False)
    return out


def serve_seeds(cfg: RunConfig, out: Path, seeds: list[int], run_dirs: list[Path], view: TrainView | None) -> None:
    """After ``train --seeds``: the seeds as one model (``<out>`` becomes an ensemble run), scored on the
    validation and test splits. A config with variants, or more than the member limit, is left as seeds."""
    console = view.console if view is not None else None
    why = (
        "its config has variants (one ensemble per variant: a kind: ensemble config with members)"
        if cfg.variants
        else f"more than {MAX_MEMBERS} seeds"
        if len(run_dirs) > MAX_MEMBERS
        else None
    )
    if why is not None:
        if console is not None:
            console.print(f"the seeds are not served as one ensemble: {why}", highlight=False)
        return
    write_manifest(out, run_dirs, f"{cfg.name}_ensemble", "train --seeds " + ",".join(map(str, seeds)))
    score_ensemble(out, [s for s in (cfg.data.val_split, cfg.data.test_split) if s], view)


def serve_folds(
    cfg: RunConfig, out: Path, fold_dirs: list[Path], pooled: list[str], held_out: list[str], console: Console
) -> None:
    """After ``cv`` over some of a config's splits: the fold models as one ensemble (``<out>`` becomes an
    ensemble run), scored on the config's splits that no fold trained, validated or tested on. A split that
    cannot be read is said and skipped; with none readable the folds stay folds."""
    if len(fold_dirs) > MAX_MEMBERS:
        console.print(f"the folds are not served as one ensemble: more than {MAX_MEMBERS}", highlight=False)
        return
    # deferred: torch and pandas load only when an ensemble is scored
    from affectfusion.recipes.ensemble.evaluate import (
        ensemble_vs_members,
        evaluate_ensemble,
        side_by_side,
        write_report,
    )

    write_manifest(
        out, fold_dirs, f"{cfg.name}_folds", f"cv over {', '.join(pooled)}", cfg.data.model_dump(mode="json")
    )
    scored = []
    for split in held_out:
        try:
            evaluate_ensemble(out, split)
            scored.append(split)
        except AffectFusionError as e:
            console.print(f"the fold ensemble is not scored on {split}: {e}", highlight=False)
    if not scored:
        RunPaths(out).ensemble.unlink()
        console.print("the folds are not served as one ensemble: no split they held out could be read")
        return
    report = write_report(out, ensemble_vs_members(out))
    for split in scored:
        folds, ensemble = side_by_side(out, split).drop(columns=["run", "split"]).to_dict(orient="records")
        shown = ", ".join(f"{m} {float(ensemble[m]):.3f} (folds {folds[m]})" for m in list(ensemble)[:2])
        console.print(f"fold ensemble on {split}: {shown}", highlight=False)
    console.print(f"fold ensemble report: {report}", highlight=False)
