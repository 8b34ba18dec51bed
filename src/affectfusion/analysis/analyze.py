"""``affectfusion analyze``: separability and failure analysis of one run, or of variant runs side by side.

Per run, ``<run>/analysis/<split>/`` gets ``separability.csv``/``.json``, ``projections_<block>.png``,
``failures.json``/``.md`` and a self-contained ``report.html``. For several variant runs,
``out_dir`` also gets the fused-block comparison figure, the blocks × variants separability tables,
the cross-variant failure overlap and a ``report.html`` that links the per-run reports.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from affectfusion.analysis.failures import (
    CASE_COLUMNS,
    MASKING_NOTE,
    analyze_failures,
    case_row,
    cross_variant_failures,
    failures_markdown,
)
from affectfusion.analysis.perturb import keep_only
from affectfusion.analysis.separability import (
    FUSED,
    METHOD_TITLES,
    MIN_PROJECTED,
    PROJECTION_METHODS,
    SCORE_COLUMNS,
    Blocks,
    blocks_from_predictions,
    classification_task,
    plot_block_comparison,
    plot_projections,
    presence,
    separability_frame,
    separability_scores,
)
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import _run_names
from affectfusion.evaluation.report import fmt_value, markdown_table
from affectfusion.io import write_csv, write_json, write_text
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun, read_run
from affectfusion.training.predict import Predictions, predict
from affectfusion.training.trainer import load_model

SCORE_TITLES = {"silhouette": "silhouette", "knn_accuracy": "k-NN accuracy", "probe_accuracy": "linear-probe accuracy"}
SEPARABILITY_NOTE = (
    "Silhouette on standardised embeddings (-1..1, higher = tighter, better-separated classes); k-NN accuracy "
    "(k = 5, 5-fold stratified CV); linear-probe accuracy (logistic regression, stratified 70/30 split). "
    "Chance = majority-class share. Modality blocks hold only the samples that have that modality."
)
CSS = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
img{max-width:100%;margin:.5em 0}.note{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}
"""


@dataclass
class RunAnalysis:
    """One analysed run: the summary written to disk plus what a cross-variant comparison reuses."""

    name: str
    run: LoadedRun
    split: str
    out_dir: Path
    summary: dict[str, Any]
    blocks: Blocks
    coords: dict[str, dict[str, np.ndarray]]  # block -> method -> [n, 2]
    preds: Predictions


def default_split(run: LoadedRun) -> str:
    """The split analysed when none is given: the run's test split, else its validation split."""
    return run.config.data.test_split or run.config.data.val_split


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Projection methods from ``"pca,tsne"`` or a sequence, checked against the known ones."""
    items = methods.split(",") if isinstance(methods, str) else methods
    chosen = tuple(dict.fromkeys(m.strip().lower() for m in items if m.strip()))
    unknown = [m for m in chosen if m not in PROJECTION_METHODS]
    if unknown or not chosen:
        raise AffectFusionError(
            f"unknown projection method(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(PROJECTION_METHODS)}"
        )
    return chosen


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
    )


def _analyze(
    run_dir: Path,
    name: str,
    split: str | None,
    root: str | Path | None,
    cap: int,
    methods: tuple[str, ...],
    seed: int,
    progress: Progress,
) -> RunAnalysis:
    """Analyse one run and write its files; the shared core of :func:`analyze_run` and :func:`analyze_runs`."""
    if cap < 2:
        raise AffectFusionError(f"cap must be at least 2 samples, got {cap}")
    run = read_run(run_dir)
    task = classification_task(run.config)
    split = split or default_split(run)
    out = run.paths.root / "analysis" / split
    model = load_model(run)
    dataset = load_dataset(run.config, split, root=root, modalities=run.modalities)
    step = progress.add_task(f"{name}: predictions", total=None)
    preds = predict(model, dataset, run.scalers, keep_embeddings=True)
    present = presence(dataset)
    unimodal = (
        {m: predict(model, dataset, run.scalers, transform=keep_only([m])) for m in model.modalities}
        if len(model.modalities) > 1
        else None
    )
    blocks = blocks_from_predictions(preds, present, task, cap, seed)
    progress.update(step, description=f"{name}: separability scores")
    scores = {b: separability_scores(X, blocks.labels[b], seed) for b, X in blocks.embeddings.items()}
    progress.remove_task(step)
    failures = analyze_failures(preds, task, present, unimodal)
    header = {
        "run": str(run.paths.root),
        "name": name,
        "split": split,
        "fusion": run.config.model.fusion.name,
        "task": task.name,
        "classes": blocks.classes,
        "n_labelled": blocks.n_labelled,
        "cap": cap,
        "subsampled": blocks.subsampled,
        "seed": seed,
    }
    write_json(out / "separability.json", {**header, "blocks": scores})
    write_csv(separability_frame(scores, cap), out / "separability.csv")
    write_json(out / "failures.json", {**header, **failures})
    write_text(out / "failures.md", failures_markdown(failures, f"{name} ({split})"))

    projectable = [b for b, y in blocks.labels.items() if len(y) >= MIN_PROJECTED]
    too_few = [b for b in blocks.labels if b not in projectable]
    notes = [f"block {b!r}: fewer than {MIN_PROJECTED} samples, not projected" for b in too_few]
    coords, images = {}, {}
    bar = progress.add_task(f"{name}: projections", total=len(projectable) * len(methods))
    for b in projectable:
        progress.update(bar, description=f"{name}: projecting {b}")
        images[b] = out / f"projections_{b}.png"
        n_note = f"n = {len(blocks.labels[b])}" + (f", capped at {cap}" if blocks.subsampled else "")
        coords[b] = plot_projections(
            blocks.embeddings[b],
            blocks.labels[b],
            blocks.classes,
            images[b],
            f"{name}: {b} block ({split}, {n_note})",
            methods,
            seed,
            advance=lambda: progress.advance(bar),
        )
    progress.remove_task(bar)
    summary = {
        **header,
        "methods": list(methods),
        "separability": scores,
        "failures": failures,
        "notes": notes,
        "out_dir": str(out),
        "report": str(out / "report.html"),
        "images": {b: str(p) for b, p in images.items()},
    }
    write_text(out / "report.html", run_report_html(summary, images))
    return RunAnalysis(name, run, split, out, summary, blocks, coords, preds)


def analyze_run(
    run_dir: str | Path,
    split: str | None = None,
    root: str | Path | None = None,
    cap: int = 2000,
    methods: str | Sequence[str] = PROJECTION_METHODS,
    seed: int = 0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Analyse one run on ``split`` (default: test, else validation split) into ``<run>/analysis/<split>/``.

    ``root`` overrides the run's data folder; ``cap`` bounds the samples used for separability and
    projections (stratified, seeded). Returns the summary (scores, failures, paths).
    """
    path = Path(run_dir)
    with _progress(console) as progress:
        return _analyze(path, path.resolve().name, split, root, cap, parse_methods(methods), seed, progress).summary


def analyze_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    split: str | None = None,
    root: str | Path | None = None,
    cap: int = 2000,
    methods: str | Sequence[str] = PROJECTION_METHODS,
    seed: int = 0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Analyse each variant run, then compare them in ``out_dir``: the fused block of every variant
    in one figure, a blocks × variants separability ranking and the cross-variant failure overlap."""
    paths = list(dict.fromkeys(Path(d) for d in run_dirs))
    if not paths:
        raise AffectFusionError("no run directories to analyse")
    chosen = parse_methods(methods)
    names = _run_names([p.resolve() for p in paths])
    out = Path(out_dir)
    with _progress(console) as progress:
        runs = progress.add_task("variants", total=len(paths))
        analyses = []
        for path, name in zip(paths, names, strict=True):
            analyses.append(_analyze(path, name, split, root, cap, chosen, seed, progress))
            progress.advance(runs)
        progress.update(runs, description="comparison figure")
        return _compare(analyses, out, chosen, seed)


def _compare(analyses: list[RunAnalysis], out: Path, methods: tuple[str, ...], seed: int) -> dict[str, Any]:
    """The cross-variant outputs: figure, separability tables, failure overlap, report."""
    notes = []
    first = analyses[0].blocks
    same_task = all(a.blocks.task == first.task and a.blocks.classes == first.classes for a in analyses)
    splits = sorted({a.split for a in analyses})
    if len(splits) > 1:
        notes.append(f"the variants were analysed on different splits ({', '.join(splits)})")
    long = pd.concat(
        [separability_frame(a.summary["separability"]).assign(variant=a.name) for a in analyses], ignore_index=True
    )
    long = long[["variant", *[c for c in long.columns if c != "variant"]]]
    write_csv(long, out / "separability.csv")
    pivots = {m: long.pivot(index="block", columns="variant", values=m) for m in SCORE_COLUMNS}
    block_order = list(dict.fromkeys(long["block"]))
    pivots = {m: p.reindex(index=block_order, columns=[a.name for a in analyses]) for m, p in pivots.items()}
    ranking = _ranking(analyses)
    md = ["# Separability across variants", "", f"Split: {', '.join(splits)}", "", "## Ranking (fused block)", ""]
    md.append(markdown_table(list(ranking.columns), ranking.values.tolist(), _numeric(ranking)))
    for metric, pivot in pivots.items():
        table = pivot.reset_index()
        md += ["", f"## {SCORE_TITLES[metric]} (blocks × variants)", ""]
        md.append(markdown_table(list(table.columns), table.values.tolist(), [False] + [True] * (table.shape[1] - 1)))
    write_text(out / "separability.md", "\n".join(md) + "\n")

    figure = None
    fused = [a for a in analyses if FUSED in a.coords]
    if same_task and fused:
        figure = plot_block_comparison(
            {a.name: (a.blocks.embeddings[FUSED], a.blocks.labels[FUSED]) for a in fused},
            first.classes,
            out / "fused_projections.png",
            f"Fused block across variants ({', '.join(splits)})",
            methods,
            seed,
            coords={a.name: a.coords[FUSED] for a in fused},
        )
    elif not same_task:
        notes.append("the variants have different tasks or classes: no shared figure or failure overlap")

    overlap = None
    if same_task and len(analyses) > 1:
        task = classification_task(analyses[0].run.config)
        overlap, frame = cross_variant_failures({a.name: a.preds for a in analyses}, task)
        write_json(out / "failure_overlap.json", overlap)
        write_csv(frame, out / "failure_overlap.csv")
    result = {
        "out_dir": str(out),
        "report": str(out / "report.html"),
        "runs": [a.summary for a in analyses],
        "ranking": ranking.to_dict(orient="records"),
        "failure_overlap": overlap,
        "notes": notes,
    }
    write_text(out / "report.html", comparison_report_html(analyses, out, ranking, pivots, figure, overlap, notes))
    return result


def _ranking(analyses: list[RunAnalysis]) -> pd.DataFrame:
    """Variants ordered by the fused block's linear-probe accuracy (then k-NN), with test metrics."""
    rows = []
    for a in analyses:
        fused = a.summary["separability"].get(FUSED, {})
        rows.append(
            {
                "variant": a.name,
                "fusion": a.summary["fusion"],
                "split": a.split,
                "accuracy": a.summary["failures"]["accuracy"],
                "macro_f1": a.summary["failures"]["macro_f1"],
                **{f"fused_{m}": fused.get(m) for m in SCORE_COLUMNS},
            }
        )
    df = pd.DataFrame(rows)
    df[[f"fused_{m}" for m in SCORE_COLUMNS]] = df[[f"fused_{m}" for m in SCORE_COLUMNS]].astype(float)
    df = df.sort_values(["fused_probe_accuracy", "fused_knn_accuracy"], ascending=False, na_position="last")
    df.insert(0, "rank", range(1, len(df) + 1))
    return df.reset_index(drop=True)


def _numeric(df: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]


# -- HTML ----------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    """The PNG inlined as a data URI, so the report is one file that can be mailed or moved."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, index: bool = False) -> str:
    cells = df.map(fmt_value)
    if index:
        cells.index = [fmt_value(i) for i in cells.index]
    return cells.to_html(index=index, border=0, escape=True)


def _page(title: str, body: list[str]) -> str:
    head = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
    return f"{head}<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def _best_block(scores: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    scored = {b: s["probe_accuracy"] for b, s in scores.items() if s.get("probe_accuracy") is not None}
    if not scored:
        return None
    best = max(scored, key=scored.__getitem__)
    return best, scored[best]


def _ids_text(entry: dict[str, Any]) -> str:
    return f"{entry['count']}" + (f" (e.g. {', '.join(map(_esc, entry['ids']))})" if entry["ids"] else "")


def _glance(summary: dict[str, Any]) -> list[str]:
    """The few sentences a reader wants before any table."""
    failures, scores = summary["failures"], summary["separability"]
    items = []
    best = _best_block(scores)
    if best:
        fused = scores.get(FUSED, {}).get("probe_accuracy")
        tail = f"; fused block {fused:.3f}" if fused is not None and best[0] != FUSED else ""
        items.append(f"Most linearly separable block: <b>{_esc(best[0])}</b> (probe accuracy {best[1]:.3f}{tail}).")
    gain = failures["fusion_gain"]
    if gain and gain["best_unimodal"]:
        b = gain["best_unimodal"]
        items.append(
            f"Best single modality (others masked): <b>{_esc(b)}</b>, accuracy "
            f"{fmt_value(gain['unimodal_accuracy'][b])} vs fused {fmt_value(gain['fused_accuracy'])}; fusion right "
            f"where {_esc(b)} alone is wrong: {gain['fusion_right_best_wrong']['count']}, the reverse: "
            f"{gain['best_right_fusion_wrong']['count']}."
        )
    if failures["confusion_pairs"]:
        p = failures["confusion_pairs"][0]
        items.append(
            f"Most frequent confusion: <b>{_esc(p['true'])} → {_esc(p['pred'])}</b> ({p['count']} samples, "
            f"{p['share_of_true']:.0%} of {_esc(p['true'])})."
        )
    diff = failures["class_difficulty"]
    items.append(f"Easiest class(es): {_esc(', '.join(diff['easiest']))}; hardest: {_esc(', '.join(diff['hardest']))}.")
    return ["<ul>", *(f"<li>{i}</li>" for i in items), "</ul>"]


def run_report_html(summary: dict[str, Any], images: dict[str, Path]) -> str:
    """One run's analysis as a single self-contained page."""
    f = summary["failures"]
    cap_note = (
        f"{summary['n_labelled']} labelled samples, a stratified random {summary['cap']} of them used here (seed "
        f"{summary['seed']})."
        if summary["subsampled"]
        else f"All {summary['n_labelled']} labelled samples used (cap {summary['cap']})."
    )
    body = [
        f"<h1>Analysis: {_esc(summary['name'])}</h1>",
        f"<p>Run <code>{_esc(summary['run'])}</code>, split <code>{_esc(summary['split'])}</code>, fusion "
        f"<code>{_esc(summary['fusion'])}</code>, task <code>{_esc(summary['task'])}</code> "
        f"({_esc(', '.join(summary['classes']))}): {f['n']} samples, accuracy {fmt_value(f['accuracy'])}, "
        f"macro F1 {fmt_value(f['macro_f1'])}.</p>",
        *_glance(summary),
        "<h2>Separability of each block</h2>",
        _table(separability_frame(summary["separability"]).fillna({"note": ""})),
        f'<p class="note">{_esc(SEPARABILITY_NOTE)} {_esc(cap_note)}</p>',
        "<h2>Projections</h2>",
        f'<p class="note">{_esc(", ".join(METHOD_TITLES[m] for m in summary["methods"]))} of each block\'s '
        "standardised embedding, coloured by true class.</p>",
        *(_img(path, f"projections of the {block} block") for block, path in images.items()),
        *(f'<p class="note">{_esc(n)}</p>' for n in summary["notes"]),
        "<h2>Failures</h2>",
        "<h3>Most frequent confusions</h3>",
    ]
    pairs = pd.DataFrame(f["confusion_pairs"][:10], columns=["true", "pred", "count", "share_of_true"])
    body.append(_table(pairs) if len(pairs) else "<p>No confusions.</p>")
    cm = pd.DataFrame(f["confusion_matrix"], index=f["classes"], columns=f["classes"])
    cm.index.name = "true \\ predicted"
    body += ["<h3>Confusion matrix</h3>", _table(cm.reset_index())]
    ranking = pd.DataFrame(f["class_difficulty"]["ranking"])
    body += ["<h3>Classes from easiest to hardest (F1)</h3>", _table(ranking)]
    body.append("<h3>Most confident wrong predictions</h3>")
    cases = pd.DataFrame([case_row(c) for c in f["cases"]], columns=CASE_COLUMNS)
    body.append(_table(cases) if len(cases) else "<p>No wrong predictions.</p>")
    body.append("<h3>Where fusion helps</h3>")
    gain = f["fusion_gain"]
    if gain is None:
        body.append("<p>Single-modality run: nothing to compare the fusion with.</p>")
    else:
        acc = pd.DataFrame(
            [*gain["unimodal_accuracy"].items(), ("fused", gain["fused_accuracy"])], columns=["block", "accuracy"]
        )
        body.append(_table(acc))
        if gain["best_unimodal"]:
            b = _esc(gain["best_unimodal"])
            body += [
                f"<p>Compared with the best single modality, <b>{b}</b>, on {gain['n_compared']} samples:</p><ul>",
                f"<li>fusion right, {b} alone wrong: {_ids_text(gain['fusion_right_best_wrong'])}</li>",
                f"<li>{b} alone right, fusion wrong: {_ids_text(gain['best_right_fusion_wrong'])}</li>",
                "<li>fusion right where no single modality is: "
                f"{_ids_text(gain['fusion_right_no_single_modality_right'])}</li></ul>",
                _table(pd.DataFrame(gain["by_class"]).T, index=True),
            ]
        body.append(f'<p class="note">{_esc(MASKING_NOTE)}</p>')
    return _page(f"Analysis: {summary['name']} ({summary['split']})", body)


def comparison_report_html(
    analyses: list[RunAnalysis],
    out: Path,
    ranking: pd.DataFrame,
    pivots: dict[str, pd.DataFrame],
    figure: Path | None,
    overlap: dict[str, Any] | None,
    notes: list[str],
) -> str:
    """The variants side by side, linking each run's own report."""
    links = [
        f'<li><a href="{_esc(os.path.relpath(a.out_dir / "report.html", out))}">{_esc(a.name)}</a> '
        f"({_esc(a.summary['fusion'])}, split {_esc(a.split)})</li>"
        for a in analyses
    ]
    body = [
        "<h1>Analysis: variant comparison</h1>",
        "<p>Per-variant reports:</p><ul>",
        *links,
        "</ul>",
        *(f'<p class="note">{_esc(n)}</p>' for n in notes),
        "<h2>Ranking by separability of the fused block</h2>",
        _table(ranking),
        f'<p class="note">{_esc(SEPARABILITY_NOTE)}</p>',
    ]
    for metric, pivot in pivots.items():
        body += [f"<h3>{_esc(SCORE_TITLES[metric])} (blocks × variants)</h3>", _table(pivot, index=True)]
    if figure is not None:
        body += ["<h2>Fused block across variants</h2>", _img(figure, "fused block projections per variant")]
    if overlap is not None:
        v = len(overlap["variants"])
        hist = pd.DataFrame(
            {"variants right": list(overlap["n_correct_histogram"]), "samples": overlap["n_correct_histogram"].values()}
        )
        only = pd.DataFrame(
            {
                "variant": list(overlap["only_this_variant_wrong"]),
                "accuracy": [overlap["accuracy"][n] for n in overlap["only_this_variant_wrong"]],
                "wrong where all others are right": [e["count"] for e in overlap["only_this_variant_wrong"].values()],
            }
        )
        body += [
            "<h2>Failures across variants</h2>",
            f"<p>{overlap['n_shared']} samples scored by all {v} variants"
            + (f" ({overlap['n_only_in_some']} more only by some)" if overlap["n_only_in_some"] else "")
            + f". Wrong in every variant: {_ids_text(overlap['all_wrong'])}. Wrong in some but not all: "
            f"{_ids_text(overlap['some_wrong'])}. Right in all: {overlap['all_right']}.</p>",
            "<h3>How many variants get each sample right</h3>",
            _table(hist),
            "<h3>Errors of one variant alone</h3>",
            _table(only),
            "<h3>Error overlap (Jaccard of the wrong-sample sets)</h3>",
            _table(pd.DataFrame(overlap["error_jaccard"]).T, index=True),
        ]
        if not overlap["labels_agree"]:
            body.append('<p class="note">The variants disagree on some labels of shared sample ids.</p>')
    return _page("Analysis: variant comparison", body)
