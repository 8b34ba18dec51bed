"""The trust sections of a run's report: data check, calibration, conformal coverage, subgroups,
cross-corpus scores and modality attribution, read from the files the run folder holds.

Two renderings of the same content: markdown lines for ``report.md`` and HTML fragments for the
HTML reports (``analyze``), kept as separate functions so either report can take them. A missing
file means the section is absent, never an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import markdown_it

from affectfusion.data.checks import check_markdown
from affectfusion.io import read_json
from affectfusion.rundir import RunPaths


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows),
    ]


def data_check_section(paths: RunPaths) -> list[str]:
    if not paths.data_check.is_file():
        return []
    return ["", "## Data check", "", check_markdown(read_json(paths.data_check))]


def calibration_section(paths: RunPaths, embedded: set[str]) -> list[str]:
    if not paths.calibration.is_file():
        return []
    saved = read_json(paths.calibration)
    lines = ["", "## Calibration", "", f"Temperature fitted on `{saved['fitted_on']}` (never on the test split)."]
    for task, entry in saved["tasks"].items():
        temp = entry.get("temperature")
        lines += ["", f"### Task `{task}`" + (f": temperature {temp:.3f}" if temp is not None else ""), ""]
        if entry.get("refused"):
            lines += [f"**Not calibrated** (probabilities are served unscaled): {entry['refused']}.", ""]
        if entry.get("note"):
            lines += [f"**Note:** {entry['note']}.", ""]
        rows = []
        for split, scores in entry["splits"].items():
            for when in ("before", "after"):
                if when in scores:
                    s = scores[when]
                    rows.append([split, when, s["ece"], s["mce"], s["brier"], s.get("nll"), s.get("accuracy")])
        lines += _table(["split", "", "ECE", "MCE", "Brier", "NLL", "accuracy"], rows)
        plot = saved.get("plots", {}).get(task)
        if plot and (paths.root / plot).is_file():
            embedded.add(plot)
            lines += ["", f"![Reliability diagram {task}]({plot})"]
    return lines


def conformal_section(paths: RunPaths) -> list[str]:
    files = [paths.coverage(n) for n in paths.eval_names() if paths.coverage(n).is_file()]
    lines = ["", "## Conformal prediction"] if files else []
    for f in files:
        saved = read_json(f)
        lines += [
            "",
            f"Split `{saved['split']}`, target coverage {1 - saved['alpha']:.0%} "
            f"(calibrated on `{saved['calibrated_on']}`):",
            "",
        ]
        rows = [
            [task, s["method"], s["n"], s["coverage"], s.get("mean_set_size", s.get("mean_width"))]
            for task, s in saved["tasks"].items()
        ]
        lines += _table(["task", "method", "n", "coverage", "mean set size / width"], rows)
        lines += [
            f"\n**No conformal set for `{task}`** (refused): {why}." for task, why in saved.get("refused", {}).items()
        ]
    return lines


def subgroup_section(paths: RunPaths) -> list[str]:
    files = [paths.subgroup_gaps(n) for n in paths.eval_names() if paths.subgroup_gaps(n).is_file()]
    lines = ["", "## Subgroups"] if files else []
    for f in files:
        saved = read_json(f)
        lines += [
            "",
            f"Split `{saved['split']}` (95 % bootstrap intervals per group in `{f.parent.name}/subgroups.csv`):",
            "",
        ]
        rows = []
        for task, by_column in saved["gaps"].items():
            for column, by_metric in by_column.items():
                for metric, g in by_metric.items():
                    rows.append(
                        [
                            task,
                            column,
                            metric,
                            f"{g['best_group']} ({g['best']:.3f})",
                            f"{g['worst_group']} ({g['worst']:.3f})",
                            g["gap"],
                        ]
                    )
        lines += _table(["task", "by", "metric", "best group", "worst group", "gap"], rows)
    return lines


def cross_corpus_section(paths: RunPaths) -> list[str]:
    files = [paths.cross_corpus(n) for n in paths.eval_names() if paths.cross_corpus(n).is_file()]
    lines = ["", "## Cross-corpus evaluation"] if files else []
    for f in files:
        r = read_json(f)
        m = r["metrics"]
        lines += [
            "",
            f"`{r['data']}` split `{r['split']}` (adapter `{r['adapter']}`) through label map `{r['label_map']}` "
            f"({', '.join(r['classes'])}): {r['n_scored']} of {r['n_samples']} samples scored, accuracy "
            f"{_fmt(m.get('accuracy'))}, macro F1 {_fmt(m.get('macro_f1'))}.",
            "",
            f"- run classes without a counterpart: {', '.join(r['unmapped_run_classes']) or 'none'}",
            "- corpus labels without a counterpart (not scored): "
            + (", ".join(f"{k} ({v})" for k, v in r["unmapped_data_labels"].items()) or "none"),
            "- common classes the model cannot predict (not scored): "
            + (", ".join(f"{k} ({v})" for k, v in r["unpredictable_common_classes"].items()) or "none"),
        ]
    return lines


def attribution_section(paths: RunPaths, embedded: set[str]) -> list[str]:
    files = [paths.attribution(n) for n in paths.analysis_names() if paths.attribution(n).is_file()]
    lines = ["", "## Modality attribution (Shapley)"] if files else []
    for f in files:
        saved = read_json(f)
        mods = saved["modalities"]
        lines += [
            "",
            f"Split `{saved['split']}`, task `{saved['task']}`: mean Shapley value of each modality for "
            "the predicted class's probability, per predicted class.",
            "",
        ]
        lines += _table(["class", "n", *mods], [[r["class"], r["n"], *(r[m] for m in mods)] for r in saved["by_class"]])
        image = paths.attribution_plot(saved["split"])
        if image.is_file():
            rel = str(image.relative_to(paths.root))
            embedded.add(rel)
            lines += ["", f"![Modality attribution]({rel})"]
    return lines


def trust_markdown(run_dir: Path, embedded: set[str]) -> list[str]:
    """Every trust section the run folder has files for (markdown lines); images used go into ``embedded``."""
    paths = RunPaths(Path(run_dir))
    return (
        data_check_section(paths)
        + calibration_section(paths, embedded)
        + conformal_section(paths)
        + subgroup_section(paths)
        + cross_corpus_section(paths)
        + attribution_section(paths, embedded)
    )


def trust_html(run_dir: Path, page_dir: Path | None = None) -> str:
    """The same sections as an HTML fragment; images are linked relative to ``page_dir`` (the folder of
    the HTML page that embeds it; default the run folder)."""
    text = "\n".join(trust_markdown(run_dir, set()))
    if not text:
        return ""
    fragment = markdown_it.MarkdownIt("js-default").render(text)  # raw HTML in names is escaped
    if page_dir is None:
        return fragment
    rel = os.path.relpath(Path(run_dir), Path(page_dir))
    return re.sub(r'src="([^":]+)"', lambda m: f'src="{Path(rel) / m.group(1)}"', fragment)
