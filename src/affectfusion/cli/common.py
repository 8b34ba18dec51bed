"""What every command shares: consoles, the ``--set`` option and terminal tables.

Only typer and rich load here, so that ``affectfusion --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set train.epochs=5 --set data.root=PATH"),
]

DeviceOption = Annotated[
    str,
    typer.Option(help="Where models run: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps"),
]

SHORT_HEADERS = {
    "n_parameters": "params",
    "best_epoch": "best ep",
    "seconds_per_epoch": "s/epoch",
    "balanced_accuracy": "bal_acc",
}


def wide_console(min_width: int) -> Console:
    """Tables are not cut to 80 columns when stdout is a file or pipe (logs, CI)."""
    return Console(width=max(console.width, min_width))


def print_table(df: pd.DataFrame, title: str) -> None:
    """A terminal-width table: identity, cost and metrics; the full table is in the CSV/markdown.

    The title says which split and how many samples were scored (when all rows share them), and a
    metric with a bootstrap interval (``<metric>_ci_low`` / ``_ci_high`` from ``compare``) shows it."""
    import pandas as pd  # heavy (~1 s): only commands that print tables pay for it

    from affectfusion.evaluation.metrics import SCALAR_ORDER

    keep = ["run", "split", "n_parameters", "best_epoch", "seconds_per_epoch"]
    if "split" in df and df["split"].nunique() <= 1:
        keep.remove("split")
        split = df["split"].dropna().unique()
        sizes = list(df["n"].dropna().unique()) if "n" in df else []
        if len(split) == 1:
            title += f" — {split[0]} split" + (f", n = {int(sizes[0])}" if len(sizes) == 1 else "")
    metrics = [c for c in SCALAR_ORDER if c in df.columns]
    columns = [c for c in keep if c in df.columns] + metrics
    table = Table(title=title)
    for col in columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        interval = f"{col}_ci_low" in df.columns
        header = SHORT_HEADERS.get(col, col) + (" [95% CI]" if interval else "")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for _, row in df.iterrows():
        cells = []
        for col in columns:
            value = row[col]
            cell = f"{value:.3f}" if isinstance(value, float) else str(value)
            low, high = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
            if isinstance(low, float) and isinstance(high, float) and low == low and high == high:
                cell += f" [{low:.3f}, {high:.3f}]"
            cells.append(cell)
        table.add_row(*cells)
    wide_console(132).print(table)


def print_frame(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A plain table of strings, first column left-aligned."""
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
