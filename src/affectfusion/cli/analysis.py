"""``analyze``, ``ablate`` and ``robustness``: the analysis commands.

They parse and check the command-line strings (one-line errors on bad input), call the analysis
library and print a summary; torch, scikit-learn and matplotlib load only when a command runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from affectfusion.cli.common import SetOption, console, err_console, print_frame
from affectfusion.config import load_config, parse_set_options
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    import pandas as pd


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _summary_table(runs: list[dict[str, Any]], fused: str) -> Table:
    """Blocks × (n, chance, silhouette, k-NN, probe), one group of rows per run; the model's own
    accuracy sits on the row of the fused block, the representation its head reads."""
    several = len(runs) > 1
    table = Table(title="separability (" + ", ".join(sorted({r["split"] for r in runs})) + ")")
    if several:
        table.add_column("variant")
    table.add_column("block")
    for name in ("n", "chance", "silhouette", "kNN acc", "probe acc", "model acc"):
        table.add_column(name, justify="right")
    for r in runs:
        for i, (block, s) in enumerate(r["separability"].items()):
            accuracy = _score(r["failures"]["accuracy"]) if block == fused else ""
            cells = [
                block,
                str(s["n"]),
                _score(s["chance"]),
                _score(s["silhouette"]),
                _score(s["knn_accuracy"]),
                _score(s["probe_accuracy"]),
                accuracy,
            ]
            table.add_row(*([r["name"] if i == 0 else ""] if several else []), *cells)
        table.add_section()
    return table


def analyze_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, or a folder of variant runs (also compared)")],
    split: Annotated[
        str | None, typer.Option(help="Split to analyse (default: data.test_split, else data.val_split)")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Data folder in the run's format (default: data.root)")] = None,
    cap: Annotated[
        int, typer.Option(help="At most this many samples (stratified, seeded) for separability and projections")
    ] = 2000,
    methods: Annotated[
        str, typer.Option(help="Comma-separated projections: pca, tsne, umap (umap compiles ~30 s on first use)")
    ] = "pca,tsne,umap",
) -> None:
    """Separability of each modality block and the fused block, failure cases, and where fusion helps.

    Writes <run>/analysis/<split>/ (report.html, separability.csv/json, projections_<block>.png,
    failures.json/md); a folder of variant runs also gets <folder>/analysis/<split>/ comparing them.
    """
    # deferred: torch, scikit-learn and matplotlib load only when the command runs
    from affectfusion.analysis.analyze import analyze_run, analyze_runs, default_split
    from affectfusion.analysis.separability import FUSED
    from affectfusion.rundir import RunPaths, is_run, read_run, run_dirs

    if is_run(run_dir):
        result = analyze_run(run_dir, split, data, cap, methods, console=err_console)
        if "separability" not in result:  # a multi-label run: per-label errors and attribution
            m = result["metrics"]
            console.print(
                f"{result['task']} ({result['split']}): micro F1 {m['micro_f1']:.3f}, macro F1 {m['macro_f1']:.3f}"
            )
            err_console.print(f"report: {result['report']}")
            return
        runs = [result]
    else:
        dirs = run_dirs(run_dir)
        out = RunPaths(run_dir).analysis_dir(split or default_split(read_run(dirs[0])))
        result = analyze_runs(dirs, out, split, data, cap, methods, console=err_console)
        runs = result["runs"]
    console.print(_summary_table(runs, FUSED), width=max(console.width, 100))
    for r in runs:
        if r["subsampled"]:
            err_console.print(f"{r['name']}: {r['cap']} of {r['n_labelled']} samples used (--cap)")
    err_console.print(f"report: {result['report']}")


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
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<config name>_ablation_<mode>)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain the subset runs instead of reusing finished ones")] = False,
) -> None:
    """Modality ablation: score every non-empty subset of the config's modalities.

    Writes ablation.csv/.json/.md/.png, the per-modality effect and report.html into the output
    folder. Every (subset, seed) model is a normal run directory in it, so re-running the command
    resumes an interrupted ablation and reuses finished runs.
    """
    # deferred: torch and matplotlib load only when the command runs
    from affectfusion.analysis.ablation import MODES, run_ablation
    from affectfusion.analysis.seeds import parse_seeds
    from affectfusion.rundir import default_run_dir

    if mode not in MODES:
        raise AffectFusionError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    seed_list = parse_seeds(seeds) if seeds.strip() else None
    cfg = load_config(config, parse_set_options(set_))
    out = out or default_run_dir(cfg.name, f"ablation_{mode}")
    result = run_ablation(cfg, out, mode, seed_list, overwrite)

    metrics = result.metrics
    print_frame(
        f"{cfg.name}: modality ablation ({mode}, split {result.split})",
        ["subset", *metrics],
        [
            [r["subset"], *(_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics)]
            for r in result.table.to_dict(orient="records")
        ],
    )
    print_frame(
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
    # deferred: torch and matplotlib load only when the command runs
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
        print_frame(
            f"{main} vs {kind} ({result.split})",
            ["modality", *(f"{kind} {lv:g}" for lv in levels)],
            [[str(m), *(_cell(*by_level[lv]) for lv in levels)] for m, by_level in pivot.items()],
        )
    console.print(f"report: {result.report}")
