"""``test``, ``compare`` and ``list``: commands that read runs and registries."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from affectfusion.cli.common import console, err_console, print_table
from affectfusion.config import PACKAGED_CONFIGS, apply_overrides, list_packaged_configs, load_raw, validate
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    from affectfusion.rundir import LoadedRun


def test(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or a folder of variant runs)")],
    data: Annotated[Path | None, typer.Option(help="Data folder in the run's format (default: data.root)")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split name (default: data.test_split, else data.val_split)")
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option(help="Score any labelled table in the run's media_table format (split name = file stem)"),
    ] = None,
    conformal: Annotated[
        float | None,
        typer.Option(help="Conformal alpha, e.g. 0.1: prediction sets / intervals with 90 % coverage, measured"),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Metadata column(s), e.g. gender,speaker (or group): metrics per subgroup")
    ] = None,
    label_map: Annotated[
        str | None,
        typer.Option(help="Cross-corpus: common6, common7 or a YAML map; --data is then another corpus"),
    ] = None,
    data_adapter: Annotated[
        str | None, typer.Option(help="Cross-corpus: the adapter reading --data (default: found automatically)")
    ] = None,
) -> None:
    """Score a trained run on a split, or on any labelled table; writes eval/<split>/metrics.json,
    predictions and plots.

    `--conformal`, `--by` and `--label-map` add conformal coverage, subgroup breakdowns and
    cross-corpus scores (all in the run report). `--conformal` exits 1 when the calibration split is
    too small or saturated for a set (no set is stored; the reason is printed)."""
    import pandas as pd  # heavy: loaded only when scoring

    from affectfusion.cli.trust import cross_corpus_test, trust_tests
    from affectfusion.evaluation.report import plot_run, write_run_report
    from affectfusion.recipes.ensemble import is_ensemble_run
    from affectfusion.rundir import read_run, run_dirs
    from affectfusion.runlock import run_lock
    from affectfusion.training.evaluation import evaluate_run

    if is_ensemble_run(run_dir):  # one model: the mean of its members
        options = {"--table": table, "--conformal": conformal, "--by": by, "--label-map": label_map}
        given = [o for o, v in options.items() if v is not None]
        if given:
            raise AffectFusionError(f"{', '.join(given)} score a single run; {run_dir} is an ensemble (test a member)")
        return _test_ensemble(run_dir, split, data)
    if label_map is not None and data is None:
        raise AffectFusionError("--label-map scores the run on another corpus: give that corpus' folder with --data")
    if table is not None and conformal is not None:
        raise AffectFusionError("--conformal calibrates on the run's own calibration split: use --split, not --table")
    rows, refused = [], False
    for rd in run_dirs(run_dir):
        run = read_run(rd)
        s = split or run.config.data.test_split or run.config.data.val_split
        if label_map is not None and data is not None:  # --label-map without --data is refused above
            with run_lock(rd, "test"):
                cross_corpus_test(run, data, s, label_map, data_adapter)
                write_run_report(rd)
            continue
        root = data
        if table is not None:
            run, s, root = on_table(run, table)
        with run_lock(rd, "test"):
            metrics = evaluate_run(run, s, root=root)
            refused |= not trust_tests(run, s, root, conformal, by)
            plot_run(rd)
            write_run_report(rd)
        rows.append({"run": rd.name, "split": s, **_scalars(metrics)})
        err_console.print(f"wrote {run.paths.metrics(s)}")
    if rows:
        splits = sorted({r["split"] for r in rows})
        print_table(pd.DataFrame(rows), f"metrics on {', '.join(splits)}")
    if refused:  # a conformal set was asked for and the calibration split could not support it
        raise typer.Exit(1)


def _test_ensemble(root: Path, split: str | None, data: Path | None) -> None:
    """Score an ensemble run (the mean of its members) on a split; show it beside the members' mean ± std."""
    # deferred: torch and pandas load only when scoring
    from affectfusion.recipes.ensemble.evaluate import (
        ensemble_vs_members,
        evaluate_ensemble,
        side_by_side,
        write_report,
    )
    from affectfusion.recipes.ensemble.members import scored_splits
    from affectfusion.rundir import RunPaths
    from affectfusion.runlock import run_lock

    s = split or scored_splits(root)[-1]  # the test split, else the validation split
    with run_lock(root, "test"):
        evaluate_ensemble(root, s, data)
        report = write_report(root, ensemble_vs_members(root))
    err_console.print(f"wrote {RunPaths(root).metrics(s)} and {report}")
    print_table(side_by_side(root, s), f"{root.name}: single run vs ensemble")


def on_table(run: LoadedRun, table: Path) -> tuple[LoadedRun, str, Path]:
    """The run set to read ``table`` (a media_table run's format): (run, split name, root)."""
    if run.config.data.adapter != "media_table":
        raise AffectFusionError(
            f"--table scores runs trained on a media_table; {run.paths.root} reads {run.config.data.adapter!r} "
            "data: use --data FOLDER --split NAME"
        )
    if not table.is_file():
        raise AffectFusionError(f"table not found: {table}")
    config = validate(apply_overrides(run.config.to_dict(), {"data.options.table": table.name}), str(table))
    return dataclasses.replace(run, config=config), table.stem, table.resolve().parent


def _scalars(metrics: dict) -> dict:
    skip = {"split", "n", "primary_task"}
    return {k: v for k, v in metrics.items() if k not in skip and isinstance(v, (int, float))}


def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (or folders of variant runs, or `cv` folders: their mean)")
    ],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <parent of first run>/comparison)")] = None,
    split: Annotated[str | None, typer.Option(help="Split to compare (default: test, test_small, else dev)")] = None,
    seeds_aggregate: Annotated[
        bool,
        typer.Option(
            "--seeds-aggregate",
            help="Group runs that differ only in train.seed: mean ± std per group and paired significance "
            "tests between groups (default --out: <common folder>/seeds)",
        ),
    ] = False,
) -> None:
    """Compare runs side by side: one table (markdown + CSV) and one plot."""
    # numpy/pandas: not for --help
    from affectfusion.rundir import (
        SeedAggregatePaths,
        SeedPaths,
        SweepPaths,
        is_cv,
        is_tune,
        run_dirs,
        run_dirs_or_none,
    )

    runs = [_tune_trials(r) if is_tune(r) else r for r in runs]  # a tune folder: its trials, after its summary
    # a cross-validation folder is compared as one run (its mean over folds), unless seeds are aggregated
    whole = [r for r in runs if is_cv(r) and not seeds_aggregate]
    dirs = [d for r in runs if r in whole or run_dirs_or_none(r) for d in ([r] if r in whole else run_dirs(r))]
    skipped = [r for r in runs if r not in whole and not run_dirs_or_none(r)]
    if skipped:
        err_console.print(f"skipping {', '.join(map(str, skipped))}: not run directories")
    if not dirs:
        raise AffectFusionError(f"no run directories among {', '.join(map(str, runs))}")
    if seeds_aggregate:
        # deferred: scipy, pandas and matplotlib load only when aggregating
        from affectfusion.analysis.seed_report import aggregate_seeds
        from affectfusion.analysis.seeds import group_by_variant
        from affectfusion.cli.tables import print_seed_summary

        root = Path(os.path.commonpath([d.resolve() for d in dirs]))
        out = out or SeedPaths(root.parent if len(dirs) == 1 else root).aggregate.root
        summary, pairwise = aggregate_seeds(group_by_variant(dirs), out, split)
        print_seed_summary(summary, pairwise, console)
        err_console.print(f"wrote {SeedAggregatePaths(out).report}")
        return
    from affectfusion.evaluation.compare import compare_runs  # matplotlib: only when comparing

    out = out or SweepPaths(dirs[0].parent).comparison.root
    df = compare_runs(dirs, out, split)
    print_table(df, f"comparison ({out})")


def _tune_trials(folder: Path) -> Path:
    """Print a tune folder's result (best trial, seeds of the best) and give the folder of its trials."""
    from affectfusion.cli.tune import print_summary  # deferred: only for tune folders
    from affectfusion.io import read_json
    from affectfusion.rundir import TunePaths

    paths = TunePaths(folder)
    print_summary(read_json(paths.summary))
    err_console.print(f"{folder}: tune report {paths.report}; comparing its trials on the validation split")
    return paths.trial(0).parent


LISTABLE = ("fusions", "encoders", "contexts", "datasets", "extractors", "configs")


def list_(
    what: Annotated[str, typer.Argument(help="One of: " + ", ".join(LISTABLE))],
) -> None:
    """List registered components (with their options) or shipped configs."""

    if what == "configs":
        table = Table("config", "description")
        for name in list_packaged_configs():
            table.add_row(name, str(load_raw(PACKAGED_CONFIGS / f"{name}.yaml").get("description", "")))
        console.print(table)
        return
    if what not in LISTABLE:
        raise AffectFusionError(f"cannot list {what!r}; choose one of {', '.join(LISTABLE)}")
    reg = _registry(what)
    table = Table("name", "description", "options")
    for name in reg.names():
        fields = reg.get(name).Options.model_fields
        opts = ", ".join(
            f"{k}={f.get_default(call_default_factory=True)!r}" if not f.is_required() else f"{k} (required)"
            for k, f in fields.items()
        )
        table.add_row(name, escape(reg.describe(name)), escape(opts))
    console.print(table)


def _registry(what: str):
    """Import only the registry asked for: models need torch, extractors need numpy and pandas."""
    if what in ("fusions", "encoders", "contexts"):
        from affectfusion.models import CONTEXTS, ENCODERS, FUSIONS  # deferred: torch

        return {"fusions": FUSIONS, "encoders": ENCODERS, "contexts": CONTEXTS}[what]
    if what == "datasets":
        from affectfusion.data import DATASETS  # deferred: scipy, pandas

        return DATASETS
    from affectfusion.extract import EXTRACTORS  # deferred: numpy, pandas

    return EXTRACTORS
