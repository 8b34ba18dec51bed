"""The ``affectfusion analyze`` command, kept apart from ``cli.py``; register it with
``app.command("analyze")(analyze_command)``.

Only typer and rich are imported here, so registering the command keeps ``affectfusion --help``
fast; torch, scikit-learn and matplotlib load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _summary_table(runs: list[dict[str, Any]]) -> Table:
    """Blocks × (n, chance, silhouette, k-NN, probe), one group of rows per run."""
    several = len(runs) > 1
    table = Table(title="separability (" + ", ".join(sorted({r["split"] for r in runs})) + ")")
    if several:
        table.add_column("variant")
    table.add_column("block")
    for name in ("n", "chance", "silhouette", "kNN acc", "probe acc", "accuracy"):
        table.add_column(name, justify="right")
    for r in runs:
        for i, (block, s) in enumerate(r["separability"].items()):
            accuracy = _score(r["failures"]["accuracy"]) if i == 0 else ""
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
    from affectfusion.analysis.analyze import analyze_run, analyze_runs, default_split
    from affectfusion.cli import _is_run, _run_dirs
    from affectfusion.rundir import read_run

    if _is_run(run_dir):
        result = analyze_run(run_dir, split, data, cap, methods, console=err_console)
        runs = [result]
    else:
        dirs = _run_dirs(run_dir)
        out = run_dir / "analysis" / (split or default_split(read_run(dirs[0])))
        result = analyze_runs(dirs, out, split, data, cap, methods, console=err_console)
        runs = result["runs"]
    console.print(_summary_table(runs), width=max(console.width, 100))
    for r in runs:
        if r["subsampled"]:
            err_console.print(f"{r['name']}: {r['cap']} of {r['n_labelled']} samples used (--cap)")
    err_console.print(f"report: {result['report']}")
