"""Run-level trust evaluations: calibrate a run, conformal sets on a split, subgroup breakdowns.

A recipe (above training and evaluation): it runs the model over the run's splits and hands the
predictions to the pure functions of ``evaluation.calibration``, ``.conformal`` and ``.subgroups``.

Each takes the loaded run and its model (the caller loads it: ``training.loading.load_model``),
fits only on the calibration split (``data.calibration_split``, else the validation split), and writes
its files where :class:`~affectfusion.rundir.RunPaths` says; the run report picks them up
(:mod:`affectfusion.evaluation.trust_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectfusion.errors import AffectFusionError
from affectfusion.evaluation import calibration, conformal
from affectfusion.evaluation.figures import Drawing, Figures, draw_now
from affectfusion.evaluation.subgroups import N_RESAMPLES, subgroup_report
from affectfusion.io import write_csv, write_json
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun
from affectfusion.training.predict import Predictions, predict


def run_predictions(run: LoadedRun, model: MultimodalModel, split: str, root: str | Path | None = None) -> Predictions:
    ds = load_dataset(run.config, split, root=root, modalities=run.modalities)
    return predict(model, ds, run.scalers)


def _labelled(preds: Predictions, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = preds.labelled(task)
    pred = preds.proba[task] if task in preds.proba else preds.pred[task]
    return pred[keep], preds.y_true[task][keep], keep


def plain(curve: calibration.Reliability) -> dict[str, list[float]]:
    """A reliability curve as lists: the plain data a figure drawing carries."""
    return {k: np.asarray(v).tolist() for k, v in asdict(curve).items()}


def calibrate_run(run: LoadedRun, model: MultimodalModel, figures: Figures | None = None) -> dict[str, Any]:
    """Fit a temperature per classification task on the calibration split (``data.calibration_split``,
    else the validation split) unless that split cannot carry one (``refused`` then says why); score
    calibration before and after on it and the validation and test splits; write ``calibration.json``
    and reliability diagrams (drawn here, or handed to ``figures``: the caller waits for them)."""
    cfg = run.config
    tasks = [t for t in cfg.tasks if t.type in ("classification", "multilabel")]
    if not tasks:
        raise AffectFusionError(f"{run.paths.root}: calibration needs a classification or multilabel task")
    fit_split = cfg.data.fit_split
    splits = list(dict.fromkeys(s for s in (fit_split, cfg.data.val_split, cfg.data.test_split) if s))
    preds = {s: run_predictions(run, model, s) for s in splits}
    result: dict[str, Any] = {"fitted_on": fit_split, "tasks": {}, "plots": {}}
    drawings = []
    for t in tasks:
        data = {s: _labelled(p, t.name)[:2] for s, p in preds.items()}
        data = {s: d for s, d in data.items() if len(d[1])}
        if fit_split not in data:
            continue
        entry, curves = calibration.task_calibration(t, data[fit_split], data, fit_split)
        result["tasks"][t.name] = entry
        shown = splits[-1] if splits[-1] in curves else fit_split
        path = run.paths.reliability_plot(shown, t.name)
        drawings.append(
            Drawing(
                "plot_reliability",
                path,
                {
                    "curves": {k: plain(r) for k, r in curves[shown].items()},
                    "title": f"{t.name}: reliability ({shown})",
                },
            )
        )
        result["plots"][t.name] = str(path.relative_to(run.paths.root))
    if figures is None:
        draw_now(drawings)
    else:
        figures.draw(*drawings)
    write_json(run.paths.calibration, result)
    return result


def conformal_run(
    run: LoadedRun,
    model: MultimodalModel,
    alpha: float,
    split: str,
    lam: float = 0.0,
    k_reg: int = 0,
    seed: int = 0,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Calibrate split conformal per task on the calibration split (temperature-scaled probabilities if
    the run is calibrated) and measure coverage and set size / width on ``split``.

    A task whose calibration split is too small or saturated (:func:`conformal.unfit_reason`) is refused:
    nothing is fitted for it and ``refused`` says why, in ``conformal.json`` (the Predictor then serves
    no set and says so) and in the result."""
    if not 0.0 < alpha < 1.0:
        raise AffectFusionError(f"conformal alpha must be in (0, 1), got {alpha}")
    fit_split = run.config.data.fit_split
    temperatures, _ = calibration.served_temperatures(run.paths, run.config.tasks)
    cal = run_predictions(run, model, fit_split)
    same = split == fit_split and root is None
    test = cal if same else run_predictions(run, model, split, root)
    fitted, scores, refused = {}, {}, {}
    for t in run.config.tasks:
        (cal_pred, cal_y, _), (test_pred, test_y, _) = _labelled(cal, t.name), _labelled(test, t.name)
        if t.name in temperatures:
            cal_pred = calibration.apply_temperature(cal_pred, temperatures[t.name])
            test_pred = calibration.apply_temperature(test_pred, temperatures[t.name])
        if not len(cal_y):
            continue
        reason = conformal.unfit_reason(t, cal_pred, cal_y, alpha, fit_split)
        if reason is not None:
            refused[t.name] = reason
            continue
        conf = conformal.calibrate(t.type, t.name, cal_pred, cal_y, alpha, seed, lam, k_reg)
        fitted[t.name] = conf.to_dict()
        if len(test_y):
            scores[t.name] = {"method": conf.method, **conformal.evaluate(conf, test_pred, test_y, seed)}
    write_json(
        run.paths.conformal,
        {
            "calibrated_on": fit_split,
            "temperatures": {t: temperatures.get(t) for t in fitted},  # what the sets were fitted on
            "tasks": fitted,
            "refused": refused,
        },
    )
    result = {"alpha": alpha, "split": split, "calibrated_on": fit_split, "tasks": scores, "refused": refused}
    write_json(run.paths.coverage(split), result)
    return result


def subgroups_run(
    run: LoadedRun,
    model: MultimodalModel,
    split: str,
    columns: Sequence[str],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    root: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every metric of every task per subgroup of each column on ``split``; writes CSV and gaps JSON."""
    preds = run_predictions(run, model, split, root)
    table, gaps = subgroup_report(preds, run.config.tasks, columns, n_resamples, seed)
    write_csv(table, run.paths.subgroups(split))
    write_json(run.paths.subgroup_gaps(split), {"split": split, "columns": list(columns), "gaps": gaps})
    return table, gaps
