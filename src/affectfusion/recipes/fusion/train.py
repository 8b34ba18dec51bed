"""``affectfusion train`` for the fusion kind: one fusion (``--fusion``), once or per seed (``--seeds``).

A finished run is answered from its files before torch loads; torch, the trainer and pandas load only
when something is trained or a table is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from affectfusion.config import RunConfig, apply_overrides, fusion_overrides, validate
from affectfusion.rundir import SeedPaths, SweepPaths, default_run_dir
from affectfusion.runkinds import TrainRequest, TrainView
from affectfusion.training.resume import all_finished


def train_kind(request: TrainRequest) -> Path | None:
    """Train the request's config (each variant; one fusion strategy with ``--fusion``; every seed with
    ``--seeds``) into ``--out`` (default ``runs/<name>[_<fusion>]``), resuming what is there."""
    overrides = request.overrides
    if request.fusion:
        overrides = {**fusion_switch(request.raw, request.fusion), **overrides}
    cfg = validate(apply_overrides(request.raw, overrides), request.where, overrides)
    out = request.out or default_run_dir(cfg.name, request.fusion or "")
    view = request.view
    console = view.console if view is not None else Console(stderr=True)
    if request.seeds is not None:
        return train_seeds(cfg, out, request.seeds, request.overwrite, request.leakage_allowed_by, view)
    if not request.overwrite and all_finished(cfg, out):  # read from the run's files, before torch loads
        already_trained(cfg, out, console, view)
        return out
    from affectfusion.recipes.fusion.recipe import train_config  # torch and the trainer: only when training

    df = train_config(cfg, out, request.overwrite, console, request.leakage_allowed_by)
    if view is None:
        return out
    if df is not None:
        view.table(df, f"{cfg.name}: comparison ({SweepPaths(out).comparison.root})")
    else:
        show_split_metrics(cfg, out, view)
    return out


def fusion_switch(raw: dict[str, Any], fusion: str) -> dict[str, object]:
    """Overrides for ``--fusion``: that strategy alone, without the options of the config's own one."""
    return {**fusion_overrides(raw, fusion), "variants": None}


def show_split_metrics(cfg: RunConfig, run_dir: Path, view: TrainView) -> None:
    """The scores of the run's last-scored split (the test split, else the validation split), with its size."""
    import pandas as pd  # heavy: loaded only when a run was trained

    from affectfusion.io import read_json
    from affectfusion.rundir import RunPaths

    split = cfg.data.test_split or cfg.data.val_split
    path = RunPaths(run_dir).metrics(split)
    if not path.is_file():  # e.g. a non-main DDP rank
        return
    metrics = read_json(path)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    which = "test" if split == cfg.data.test_split else "validation (no data.test_split)"
    view.table(
        pd.DataFrame([{"run": run_dir.name, **scalars}]),
        f"{cfg.name}: {which} split {split!r}, {metrics.get('n', '?')} samples, best checkpoint",
    )


def already_trained(cfg: RunConfig, out: Path, console: Console, view: TrainView | None) -> None:
    """What ``train`` says for a finished run: that it is done, and a config with variants its comparison."""
    console.print(f"[green]{out} is already trained[/]; use --overwrite to train again", highlight=False)
    if cfg.variants and view is not None:
        import pandas as pd  # the comparison table only

        comparison = SweepPaths(out).comparison
        view.table(pd.read_csv(comparison.table), f"{cfg.name}: comparison ({comparison.root})")


def train_seeds(
    cfg: RunConfig, out: Path, seeds: list[int], overwrite: bool, allowed_by: str | None, view: TrainView | None
) -> Path | None:
    """Train every seed (resumable), aggregate over seeds into <out>/seeds and show it, then score the seeds
    as one ensemble (``<out>/ensemble.json``, ``<out>/eval/``) beside their mean ± std."""
    # deferred: torch, scipy and matplotlib load only when training seeds
    from affectfusion.analysis.seed_report import aggregate_seeds
    from affectfusion.analysis.seeds import group_by_variant
    from affectfusion.recipes.ensemble.train import serve_seeds
    from affectfusion.recipes.fusion.recipe import train_seeds as train_each
    from affectfusion.training.distributed import init_distributed

    run_dirs = train_each(cfg, out, seeds, overwrite, allowed_by)
    if not init_distributed().is_main:
        return None
    aggregate = SeedPaths(out).aggregate
    summary, pairwise = aggregate_seeds(group_by_variant(run_dirs), aggregate.root)
    if view is not None:
        view.seed_summary(summary, pairwise)
        view.console.print(f"seed aggregate: {aggregate.report}", highlight=False)
    serve_seeds(cfg, out, seeds, run_dirs, view)  # the seeds as one model: <out> is an ensemble run
    return out
