"""What a run's trust files add to each prediction: calibrated probabilities (the validation-fitted
temperature), conformal prediction sets / intervals, and the Shapley attribution to each modality.

Used by the Predictor (and through it ``predict``, the REST API and the dashboard): given the
predictions of a batch of samples it returns, per sample and task, the extra output fields. A run
without ``calibration.json`` / ``conformal.json`` simply gets no such fields; a refused, unreadable,
invalid or stale entry gets none either, and ``trust_warnings`` says why (never an error).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affectfusion.analysis.attribution import ShapleyBudget, batch_shapley
from affectfusion.data.types import MultimodalDataset
from affectfusion.evaluation.calibration import apply_temperature, served_temperatures
from affectfusion.evaluation.conformal import Conformal, served_conformal
from affectfusion.models.model import MultimodalModel
from affectfusion.rundir import LoadedRun
from affectfusion.training.predict import Predictions, make_loader


class TrustLayer:
    """A run's temperatures and conformal predictors, read once when the Predictor loads."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        tasks = run.config.tasks
        self.temperatures, no_temperature = served_temperatures(run.paths, tasks)
        self.conformal, no_set = served_conformal(run.paths, tasks, self.temperatures)
        # task -> why a trust field is missing (a refused, unreadable or stale trust file)
        self.warnings = {t.name: [w[t.name] for w in (no_temperature, no_set) if t.name in w] for t in tasks}

    def outputs(
        self,
        model: MultimodalModel,
        dataset: MultimodalDataset,
        preds: Predictions,
        explain: bool = False,
        budget: ShapleyBudget | None = None,
    ) -> list[dict[str, dict[str, Any]]]:
        """Per sample, task -> extra output fields (``calibrated_probabilities``, ``temperature``,
        ``prediction_set``/``interval`` with ``coverage``, ``trust_warnings``, and with ``explain``
        ``attribution`` within ``budget``: exact, sampled with its standard error, or refused)."""
        out: list[dict[str, dict[str, Any]]] = [
            {
                t.name: {"trust_warnings": list(self.warnings[t.name])} if self.warnings[t.name] else {}
                for t in self.run.config.tasks
            }
            for _ in preds.ids
        ]
        for t in self.run.config.tasks:
            probs = preds.proba.get(t.name)
            if probs is not None and t.name in self.temperatures:
                probs = apply_temperature(probs, self.temperatures[t.name])
                for i, row in enumerate(probs):
                    out[i][t.name]["calibrated_probabilities"] = dict(
                        zip(t.classes or [], map(float, row), strict=True)
                    )
                    out[i][t.name]["temperature"] = self.temperatures[t.name]
            conf = self.conformal.get(t.name)
            if conf is not None:
                self._conformal(conf, t.classes or [], probs if probs is not None else preds.pred[t.name], out, t.name)
            if explain:
                self._attribution(model, dataset, t, out, budget)
        return out

    @staticmethod
    def _conformal(conf: Conformal, classes: list[str], pred: np.ndarray, out: list[dict], task: str) -> None:
        coverage = {"coverage": 1.0 - conf.alpha, "method": conf.method}
        found = conf.predict(pred)  # deterministic sets: the same input always gets the same set
        for i in range(len(out)):
            if conf.kind == "classification":
                chosen = [c for c, on in zip(classes, found["sets"][i], strict=True) if on]
                out[i][task]["prediction_set"] = {"classes": chosen, **coverage}
            elif conf.kind == "multilabel":
                uncertain = [
                    c for c, p, a in zip(classes, found["present"][i], found["absent"][i], strict=True) if p and a
                ]
                present = [
                    c for c, p, a in zip(classes, found["present"][i], found["absent"][i], strict=True) if p and not a
                ]
                out[i][task]["prediction_set"] = {"classes": present, "uncertain": uncertain, **coverage}
            else:
                out[i][task]["interval"] = {"low": float(found["low"][i]), "high": float(found["high"][i]), **coverage}

    def _attribution(
        self,
        model: MultimodalModel,
        dataset: MultimodalDataset,
        task: Any,
        out: list[dict],
        budget: ShapleyBudget | None,
    ) -> None:
        start = 0
        for batch in make_loader(dataset, model, 64):
            found = batch_shapley(model, batch, task, self.run.scalers.get(task.name), budget=budget)
            for j in range(len(batch)):
                entry = {
                    "values": {m: np.asarray(v[j]).tolist() for m, v in found.values.items()},
                    "base": np.asarray(found.none[j]).tolist(),
                    "output": np.asarray(found.full[j]).tolist(),
                    "explains": "probability of the predicted class"
                    if task.type == "classification"
                    else "each label's probability"
                    if task.type == "multilabel"
                    else "the predicted value",
                    "exact": found.method == "exact",
                    "method": found.method,
                }
                if found.permutations:
                    entry["permutations"] = found.permutations
                    entry["standard_error"] = {m: np.asarray(v[j]).tolist() for m, v in found.standard_error.items()}
                out[start + j][task.name]["attribution"] = entry
            start += len(batch)
