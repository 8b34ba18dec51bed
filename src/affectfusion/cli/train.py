"""``train``, ``extract`` and ``demo``: commands that make runs and features."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from affectfusion.cli.common import DeviceOption, SetOption, console, err_console, print_table, wide_console
from affectfusion.config import load_config, parse_set_options
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    import pandas as pd


class EngineName(StrEnum):
    local = "local"
    ray = "ray"


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
    allow_leakage: Annotated[
        bool, typer.Option(help="Train even if the data check finds leaking splits (recorded in the run)")
    ] = False,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow store when train.track lists mlflow (default runs/mlruns)")
    ] = None,
) -> None:
    """Train a model; a config with `variants` trains each and writes a comparison.

    Re-running the same command resumes an interrupted run from its last checkpoint. Under
    `torchrun --nproc-per-node N` the same command trains with DDP. With `--seeds` every seed (and
    variant) is its own run, and `<out>/seeds/` gets the aggregate over seeds. The validation split
    and `data.test_split` (if set) are scored at the end, in the same process.
    """
    # deferred: the run kinds' registry reads the config; each kind's recipe loads torch only when training
    from affectfusion.analysis.seeds import parse_seeds
    from affectfusion.runkinds import TrainRequest

    seed_list = parse_seeds(seeds) if seeds is not None else None
    overrides = parse_set_options(set_)
    allowed_by = leakage_source(config, overrides, allow_leakage)
    if allow_leakage:
        overrides["data.allow_leakage"] = True
    if tracking_uri is not None:
        overrides["train.tracking_uri"] = tracking_uri
    request = TrainRequest.read(
        config,
        overrides=overrides,
        out=out,
        overwrite=overwrite,
        fusion=fusion,
        seeds=seed_list,
        leakage_allowed_by=allowed_by,
        view=TerminalView(),
    )
    run_dir = request.kind.train_run(request)
    if run_dir is not None:
        err_console.print(f"run directory: {run_dir}")


class TerminalView:
    """What a recipe reports, as terminal tables (the :class:`affectfusion.runkinds.TrainView` of the CLI)."""

    console = err_console

    def table(self, frame: pd.DataFrame, title: str) -> None:
        print_table(frame, title)

    def seed_summary(self, summary: pd.DataFrame, pairwise: pd.DataFrame) -> None:
        from affectfusion.cli.tables import print_seed_summary  # the seed tables: only with --seeds

        print_seed_summary(summary, pairwise, console)


def leakage_source(config: str, overrides: dict[str, object], flag: bool) -> str:
    """What allows training on leaking splits, as the report credits it: the flag, a --set, or the config."""
    if flag:
        return "--allow-leakage"
    if "data.allow_leakage" in overrides:
        return f"--set data.allow_leakage={str(overrides['data.allow_leakage']).lower()}"
    return f"data.allow_leakage: true in {config}"


def extract(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    set_: SetOption = None,
    split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to extract (default: the config's train, val and test splits)")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Parallel extraction processes (default: data.workers); Ray actors (default: one per CPU)"),
    ] = None,
    device: DeviceOption = "auto",
    engine: Annotated[
        EngineName, typer.Option(help="local: a process pool on this machine; ray: actors on a Ray cluster")
    ] = EngineName.local,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (auto, or HOST:6379); default: a new local Ray (with --engine ray)"),
    ] = None,
    pack: Annotated[
        bool, typer.Option(help="Then move the extracted features into pack files (fast to list and read)")
    ] = False,
) -> None:
    """Raw media -> cached features for every modality in `data.extract`; resumable.

    Re-running does no work for inputs already extracted (cache keyed by extractor, options,
    package versions and input content). Inputs that fail (corrupt audio, non-image file, empty
    text) are listed in each extractor's failures.csv; the rest completes. `--engine ray` runs
    the extractors on a Ray cluster and writes into the same cache (docs/scale.md).
    """
    # deferred: the adapter and extractor registries load numpy, pandas and scipy
    from affectfusion.data import build_adapter
    from affectfusion.device import resolve_device
    from affectfusion.extract import LocalEngine, apply_extraction, pack_extracted

    resolve_device(device, "--device")  # an absent GPU is a one-line error before any work
    if address is not None and engine is not EngineName.ray:
        raise AffectFusionError("--address names a Ray cluster; it needs --engine ray")
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
    if engine is EngineName.ray:
        from affectfusion.extract.ray_engine import RayEngine  # deferred: only --engine ray needs it

        ray_engine = RayEngine(address, workers)
        ray_engine.start()  # a missing ray package or an unreachable cluster is one line before any work
        runner: LocalEngine | RayEngine = ray_engine
    else:
        runner = LocalEngine(cfg.data.workers)
    table = Table("split", "extractor", "items", "cached", "computed", "failed", "failure report")
    failures = []
    for name in splits:
        samples = adapter.load(root, name)
        reports = apply_extraction(samples, cfg.data, err_console, cfg.train.progress, device, runner)
        for r in reports:
            row = [name, r.extractor, str(r.total), str(r.cached), str(r.computed), str(len(r.failures))]
            table.add_row(*row, f"{r.folder}/failures.csv" if r.failures or r.absent else "")
            failures += [(name, r.extractor, f) for f in r.failures]
    wide_console(160).print(table)
    for name, extractor, f in failures[:20]:
        err_console.print(
            f"[yellow]failed[/] {name} {extractor} {f['id']} ({f['source']}): {f['error']}", highlight=False
        )
    if len(failures) > 20:
        err_console.print(f"... and {len(failures) - 20} more (see the failure reports)")
    for name, moved, folder in pack_extracted(cfg.data, err_console) if pack else ():
        err_console.print(f"packed {moved} {name} entries into {folder}", highlight=False)


def demo(
    out: Annotated[Path | None, typer.Option(help="Where to write the runs (default runs/demo)")] = None,
    set_: SetOption = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain instead of resuming")] = False,
) -> None:
    """Train every registered fusion strategy on a generated dataset and print the comparison."""
    # deferred: torch loads only when the demo runs
    from affectfusion.models import FUSIONS
    from affectfusion.recipes.fusion.recipe import train_config
    from affectfusion.rundir import SweepPaths, default_run_dir

    out = out or default_run_dir("demo")
    overrides = {"variants": FUSIONS.names(), **parse_set_options(set_)}
    cfg = load_config("demo", overrides)
    df = train_config(cfg, out, overwrite, err_console)
    if df is not None:
        print_table(df, f"demo: every fusion strategy on synthetic data ({SweepPaths(out).comparison.root})")
