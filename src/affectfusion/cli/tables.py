"""Terminal view of a seed aggregate (``train --seeds``, ``compare --seeds-aggregate``).

The full tables are in ``seeds_summary.csv``, ``seeds_pairwise.csv`` and ``seeds.md``. The terminal
shows mean ± std per group and, for every pair, the difference with its interval and p-values.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from affectfusion.analysis.significance import fmt_p, mean_std, signed


def print_seed_summary(summary: pd.DataFrame, pairwise: pd.DataFrame, console: Console) -> None:
    """Two rich tables: mean ± std over seeds per group, then the pairwise differences."""
    metrics = [c.removesuffix("_mean") for c in summary.columns if c.endswith("_mean")]
    split = summary["split"].iloc[0] if len(summary) else "?"
    table = Table(title=f"mean ± std over seeds ({split})")
    for col in ("group", "fusion", "seeds"):
        table.add_column(col, no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right", no_wrap=True)
    for row in summary.to_dict(orient="records"):
        cells = [mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        table.add_row(*(Text(str(row[c])) for c in ("group", "fusion", "seeds")), *cells)
    console.print(table, width=max(console.width, 132))
    if pairwise.empty:
        return
    level = f"{pairwise['ci_level'].iloc[0]:.0%}"
    table = Table(title=f"pairwise differences a − b ({level} paired bootstrap CI, permutation p)")
    for col in ("a − b", "metric", "better"):
        table.add_column(col, no_wrap=True)
    for col in ("diff", f"{level} CI", "p boot", "p perm", "samples × seeds"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in pairwise.to_dict(orient="records"):
        excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
        interval = f"[{signed(row['ci_low'])}, {signed(row['ci_high'])}]"
        table.add_row(
            Text(f"{row['a']} − {row['b']}"),  # Text: labels are never read as rich markup
            row["metric"],
            row["better"],
            signed(row["diff"]),
            Text(interval, style="bold" if excludes_zero else ""),
            fmt_p(row["p_bootstrap"]).removeprefix("= "),
            fmt_p(row["p_permutation"]).removeprefix("= "),
            f"{row['n_samples']} × {row['n_seed_pairs']}",
        )
    console.print(table, width=max(console.width, 132))
