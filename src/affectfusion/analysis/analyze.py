"""``affectfusion analyze``: separability and failure analysis of one run, or of variant runs side by side.

Per run, ``<run>/analysis/<split>/`` gets ``separability.csv``/``.json``, ``projections_<block>.png``,
``failures.json``/``.md`` and a self-contained ``report.html``. For several variant runs,
``out_dir`` also gets the fused-block comparison figure, the blocks × variants separability tables,
the cross-variant failure overlap and a ``report.html`` that links the per-run reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from affectfusion.analysis.analyze_report import RunAnalysis, comparison_report_html, run_report_html
from affectfusion.analysis.attribution import write_attribution
from affectfusion.analysis.failures import (
    analyze_failures,
    cross_variant_failures,
    failures_markdown,
)
from affectfusion.analysis.multilabel_analysis import analyze_multilabel, multilabel_task
from affectfusion.analysis.perturb import keep_only
from affectfusion.analysis.separability import (
    FUSED,
    MIN_PROJECTED,
    PROJECTION_METHODS,
    SCORE_COLUMNS,
    SCORE_TITLES,
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
from affectfusion.evaluation.report import markdown_table
from affectfusion.evaluation.trust_report import trust_html
from affectfusion.io import write_csv, write_json, write_text
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import HTML_REPORT, LoadedRun, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict


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
    out = run.paths.analysis_dir(split)
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
    if len(model.modalities) > 1:  # modality attribution per class (Shapley over subsets)
        write_attribution(model, dataset, task, run.paths, split, f"{name}: modality attribution ({split})")
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
        "report": str(out / HTML_REPORT),
        "images": {b: str(p) for b, p in images.items()},
    }
    page = run_report_html(summary, images)
    write_text(out / HTML_REPORT, page.replace("</body>", trust_html(run.paths.root, out) + "\n</body>"))
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
    tasks = read_run(path).config.tasks
    if not any(t.type == "classification" for t in tasks) and multilabel_task(tasks) is not None:
        return analyze_multilabel(path, split, root)  # per-label errors and attribution instead of separability
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
        "report": str(out / HTML_REPORT),
        "runs": [a.summary for a in analyses],
        "ranking": ranking.to_dict(orient="records"),
        "failure_overlap": overlap,
        "notes": notes,
    }
    write_text(out / HTML_REPORT, comparison_report_html(analyses, out, ranking, pivots, figure, overlap, notes))
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
