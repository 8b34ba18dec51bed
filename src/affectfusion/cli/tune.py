"""``tune``: hyperparameter search over a config's ``search:`` space (Optuna), then seeds of the best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from affectfusion.cli.common import SetOption, console, err_console
from affectfusion.config import load_config, parse_set_options
from affectfusion.errors import AffectFusionError


def tune(
    config: Annotated[str, typer.Argument(help="YAML config file with a search: space, or a shipped config's name")],
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Tune folder (default runs/<config name>_tune)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start a new study instead of resuming the one there")] = False,
    trials: Annotated[int, typer.Option(help="Trials that complete or are pruned, in all (resumed ones count)")] = 20,
    timeout: Annotated[float | None, typer.Option(help="Start no trial after this many seconds")] = None,
    jobs: Annotated[int, typer.Option(help="Trials in parallel worker processes (at most the free cores)")] = 1,
    sampler: Annotated[str, typer.Option(help="tpe (Optuna's TPE) or random")] = "tpe",
    seed: Annotated[int, typer.Option(help="Seed of the sampler (each trial trains with the config's train.seed)")] = 0,
    storage: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the study, shared by processes or machines (default: SQLite in --out)"),
    ] = None,
    study_name: Annotated[str | None, typer.Option(help="Study name in --storage (default: the config's name)")] = None,
    seeds: Annotated[
        int, typer.Option(help="Train the best config K more times (seeds 1..K); mean ± std on the test split")
    ] = 0,
    prune: Annotated[bool, typer.Option(help="Median pruning on the per-epoch validation metric")] = True,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow store when train.track lists mlflow (default runs/mlruns)")
    ] = None,
) -> None:
    """Search the config's `search:` space with Optuna, selecting on the validation split only.

    Every trial is an ordinary run folder in <out>/trials/trial<k>/ (pruned trials keep no checkpoint).
    The best trial's full config is written to <out>/best.yaml; `--seeds K` trains it K more times and
    reports mean ± std on the test split. <out>/tune.md has the trials table, the optimisation history
    and the parameter importances. Re-running the same command resumes the study: a trial interrupted
    by a kill is run again, none is lost or repeated.
    """
    from affectfusion.recipes import config_kind  # deferred: the recipes load torch

    try:
        from affectfusion.recipes.tune import TuneOptions  # deferred: Optuna, an optional extra
        from affectfusion.recipes.tune import tune as run_tune
    except ModuleNotFoundError as e:
        if e.name != "optuna":
            raise
        raise AffectFusionError("affectfusion tune needs Optuna: pip install affectfusion[tune]") from None

    kind = config_kind(config)
    if kind != "fusion":
        raise AffectFusionError(f"tune searches fusion configs, not a {kind!r} config")
    overrides = parse_set_options(set_)
    if tracking_uri is not None:
        overrides["train.tracking_uri"] = tracking_uri
    cfg = load_config(config, overrides)
    from affectfusion.rundir import SeedPaths, TunePaths, default_run_dir  # numpy: not for --help

    out = out or default_run_dir(cfg.name, "tune")
    options = TuneOptions(trials, storage, study_name, sampler, seed, prune, timeout, jobs, seeds)
    summary = run_tune(cfg, out, options, overwrite, err_console)
    print_summary(summary)
    if summary.get("seeds"):  # the same seed aggregate as train --seeds (significance, plots)
        from affectfusion.analysis.seed_report import aggregate_seeds  # deferred: scipy, matplotlib
        from affectfusion.analysis.seeds import group_by_variant

        runs = [Path(r) for r in summary["seeds"]["runs"]]
        aggregate_seeds(group_by_variant(runs), SeedPaths(TunePaths(out).best_seeds).aggregate.root)
    err_console.print(f"tune folder: {out} (report: {TunePaths(out).report})")


def print_summary(summary: dict) -> None:
    best, seeds = summary.get("best"), summary.get("seeds")
    counts = summary["counts"]
    console.print(
        f"{counts['complete'] + counts['pruned']} of {summary['trials_requested']} trials finished "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed)"
    )
    if best is None:
        return
    console.print(
        f"best: trial {best['number']}, {summary['monitor']} {best['value']:.4f} on {summary['val_split']}"
        + (f" ({best['ties']} trials tie)" if best["ties"] > 1 else "")
    )
    if seeds:
        table = Table(title=f"best config, {len(seeds['seeds'])} seeds, on {seeds['split']}")
        table.add_column("metric")
        table.add_column("mean ± std", justify="right")
        for metric, v in seeds["metrics"].items():
            if v["mean"] is not None:
                table.add_row(metric, f"{v['mean']:.4f} ± {v['std']:.4f}")
        console.print(table)
