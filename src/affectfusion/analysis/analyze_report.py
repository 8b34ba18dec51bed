"""The record of one analysed run, and the HTML pages of ``affectfusion analyze`` (one run; variants side by side)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectfusion.analysis.failures import CASE_COLUMNS, MASKING_NOTE, case_row
from affectfusion.analysis.separability import (
    FUSED,
    METHOD_TITLES,
    SCORE_TITLES,
    SEPARABILITY_NOTE,
    Blocks,
    separability_frame,
)
from affectfusion.evaluation.html import esc, img, page, table
from affectfusion.evaluation.report import fmt_value
from affectfusion.rundir import HTML_REPORT, LoadedRun
from affectfusion.training.predict import Predictions


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


def _best_block(scores: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    scored = {b: s["probe_accuracy"] for b, s in scores.items() if s.get("probe_accuracy") is not None}
    if not scored:
        return None
    best = max(scored, key=scored.__getitem__)
    return best, scored[best]


def _ids_text(entry: dict[str, Any]) -> str:
    return f"{entry['count']}" + (f" (e.g. {', '.join(map(esc, entry['ids']))})" if entry["ids"] else "")


def _glance(summary: dict[str, Any]) -> list[str]:
    """The few sentences a reader wants before any table."""
    failures, scores = summary["failures"], summary["separability"]
    items = []
    best = _best_block(scores)
    if best:
        fused = scores.get(FUSED, {}).get("probe_accuracy")
        tail = f"; fused block {fused:.3f}" if fused is not None and best[0] != FUSED else ""
        items.append(f"Most linearly separable block: <b>{esc(best[0])}</b> (probe accuracy {best[1]:.3f}{tail}).")
    gain = failures["fusion_gain"]
    if gain and gain["best_unimodal"]:
        b = gain["best_unimodal"]
        items.append(
            f"Best single modality (others masked): <b>{esc(b)}</b>, accuracy "
            f"{fmt_value(gain['unimodal_accuracy'][b])} vs fused {fmt_value(gain['fused_accuracy'])}; fusion right "
            f"where {esc(b)} alone is wrong: {gain['fusion_right_best_wrong']['count']}, the reverse: "
            f"{gain['best_right_fusion_wrong']['count']}."
        )
    if failures["confusion_pairs"]:
        p = failures["confusion_pairs"][0]
        items.append(
            f"Most frequent confusion: <b>{esc(p['true'])} → {esc(p['pred'])}</b> ({p['count']} samples, "
            f"{p['share_of_true']:.0%} of {esc(p['true'])})."
        )
    diff = failures["class_difficulty"]
    items.append(f"Easiest class(es): {esc(', '.join(diff['easiest']))}; hardest: {esc(', '.join(diff['hardest']))}.")
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
        f"<h1>Analysis: {esc(summary['name'])}</h1>",
        f"<p>Run <code>{esc(summary['run'])}</code>, split <code>{esc(summary['split'])}</code>, fusion "
        f"<code>{esc(summary['fusion'])}</code>, task <code>{esc(summary['task'])}</code> "
        f"({esc(', '.join(summary['classes']))}): {f['n']} samples, accuracy {fmt_value(f['accuracy'])}, "
        f"macro F1 {fmt_value(f['macro_f1'])}.</p>",
        *_glance(summary),
        "<h2>Separability of each block</h2>",
        table(separability_frame(summary["separability"]).fillna({"note": ""})),
        f'<p class="note">{esc(SEPARABILITY_NOTE)} {esc(cap_note)}</p>',
        "<h2>Projections</h2>",
        f'<p class="note">{esc(", ".join(METHOD_TITLES[m] for m in summary["methods"]))} of each block\'s '
        "standardised embedding, coloured by true class.</p>",
        *(img(path, f"projections of the {block} block") for block, path in images.items()),
        *(f'<p class="note">{esc(n)}</p>' for n in summary["notes"]),
        "<h2>Failures</h2>",
        "<h3>Most frequent confusions</h3>",
    ]
    pairs = pd.DataFrame(f["confusion_pairs"][:10], columns=["true", "pred", "count", "share_of_true"])
    body.append(table(pairs) if len(pairs) else "<p>No confusions.</p>")
    cm = pd.DataFrame(f["confusion_matrix"], index=f["classes"], columns=f["classes"])
    cm.index.name = "true \\ predicted"
    body += ["<h3>Confusion matrix</h3>", table(cm.reset_index())]
    ranking = pd.DataFrame(f["class_difficulty"]["ranking"])
    body += ["<h3>Classes from easiest to hardest (F1)</h3>", table(ranking)]
    body.append("<h3>Most confident wrong predictions</h3>")
    cases = pd.DataFrame([case_row(c) for c in f["cases"]], columns=CASE_COLUMNS)
    body.append(table(cases) if len(cases) else "<p>No wrong predictions.</p>")
    body.append("<h3>Where fusion helps</h3>")
    gain = f["fusion_gain"]
    if gain is None:
        body.append("<p>Single-modality run: nothing to compare the fusion with.</p>")
    else:
        acc = pd.DataFrame(
            [*gain["unimodal_accuracy"].items(), ("fused", gain["fused_accuracy"])], columns=["block", "accuracy"]
        )
        body.append(table(acc))
        if gain["best_unimodal"]:
            b = esc(gain["best_unimodal"])
            body += [
                f"<p>Compared with the best single modality, <b>{b}</b>, on {gain['n_compared']} samples:</p><ul>",
                f"<li>fusion right, {b} alone wrong: {_ids_text(gain['fusion_right_best_wrong'])}</li>",
                f"<li>{b} alone right, fusion wrong: {_ids_text(gain['best_right_fusion_wrong'])}</li>",
                "<li>fusion right where no single modality is: "
                f"{_ids_text(gain['fusion_right_no_single_modality_right'])}</li></ul>",
                table(pd.DataFrame(gain["by_class"]).T, index=True),
            ]
        body.append(f'<p class="note">{esc(MASKING_NOTE)}</p>')
    return page(f"Analysis: {summary['name']} ({summary['split']})", body)


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
        f'<li><a href="{esc(os.path.relpath(a.out_dir / HTML_REPORT, out))}">{esc(a.name)}</a> '
        f"({esc(a.summary['fusion'])}, split {esc(a.split)})</li>"
        for a in analyses
    ]
    body = [
        "<h1>Analysis: variant comparison</h1>",
        "<p>Per-variant reports:</p><ul>",
        *links,
        "</ul>",
        *(f'<p class="note">{esc(n)}</p>' for n in notes),
        "<h2>Ranking by separability of the fused block</h2>",
        table(ranking),
        f'<p class="note">{esc(SEPARABILITY_NOTE)}</p>',
    ]
    for metric, pivot in pivots.items():
        body += [f"<h3>{esc(SCORE_TITLES[metric])} (blocks × variants)</h3>", table(pivot, index=True)]
    if figure is not None:
        body += ["<h2>Fused block across variants</h2>", img(figure, "fused block projections per variant")]
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
            table(hist),
            "<h3>Errors of one variant alone</h3>",
            table(only),
            "<h3>Error overlap (Jaccard of the wrong-sample sets)</h3>",
            table(pd.DataFrame(overlap["error_jaccard"]).T, index=True),
        ]
        if not overlap["labels_agree"]:
            body.append('<p class="note">The variants disagree on some labels of shared sample ids.</p>')
    return page("Analysis: variant comparison", body)
