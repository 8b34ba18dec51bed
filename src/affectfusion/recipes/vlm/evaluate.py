"""Scoring a VLM's generated answers.

Accuracy and F1 of the parsed emotion, the 6-d vector's error, and AU agreement with the label's
prototype (the AUs are derived from the label, not annotated).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from affectfusion.io import write_csv, write_json
from affectfusion.recipes.vlm.items import NO_LABEL, FaceItem, prepare_faces
from affectfusion.recipes.vlm.predictor import VLMPrediction, VLMPredictor
from affectfusion.recipes.vlm.targets import EMOTIONS, PROTOTYPES, au_code, target_vector
from affectfusion.rundir import RunPaths


def score_predictions(
    items: Sequence[FaceItem],
    predictions: Sequence[VLMPrediction | None],
    label_map: dict[str, str],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics of the parsed answers against the labels, and one row per image.

    ``None`` predictions (unreadable image, or no face with ``face.no_face: skip``) are not scored.
    Action units are scored against the label's EMFACS prototype, not against annotated AUs.
    """

    rows = []
    for item, pred in zip(items, predictions, strict=True):
        if pred is None:
            continue
        rows.append(
            {
                "id": item.id,
                "source": item.source,
                "label": item.label,
                "pred_label": pred.label,
                "correct": pred.label == item.label,
                "parse_ok": pred.parse_ok,
                "face_found": pred.face_found,
                "emotions": ";".join(pred.emotions),
                "emotion_vector": ";".join(f"{pred.emotion_vector[e]:g}" for e in EMOTIONS)
                if pred.emotion_vector
                else "",
                "action_units": ";".join(pred.action_units),
                "issues": "; ".join(pred.issues),
                "text": pred.text,
            }
        )
    df = pd.DataFrame(rows)
    metrics: dict[str, Any] = {"n": len(rows), "n_not_scored": len(items) - len(rows), "classes": list(label_map)}
    if not rows:
        return metrics, df
    y_true = df["label"].tolist()
    y_pred = [p if p is not None else NO_LABEL for p in df["pred_label"].tolist()]
    classes = list(label_map)
    tp = fp = fn = 0
    errors = []
    for item, pred in zip(items, predictions, strict=True):
        if pred is None:
            continue
        expected = {au_code(a) for a in PROTOTYPES[label_map[item.label]]}
        got = set(pred.action_units)
        tp, fp, fn = tp + len(expected & got), fp + len(got - expected), fn + len(expected - got)
        if pred.emotion_vector:
            target = np.array(target_vector(label_map[item.label]))
            errors.append(np.abs(np.array([pred.emotion_vector[e] for e in EMOTIONS]) - target).mean())
    precision = tp / (tp + fp) if tp + fp else 0.0
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected with a few images
        warnings.simplefilter("ignore", UserWarning)
        balanced_accuracy = balanced_accuracy_score(y_true, y_pred)
    recall = tp / (tp + fn) if tp + fn else 0.0
    metrics.update(
        {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy,
            "macro_f1": f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0),
            "weighted_f1": f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0),
            "parse_rate": float(df["parse_ok"].mean()),
            "label_rate": float(df["pred_label"].notna().mean()),
            "face_found_rate": float(df["face_found"].mean()),
            "au_precision_vs_prototype": precision,
            "au_recall_vs_prototype": recall,
            "au_f1_vs_prototype": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "vector_mae": float(np.mean(errors)) if errors else None,
            "per_class_f1": dict(
                zip(classes, f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0), strict=True)
            ),
        }
    )
    return metrics, df


def evaluate_items(
    predictor: VLMPredictor, items: Sequence[FaceItem], out_dir: Path, split: str, console: Console | None = None
) -> dict[str, Any]:
    """Generate for every item (face prep in chunks, so memory stays flat), score, write eval files."""
    chunk = max(1, predictor.cfg.generation.batch_size) * 4
    predictions: list[VLMPrediction | None] = []
    failures: list[str] = []
    started = time.perf_counter()
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        prepared, bad = prepare_faces(part, predictor.preparer)
        failures += bad
        preds = predictor.predict_prepared(prepared)
        for (crop, _), pred in zip(prepared, preds, strict=True):
            predictions.append(pred if crop is not None else None)
        if console is not None:
            console.print(f"  {split}: {min(start + chunk, len(items))}/{len(items)} images", highlight=False)
    metrics, df = score_predictions(items, predictions, predictor.label_map)
    metrics.update(
        {
            "split": split,
            "n_unreadable": len(failures),
            "unreadable": failures[:20],
            "seconds_per_image": (time.perf_counter() - started) / max(1, len(items)),
        }
    )
    write_json(out_dir / RunPaths.METRICS, metrics)
    write_csv(df, out_dir / RunPaths.PREDICTIONS)
    return metrics
