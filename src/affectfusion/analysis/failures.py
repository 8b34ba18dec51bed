"""Where a run fails and where its fusion earns its keep (P2's failure-case report, for any run).

For one run: the most frequent confusions, the most confident wrong predictions with what the
fusion weighted or attended to, the easiest and hardest classes, and a comparison of the fused
prediction with each modality alone (the others masked at evaluation time, no retraining). For
variant runs scored on the same samples: which samples every variant gets wrong and which only some.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from affectfusion.config import TaskConfig
from affectfusion.evaluation.metrics import classification_metrics
from affectfusion.evaluation.report import fmt_value, markdown_table
from affectfusion.training.predict import Predictions

N_CASES = 5
N_PAIRS = 5
N_EXAMPLES = 10
MASKING_NOTE = (
    "Unimodal predictions mask the other modalities of the trained fused model (no retraining); a model "
    "trained without modality dropout may under-use a lone modality, which flatters fusion."
)


def confusion_pairs(cm: Sequence[Sequence[int]], classes: Sequence[str], top: int | None = None) -> list[dict]:
    """Off-diagonal cells, most frequent first: (true, pred, count, share of the true class)."""
    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(1)
    pairs = [
        {
            "true": classes[i],
            "pred": classes[j],
            "count": int(counts[i, j]),
            "share_of_true": float(counts[i, j] / rows[i]),
        }
        for i, j in zip(*np.nonzero(counts), strict=True)
        if i != j
    ]
    pairs.sort(key=lambda p: (-p["count"], -p["share_of_true"]))
    return pairs[:top] if top is not None else pairs


def class_difficulty(per_class: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Classes present in the truth ranked by F1 (recall breaks ties), easiest first."""
    ranking = [{"class": c, **v} for c, v in per_class.items() if v["support"] > 0]
    ranking.sort(key=lambda r: (r["f1"], r["recall"]), reverse=True)
    k = max(1, min(3, len(ranking) // 2))
    return {
        "ranking": ranking,
        "easiest": [r["class"] for r in ranking[:k]],
        "hardest": [r["class"] for r in ranking[::-1][:k]],
    }


def sample_explanations(explanations: dict[str, np.ndarray], i: int, modalities: Sequence[str]) -> dict[str, Any]:
    """Sample ``i``'s fusion explanations by modality name.

    ``[M]`` weights become {modality: weight}, ``[M, M]`` attention {query: {key: weight}}, other
    ``[M, ...]`` tensors (gates) their per-modality mean. Time-step maps between two modalities
    (MulT's ``attention:a<-b``) are too large for a report and left out.
    """
    out: dict[str, Any] = {}
    n = len(modalities)
    for name, values in explanations.items():
        v = values[i]
        if "<-" in name or v.ndim == 0 or v.shape[0] != n:
            continue
        if v.ndim == 1:
            out[name] = dict(zip(modalities, v.tolist(), strict=True))
        elif v.shape == (n, n):
            rows = zip(modalities, v.tolist(), strict=True)
            out[name] = {q: dict(zip(modalities, row, strict=True)) for q, row in rows}
        else:
            out[f"{name} (mean)"] = dict(zip(modalities, v.reshape(n, -1).mean(1).tolist(), strict=True))
    return out


def failure_cases(
    preds: Predictions,
    task: TaskConfig,
    present: dict[str, np.ndarray],
    modalities: Sequence[str],
    k: int = N_CASES,
) -> list[dict[str, Any]]:
    """The ``k`` most confident wrong predictions: where the model is sure and wrong is most telling."""
    classes = task.classes or []
    y, pred, proba = preds.y_true[task.name], preds.pred[task.name], preds.proba[task.name]
    wrong = np.flatnonzero((y >= 0) & (pred != y))
    confidence = proba[wrong, pred[wrong]]
    cases = []
    for i in wrong[np.argsort(-confidence, kind="stable")][:k]:
        cases.append(
            {
                "id": preds.ids[i],
                "source": preds.sources[i],
                "group": preds.groups[i],
                "true": classes[y[i]],
                "pred": classes[pred[i]],
                "confidence": float(proba[i, pred[i]]),
                "p_true": float(proba[i, y[i]]),
                "present": [m for m in modalities if present[m][i]],
                "explanations": sample_explanations(preds.explanations, i, modalities),
            }
        )
    return cases


def _ids(mask: np.ndarray, ids: Sequence[str], limit: int) -> dict[str, Any]:
    return {"count": int(mask.sum()), "ids": [ids[i] for i in np.flatnonzero(mask)[:limit]]}


def fusion_gain(
    preds: Predictions,
    unimodal: dict[str, Predictions],
    task: TaskConfig,
    present: dict[str, np.ndarray],
    examples: int = N_EXAMPLES,
) -> dict[str, Any]:
    """Fused correctness against each modality alone; the comparison uses the best unimodal block.

    A modality's accuracy counts only samples that have it (alone on a sample without it, the model
    sees nothing). Counts are over labelled samples that have the best modality.
    """
    classes = task.classes or []
    y, fused = preds.y_true[task.name], preds.pred[task.name]
    labelled = y >= 0
    fused_ok = labelled & (fused == y)
    uni_ok = {m: labelled & present[m] & (p.pred[task.name] == y) for m, p in unimodal.items()}
    accuracy = {}
    for m, ok in uni_ok.items():
        n = int((labelled & present[m]).sum())
        accuracy[m] = float(ok.sum() / n) if n else None
    scored = {m: a for m, a in accuracy.items() if a is not None}
    out: dict[str, Any] = {
        "fused_accuracy": float(fused_ok.sum() / labelled.sum()),
        "unimodal_accuracy": accuracy,
        "best_unimodal": None,
        "note": MASKING_NOTE,
    }
    if not scored:
        return out
    best = max(scored, key=scored.__getitem__)
    compared = labelled & present[best]
    helps = compared & fused_ok & ~uni_ok[best]
    hurts = compared & ~fused_ok & uni_ok[best]
    no_single = labelled & fused_ok & ~np.logical_or.reduce(list(uni_ok.values()))
    y_safe = np.where(labelled, y, 0)
    out.update(
        best_unimodal=best,
        n_compared=int(compared.sum()),
        fusion_right_best_wrong=_ids(helps, preds.ids, examples),
        best_right_fusion_wrong=_ids(hurts, preds.ids, examples),
        fusion_right_no_single_modality_right=_ids(no_single, preds.ids, examples),
        by_class={
            c: {"fusion_helps": int(h), "fusion_hurts": int(u)}
            for c, h, u in zip(
                classes,
                np.bincount(y_safe[helps], minlength=len(classes)),
                np.bincount(y_safe[hurts], minlength=len(classes)),
                strict=True,
            )
        },
    )
    return out


def analyze_failures(
    preds: Predictions,
    task: TaskConfig,
    present: dict[str, np.ndarray],
    unimodal: dict[str, Predictions] | None = None,
    k: int = N_CASES,
) -> dict[str, Any]:
    """Everything in ``failures.json`` for one run: metrics, confusions, classes, cases, fusion gain."""
    modalities = list(present)
    classes = task.classes or []
    y, pred = preds.y_true[task.name], preds.pred[task.name]
    labelled = y >= 0
    metrics = classification_metrics(y[labelled], pred[labelled], classes)
    return {
        "task": task.name,
        "n": int(labelled.sum()),
        "n_wrong": int((labelled & (pred != y)).sum()),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "classes": classes,
        "confusion_matrix": metrics["confusion_matrix"],
        "confusion_pairs": confusion_pairs(metrics["confusion_matrix"], classes),
        "class_difficulty": class_difficulty(metrics["per_class"]),
        "cases": failure_cases(preds, task, present, modalities, k),
        "fusion_gain": fusion_gain(preds, unimodal, task, present) if unimodal else None,
    }


def cross_variant_failures(
    variants: dict[str, Predictions], task: TaskConfig, examples: int = N_EXAMPLES
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Error overlap of variant runs on the samples they share (matched by id).

    Returns the summary and a per-sample frame (truth, each variant's prediction, how many
    variants are right); samples every variant gets wrong are the data's hard core, errors of one
    variant alone are that variant's own weakness.
    """
    classes = np.asarray(task.classes or [], dtype=object)
    names = list(variants)
    first = variants[names[0]]
    shared = set.intersection(*(set(p.ids) for p in variants.values()))
    ids = [i for i in first.ids if i in shared]
    rows = {name: pd.Series(np.arange(len(p.ids)), index=p.ids)[ids].to_numpy() for name, p in variants.items()}
    y = first.y_true[task.name][rows[names[0]]]
    labelled = y >= 0
    agree = all(np.array_equal(p.y_true[task.name][rows[n]], y) for n, p in variants.items())
    ids = [i for i, ok in zip(ids, labelled, strict=True) if ok]
    y = y[labelled]
    pred = np.stack([variants[n].pred[task.name][rows[n]][labelled] for n in names], 1)  # [N, V]
    correct = pred == y[:, None]
    n_correct = correct.sum(1)
    v = len(names)
    frame = pd.DataFrame({"id": ids, "true": classes[y], "n_correct": n_correct})
    for j, name in enumerate(names):
        frame[f"pred_{name}"] = classes[pred[:, j]]
    wrong = ~correct
    union = (wrong[:, :, None] | wrong[:, None, :]).sum(0)
    jaccard = np.divide((wrong[:, :, None] & wrong[:, None, :]).sum(0), union, out=np.ones((v, v)), where=union > 0)
    summary = {
        "variants": names,
        "n_shared": len(ids),
        "n_only_in_some": len(set.union(*(set(p.ids) for p in variants.values()))) - len(shared),
        "labels_agree": agree,
        "all_wrong": _ids(n_correct == 0, ids, examples),
        "some_wrong": _ids((n_correct > 0) & (n_correct < v), ids, examples),
        "all_right": int((n_correct == v).sum()),
        "n_correct_histogram": {int(k): int((n_correct == k).sum()) for k in range(v + 1)},
        "accuracy": {n: float(correct[:, j].mean()) if len(ids) else None for j, n in enumerate(names)},
        "only_this_variant_wrong": {
            n: _ids(wrong[:, j] & (n_correct == v - 1), ids, examples) for j, n in enumerate(names)
        },
        "error_jaccard": {a: dict(zip(names, jaccard[j].tolist(), strict=True)) for j, a in enumerate(names)},
    }
    return summary, frame


def format_explanations(explanations: dict[str, Any]) -> str:
    """One line per sample: ``modality_weights: text 0.61, audio 0.39``; attention rows as ``q->k``."""
    parts = []
    for name, value in explanations.items():
        flat = {
            f"{q}->{k}" if isinstance(row, dict) else q: w
            for q, row in value.items()
            for k, w in (row.items() if isinstance(row, dict) else [(None, row)])
        }
        parts.append(f"{name}: " + ", ".join(f"{m} {w:.2f}" for m, w in flat.items()))
    return "; ".join(parts)


CASE_COLUMNS = ["id", "source", "true", "predicted", "confidence", "present", "fusion explanations"]


def case_row(case: dict[str, Any]) -> tuple:
    """A failure case as a table row (markdown and HTML reports), in ``CASE_COLUMNS`` order."""
    explained = format_explanations(case["explanations"]) or "none"
    present = ", ".join(case["present"])
    return case["id"], case["source"], case["true"], case["pred"], case["confidence"], present, explained


def failures_markdown(report: dict[str, Any], title: str) -> str:
    """``failures.md``: the same content as ``failures.json``, for reading."""
    lines = [
        f"# Failure analysis: {title}",
        "",
        f"Task `{report['task']}`: {report['n']} labelled samples, {report['n_wrong']} wrong "
        f"(accuracy {fmt_value(report['accuracy'])}, macro F1 {fmt_value(report['macro_f1'])}).",
        "",
        "## Most frequent confusions",
        "",
    ]
    pairs = report["confusion_pairs"][:N_PAIRS]
    if pairs:
        rows = [[p["true"], p["pred"], p["count"], p["share_of_true"]] for p in pairs]
        header = ["true", "predicted", "count", "share of true class"]
        lines.append(markdown_table(header, rows, [False, False, True, True]))
    else:
        lines.append("No confusions.")
    diff = report["class_difficulty"]
    rows = [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]] for r in diff["ranking"]]
    lines += [
        "",
        "## Easiest and hardest classes (by F1)",
        "",
        f"Easiest: {', '.join(diff['easiest'])}. Hardest: {', '.join(diff['hardest'])}.",
        "",
        markdown_table(["class", "precision", "recall", "F1", "support"], rows, [False, *[True] * 4]),
        "",
        "## Most confident failure cases",
        "",
    ]
    if report["cases"]:
        rows = [list(case_row(c)) for c in report["cases"]]
        lines.append(markdown_table(CASE_COLUMNS, rows, [False] * 4 + [True, False, False]))
    else:
        lines.append("No wrong predictions.")
    gain = report["fusion_gain"]
    lines += ["", "## Where fusion helps", ""]
    if gain is None:
        lines.append("Single-modality run: nothing to compare the fusion with.")
    else:
        acc = [[m, a] for m, a in gain["unimodal_accuracy"].items()] + [["fused", gain["fused_accuracy"]]]
        lines += [markdown_table(["block", "accuracy"], acc, [False, True]), ""]
        if gain["best_unimodal"]:
            helps, hurts = gain["fusion_right_best_wrong"], gain["best_right_fusion_wrong"]
            lines += [
                f"Best single modality: **{gain['best_unimodal']}** ({gain['n_compared']} samples compared).",
                "",
                f"- fusion right, {gain['best_unimodal']} alone wrong: {helps['count']}"
                + (f" (e.g. {', '.join(helps['ids'])})" if helps["ids"] else ""),
                f"- {gain['best_unimodal']} alone right, fusion wrong: {hurts['count']}"
                + (f" (e.g. {', '.join(hurts['ids'])})" if hurts["ids"] else ""),
                f"- fusion right where no single modality is: {gain['fusion_right_no_single_modality_right']['count']}",
                "",
            ]
        lines.append(f"_{gain['note']}_")
    return "\n".join(lines) + "\n"
