"""The ``affectfusion`` command line: train, test, compare, list, demo."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from affectfusion.config import (
    RunConfig,
    expand_variants,
    list_packaged_configs,
    load_config,
    load_raw,
    parse_set_options,
    resolve_config_path,
)
from affectfusion.errors import AffectFusionError

app = typer.Typer(
    help="AffectFusion: multimodal emotion and affect recognition with interchangeable fusion strategies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set train.epochs=5 --set data.root=PATH"),
]


def train_config(cfg: RunConfig, out: Path, overwrite: bool = False) -> pd.DataFrame | None:
    """Train a config (each of its variants into its own folder) and compare variants if several."""
    from affectfusion.evaluation.compare import compare_runs
    from affectfusion.training.trainer import Trainer

    variants = expand_variants(cfg)
    if not cfg.variants:
        Trainer(cfg, out, err_console).fit(overwrite=overwrite)
        return None
    run_dirs = []
    for vname, vcfg in variants.items():
        Trainer(vcfg, out / vname, err_console).fit(overwrite=overwrite)
        run_dirs.append(out / vname)
    from affectfusion.training.distributed import init_distributed

    if not init_distributed().is_main:
        return None
    return compare_runs(run_dirs, out / "comparison")


def wide_console(min_width: int) -> Console:
    """Tables are not cut to 80 columns when stdout is a file or pipe (logs, CI)."""
    return Console(width=max(console.width, min_width))


SHORT_HEADERS = {
    "n_parameters": "params",
    "best_epoch": "best ep",
    "seconds_per_epoch": "s/epoch",
    "balanced_accuracy": "bal_acc",
}


def print_table(df: pd.DataFrame, title: str) -> None:
    """A terminal-width table: identity, cost and metrics; the full table is in the CSV/markdown."""
    from affectfusion.evaluation.metrics import SCALAR_ORDER

    keep = ["run", "split", "n_parameters", "best_epoch", "seconds_per_epoch"]
    if "split" in df and df["split"].nunique() <= 1:
        keep.remove("split")
    columns = [c for c in keep if c in df.columns] + [c for c in SCALAR_ORDER if c in df.columns]
    table = Table(title=title)
    for col in columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(SHORT_HEADERS.get(col, col), justify="right" if numeric else "left", no_wrap=True)
    for _, row in df[columns].iterrows():
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.tolist()])
    wide_console(132).print(table)


def _specialists_recipe() -> RecipeFn:
    from affectfusion.training.specialists import train_specialists

    return train_specialists


def _vlm_recipe() -> RecipeFn:
    from affectfusion.vlm.train import train_vlm

    return train_vlm


# A config's top-level `kind` picks its training recipe (torchtune-style: recipes apart from configs).
# A recipe takes (config name or path, --set overrides, --out, --overwrite) and returns its run directory.
RecipeFn = Callable[[str, dict[str, Any], Path | None, bool], Path]
RECIPES: dict[str, Callable[[], RecipeFn]] = {"specialists": _specialists_recipe, "vlm": _vlm_recipe}


def config_kind(config: str) -> str:
    """``fusion`` (a RunConfig) unless the YAML says ``kind: specialists`` or ``kind: vlm``."""
    kind = load_raw(resolve_config_path(config)).get("kind", "fusion")
    if kind != "fusion" and kind not in RECIPES:
        raise AffectFusionError(f"config {config}: unknown kind {kind!r} (expected fusion, {', '.join(RECIPES)})")
    return kind


@app.command()
def train(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<config name>)")] = None,
    fusion: Annotated[
        str | None, typer.Option(help="Train only this fusion strategy (model.fusion.name; drops variants)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Start afresh instead of resuming an existing run")] = False,
    seeds: Annotated[
        str | None,
        typer.Option(help="Train once per seed, e.g. 1,2,3, into <out>/seed<k>/; then mean ± std and significance"),
    ] = None,
) -> None:
    """Train a model; a config with `variants` trains each and writes a comparison.

    Re-running the same command resumes an interrupted run from its last checkpoint. Under
    `torchrun --nproc-per-node N` the same command trains with DDP. With `--seeds` every seed (and
    variant) is its own run, and `<out>/seeds/` gets the aggregate over seeds.
    """
    from affectfusion.analysis.seeds import parse_seeds

    seed_list = parse_seeds(seeds) if seeds is not None else None
    overrides = parse_set_options(set_)
    recipe = config_kind(config)
    if recipe != "fusion":
        if fusion or seed_list is not None:
            raise AffectFusionError(f"--fusion and --seeds apply to fusion configs, not to a {recipe!r} config")
        run_dir = RECIPES[recipe]()(config, overrides, out, overwrite)
        err_console.print(f"run directory: {run_dir}")
        return
    if fusion:
        overrides.update({"model.fusion.name": fusion, "variants": None})
    cfg = load_config(config, overrides)
    out = out or Path("runs") / (cfg.name + (f"_{fusion}" if fusion else ""))
    if seed_list is not None:
        _train_seeds(cfg, out, seed_list, overwrite)
        return
    df = train_config(cfg, out, overwrite)
    if df is not None:
        print_table(df, f"{cfg.name}: comparison ({out / 'comparison'})")
    err_console.print(f"run directory: {out}")


def _train_seeds(cfg: RunConfig, out: Path, seeds: list[int], overwrite: bool) -> None:
    """Train every seed (resumable), then aggregate over seeds into <out>/seeds and print it."""
    from affectfusion.analysis.cli_seeds import print_seed_summary
    from affectfusion.analysis.seeds import group_by_variant, train_seeds
    from affectfusion.analysis.significance import aggregate_seeds
    from affectfusion.training.distributed import init_distributed

    run_dirs = train_seeds(cfg, out, seeds, overwrite)
    if not init_distributed().is_main:
        return
    summary, pairwise = aggregate_seeds(group_by_variant(run_dirs), out / "seeds")
    print_seed_summary(summary, pairwise, console)
    err_console.print(f"run directory: {out} (seed aggregate: {out / 'seeds' / 'seeds.md'})")


@app.command()
def test(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or a folder of variant runs)")],
    data: Annotated[Path | None, typer.Option(help="Data folder in the run's format (default: data.root)")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split name (default: data.test_split, else data.val_split)")
    ] = None,
) -> None:
    """Score a trained run on a split; writes eval/<split>/metrics.json, predictions and plots."""
    from affectfusion.evaluation.report import plot_run, write_run_report
    from affectfusion.rundir import read_run
    from affectfusion.training.trainer import evaluate_run

    runs = _run_dirs(run_dir)
    rows = []
    for rd in runs:
        run = read_run(rd)
        s = split or run.config.data.test_split or run.config.data.val_split
        metrics = evaluate_run(run, s, root=data)
        plot_run(rd)
        write_run_report(rd)
        rows.append({"run": rd.name, "split": s, **_scalars(metrics)})
        err_console.print(f"wrote {run.paths.eval_dir(s) / 'metrics.json'}")
    print_table(pd.DataFrame(rows), "test metrics")


def _scalars(metrics: dict) -> dict:
    skip = {"split", "n", "primary_task"}
    return {k: v for k, v in metrics.items() if k not in skip and isinstance(v, (int, float))}


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "meta.json").is_file()


def _run_dirs_or_none(path: Path) -> list[Path]:
    return [path] if _is_run(path) else sorted(p for p in path.glob("*") if _is_run(p))


def _run_dirs(path: Path) -> list[Path]:
    """The run at ``path``, or the variant runs inside it."""
    subs = _run_dirs_or_none(path)
    if not subs:
        raise AffectFusionError(f"{path} is not a run directory and holds none (expected config.yaml and meta.json)")
    return subs


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (or folders of variant runs)")],
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
    from affectfusion.evaluation.compare import compare_runs

    dirs = [d for r in runs if _is_run(r) or _run_dirs_or_none(r) for d in _run_dirs(r)]
    skipped = [r for r in runs if not (_is_run(r) or _run_dirs_or_none(r))]
    if skipped:
        err_console.print(f"skipping {', '.join(map(str, skipped))}: not run directories")
    if not dirs:
        raise AffectFusionError(f"no run directories among {', '.join(map(str, runs))}")
    if seeds_aggregate:
        from affectfusion.analysis.cli_seeds import print_seed_summary
        from affectfusion.analysis.seeds import group_by_variant
        from affectfusion.analysis.significance import aggregate_seeds

        root = Path(os.path.commonpath([d.resolve() for d in dirs]))
        out = out or (root.parent if len(dirs) == 1 else root) / "seeds"
        summary, pairwise = aggregate_seeds(group_by_variant(dirs), out, split)
        print_seed_summary(summary, pairwise, console)
        err_console.print(f"wrote {out / 'seeds.md'}")
        return
    out = out or dirs[0].parent / "comparison"
    df = compare_runs(dirs, out, split)
    print_table(df, f"comparison ({out})")


@app.command()
def extract(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    set_: SetOption = None,
    split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to extract (default: the config's train, val and test splits)")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel extraction processes (default: data.workers)")] = None,
) -> None:
    """Raw media -> cached features for every modality in `data.extract`; resumable.

    Re-running does no work for inputs already extracted (cache keyed by extractor, options and
    input content). Inputs that fail (corrupt audio, non-image file, empty text) are listed in
    each extractor's failures.csv; the rest completes.
    """
    from affectfusion.data import build_adapter
    from affectfusion.extract import apply_extraction

    overrides = parse_set_options(set_)
    if workers is not None:
        overrides["data.workers"] = workers
    cfg = load_config(config, overrides)
    if not cfg.data.extract:
        raise AffectFusionError(f"{config}: data.extract is empty; there is nothing to extract")
    adapter = build_adapter(cfg.data)
    root = Path(cfg.data.root).expanduser() if cfg.data.root else None
    splits = split or list(
        dict.fromkeys(s for s in (cfg.data.train_split, cfg.data.val_split, cfg.data.test_split) if s)
    )
    table = Table("split", "extractor", "items", "cached", "computed", "failed", "failure report")
    failures = []
    for name in splits:
        samples = adapter.load(root, name)
        for r in apply_extraction(samples, cfg.data, err_console, progress=cfg.train.progress):
            table.add_row(
                name,
                r.extractor,
                str(r.total),
                str(r.cached),
                str(r.computed),
                str(len(r.failures)),
                f"{r.folder}/failures.csv",
            )
            failures += [(name, r.extractor, f) for f in r.failures]
    wide_console(160).print(table)
    for name, extractor, f in failures[:20]:
        err_console.print(
            f"[yellow]failed[/] {name} {extractor} {f['id']} ({f['source']}): {f['error']}", highlight=False
        )
    if len(failures) > 20:
        err_console.print(f"... and {len(failures) - 20} more (see the failure reports)")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="fusions | encoders | datasets | extractors | configs")],
) -> None:
    """List registered components (with their options) or shipped configs."""
    from affectfusion.data import DATASETS
    from affectfusion.extract import EXTRACTORS
    from affectfusion.models import ENCODERS, FUSIONS

    registries = {"fusions": FUSIONS, "encoders": ENCODERS, "datasets": DATASETS, "extractors": EXTRACTORS}
    if what == "configs":
        from affectfusion.config import PACKAGED_CONFIGS

        table = Table("config", "description")
        for name in list_packaged_configs():
            table.add_row(name, str(load_raw(PACKAGED_CONFIGS / f"{name}.yaml").get("description", "")))
        console.print(table)
        return
    if what not in registries:
        raise AffectFusionError(f"cannot list {what!r}; choose one of fusions, encoders, datasets, extractors, configs")
    reg = registries[what]
    table = Table("name", "description", "options")
    for name in reg.names():
        fields = reg.get(name).Options.model_fields
        opts = ", ".join(
            f"{k}={f.get_default(call_default_factory=True)!r}" if not f.is_required() else f"{k} (required)"
            for k, f in fields.items()
        )
        table.add_row(name, escape(reg.describe(name)), escape(opts))
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the runs")] = Path("runs/demo"),
    set_: SetOption = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain instead of resuming")] = False,
) -> None:
    """Train every registered fusion strategy on a generated dataset and print the comparison."""
    from affectfusion.models import FUSIONS

    overrides = {"variants": FUSIONS.names(), **parse_set_options(set_)}
    cfg = load_config("demo", overrides)
    df = train_config(cfg, out, overwrite)
    if df is not None:
        print_table(df, f"demo: every fusion strategy on synthetic data ({out / 'comparison'})")


def _register_analysis_commands() -> None:
    """Analysis commands live with their analyses (``affectfusion.analysis``)."""
    from affectfusion.analysis.cli_ablate import ablate_command, robustness_command
    from affectfusion.analysis.cli_analyze import analyze_command

    app.command("analyze")(analyze_command)
    app.command("ablate")(ablate_command)
    app.command("robustness")(robustness_command)


def _register_serving_commands() -> None:
    """Prediction and serving commands live with the Predictor (``affectfusion.serve``)."""
    from affectfusion.serve.cli_predict import predict_command
    from affectfusion.serve.cli_serve import serve_app

    app.command("predict")(predict_command)
    app.add_typer(serve_app, name="serve")


_register_analysis_commands()
_register_serving_commands()


def main() -> None:
    """Entry point: user errors become one red line and exit code 2, never a traceback."""
    try:
        app()
    except AffectFusionError as e:
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
