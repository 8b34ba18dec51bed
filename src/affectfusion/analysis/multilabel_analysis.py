"""``analyze`` for a multi-label run (GoEmotions): what separability and single-label failure
analysis cannot say when a sample has several classes.

Per label: F1 / precision / recall at the tuned threshold, how often it is missed and how often it
is predicted wrongly, which other label is predicted when it is missed (the multi-label analogue of
a confusion pair), and how much each modality contributes to its probability (mean Shapley value
over the samples that carry the label). Written to ``<run>/analysis/<split>/`` as
a JSON summary and ``report.html`` (with the run's trust sections).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectfusion.analysis.attribution import dataset_shapley
from affectfusion.config import TaskConfig
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.html import esc, page, table
from affectfusion.evaluation.metrics import task_metrics
from affectfusion.evaluation.trust_report import trust_html
from affectfusion.io import write_json, write_text
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import HTML_REPORT, read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict


def multilabel_task(tasks: list[TaskConfig]) -> TaskConfig | None:
    return next((t for t in tasks if t.type == "multilabel"), None)


def label_errors(y: np.ndarray, p: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per label: support, misses (false negatives), false alarms, and the label most often predicted
    in the same sample when it is missed."""
    y, p = y.astype(bool), p.astype(bool)
    rows = []
    for k, c in enumerate(classes):
        missed = y[:, k] & ~p[:, k]
        instead = (p[missed] & ~y[missed]).sum(0) if missed.any() else np.zeros(len(classes), int)
        rows.append(
            {
                "label": c,
                "support": int(y[:, k].sum()),
                "missed": int(missed.sum()),
                "false_alarms": int((p[:, k] & ~y[:, k]).sum()),
                "predicted_instead": classes[int(instead.argmax())] if instead.max() > 0 else "",
                "instead_count": int(instead.max()),
            }
        )
    return pd.DataFrame(rows)


def analyze_multilabel(run_dir: str | Path, split: str | None = None, root: str | Path | None = None) -> dict[str, Any]:
    """Analyse a multi-label run on ``split`` (default: test, else validation split)."""
    run = read_run(run_dir)
    task = multilabel_task(run.config.tasks)
    if task is None:
        raise AffectFusionError(f"run {run.config.name!r} has no multi-label task")
    split = split or run.config.data.test_split or run.config.data.val_split
    model = load_model(run)
    dataset = load_dataset(run.config, split, root=root, modalities=run.modalities)
    preds = predict(model, dataset, run.scalers)
    keep = preds.labelled(task.name)
    classes = task.classes or []
    y, p = preds.y_true[task.name][keep].astype(int), preds.pred[task.name][keep]
    metrics = task_metrics(task, y, p)
    per_label = pd.DataFrame([{"label": c, **v} for c, v in metrics["per_class"].items()])
    errors = label_errors(y, p, classes)
    summary: dict[str, Any] = {
        "run": str(run.paths.root),
        "split": split,
        "task": task.name,
        "n": int(keep.sum()),
        "metrics": {k: metrics[k] for k in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy")},
        "per_label": per_label.to_dict("records"),
        "errors": errors.to_dict("records"),
    }
    attribution = None
    if len(model.modalities) > 1:
        phi, _ = dataset_shapley(model, dataset, task)  # modality -> [N, K]: each label's probability
        rows = []
        for k, c in enumerate(classes):
            carriers = keep & (preds.y_true[task.name][:, k] == 1)
            if carriers.any():
                rows.append(
                    {"label": c, "n": int(carriers.sum()), **{m: float(x[carriers, k].mean()) for m, x in phi.items()}}
                )
        attribution = pd.DataFrame(rows)
        summary["attribution_by_label"] = attribution.to_dict("records")
    out = run.paths.analysis_dir(split)
    write_json(run.paths.multilabel_analysis(split), summary)
    m = summary["metrics"]
    body = [
        f"<h1>Analysis: {esc(run.config.name)} (multi-label)</h1>",
        f"<p>Split <code>{esc(split)}</code>, task <code>{esc(task.name)}</code>, {summary['n']} labelled samples: "
        f"micro F1 {m['micro_f1']:.3f}, macro F1 {m['macro_f1']:.3f}, samples F1 {m['samples_f1']:.3f}, "
        f"subset accuracy {m['subset_accuracy']:.3f}.</p>",
        "<h2>Per label</h2>",
        table(per_label.merge(errors.drop(columns=["support"]), on="label", how="left")),
        "<h2>Modality attribution per label</h2>",
        table(attribution) if attribution is not None else "<p>Single-modality run: nothing to attribute.</p>",
        '<p class="note">Mean Shapley value of each modality for the label\'s probability, over the samples '
        "that carry the label (presence masking; values sum to p(all) - p(none)).</p>",
        trust_html(run.paths.root, out),
    ]
    write_text(out / HTML_REPORT, page(f"Analysis: {run.config.name} ({split})", body))
    summary["report"] = str(out / HTML_REPORT)
    return summary
