"""``affectfusion ablate`` and ``affectfusion robustness``: plain functions the CLI registers.

They parse and check the command-line strings (one-line :class:`AffectFusionError` on bad input),
run :func:`~affectfusion.analysis.ablation.run_ablation` /
:func:`~affectfusion.analysis.robustness.run_robustness` and print a summary table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from affectfusion.analysis.seeds import parse_seeds
from affectfusion.config import load_config, parse_set_options
from affectfusion.errors import AffectFusionError

console = Console()


def parse_numbers(text: str, option: str) -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``; anything else is a one-line error naming the option."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise AffectFusionError(f"{option} expects comma-separated numbers, e.g. 0,0.5,1; got {text!r}")
    return values


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _print_frame(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def ablate_command(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    mode: Annotated[
        str,
        typer.Option(
            help="retrain: train one model per modality subset; mask: train the full model once and "
            "evaluate it with the other modalities marked missing"
        ),
    ] = "retrain",
    seeds: Annotated[
        str, typer.Option(help="Comma-separated training seeds, e.g. 1,2,3 (default: the config's train.seed)")
    ] = "",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set train.epochs=5 --set data.root=PATH"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<config name>_ablation_<mode>)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain the subset runs instead of reusing finished ones")] = False,
) -> None:
    """Modality ablation: score every non-empty subset of the config's modalities.

    Writes ablation.csv/.json/.md/.png, the per-modality effect and report.html into the output
    folder. Every (subset, seed) model is a normal run directory in it, so re-running the command
    resumes an interrupted ablation and reuses finished runs.
    """
    from affectfusion.analysis.ablation import MODES, run_ablation

    if mode not in MODES:
        raise AffectFusionError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    seed_list = parse_seeds(seeds) if seeds.strip() else None
    cfg = load_config(config, parse_set_options(set_))
    out = out or Path("runs") / f"{cfg.name}_ablation_{mode}"
    result = run_ablation(cfg, out, mode, seed_list, overwrite)

    metrics = result.metrics
    _print_frame(
        f"{cfg.name}: modality ablation ({mode}, split {result.split})",
        ["subset", *metrics],
        [
            [r["subset"], *(_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics)]
            for r in result.table.to_dict(orient="records")
        ],
    )
    _print_frame(
        "modality effect (mean change when the modality is added)",
        ["modality", *metrics],
        [
            [r["modality"], *(_cell(r[f"{m}_effect_mean"], r[f"{m}_effect_std"]) for m in metrics)]
            for r in result.effects.to_dict(orient="records")
        ],
    )
    console.print(f"report: {result.report}")


def robustness_command(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory")],
    modality: Annotated[
        list[str] | None, typer.Option(help="Perturb only this modality (repeatable; default: every modality)")
    ] = None,
    noise: Annotated[
        str, typer.Option(help="Gaussian noise levels in units of the train-split feature std, comma-separated")
    ] = "0,0.5,1,2",
    missing: Annotated[
        str, typer.Option(help="Fractions of samples with the modality missing, comma-separated, in [0, 1]")
    ] = "0,0.25,0.5,1",
    split: Annotated[
        str | None, typer.Option(help="Split name (default: data.test_split, else data.val_split)")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Seeded repeats averaged per point")] = 3,
) -> None:
    """Robustness curves: the run's score as each modality gets noisier or goes missing more often.

    Writes robustness.csv/.json, robustness_noise.png, robustness_missing.png and report.html into
    <run>/analysis/robustness_<split>/.
    """
    from affectfusion.analysis.robustness import run_robustness

    result = run_robustness(
        run_dir,
        modality,
        parse_numbers(noise, "--noise"),
        parse_numbers(missing, "--missing"),
        split,
        repeats,
    )
    main = result.metrics[0]
    for kind in ("noise", "missing"):
        df: pd.DataFrame = result.table[result.table["perturbation"] == kind]
        pivot = {
            m: dict(zip(g["level"], zip(g[f"{main}_mean"], g[f"{main}_std"], strict=True), strict=True))
            for m, g in df.groupby("modality", sort=False)
        }
        levels = sorted(df["level"].unique())
        _print_frame(
            f"{main} vs {kind} ({result.split})",
            ["modality", *(f"{kind} {lv:g}" for lv in levels)],
            [[m, *(_cell(*by_level[lv]) for lv in levels)] for m, by_level in pivot.items()],
        )
    console.print(f"report: {result.report}")
