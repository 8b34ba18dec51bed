"""The one HTML writer: self-contained pages (tables inline, PNGs as base64) that can be mailed or moved.

Every report (analysis, ablation, robustness, trust sections) is built from these pieces so that
they look alike and escape alike.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from affectfusion.evaluation.report import fmt_value
from affectfusion.io import write_text

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
img{max-width:100%;margin:.5em 0}.note{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def img(path: Path, alt: str) -> str:
    """The PNG inlined as a data URI, so the report is one file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def table(df: pd.DataFrame, index: bool = False) -> str:
    cells = df.map(fmt_value)
    if index:
        cells.index = [fmt_value(i) for i in cells.index]
    return cells.to_html(index=index, border=0, escape=True)


def page(title: str, body: list[str]) -> str:
    head = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
    return f"{head}<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def write_report(path: Path, title: str, intro: list[str], sections: list[tuple[str, pd.DataFrame | Path]]) -> Path:
    """A titled page of paragraphs, then one heading per table or figure."""
    body = [f"<h1>{esc(title)}</h1>", *(f"<p>{esc(line)}</p>" for line in intro)]
    for heading, block in sections:
        shown = table(block) if isinstance(block, pd.DataFrame) else img(block, Path(block).stem)
        body += [f"<h2>{esc(heading)}</h2>", shown]
    write_text(path, page(title, body))
    return path
