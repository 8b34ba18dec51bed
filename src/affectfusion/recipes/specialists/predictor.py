"""Serving a P3 "specialists, then fusion" output folder like any other run.

``affectfusion train`` of a ``kind: specialists`` config writes ``<out>/specialists/<m>/`` (one
unimodal run per modality, with its own extractors), ``<out>/embeddings/`` (their frozen pooled
encoder outputs) and ``<out>/fusion/`` (a run over those embeddings). A user holds raw inputs, not
embeddings, so :class:`SpecialistsPredictor` composes the stages: each given input goes through its
modality's specialist (:meth:`Predictor.embed`, computed exactly as the export computed the
training embeddings), and the fusion run's :class:`Predictor` scores the embeddings. It offers the
same surface as a Predictor (``modalities``, ``accepted_inputs``, ``input_kind``, ``feature_dim``,
``extractors``, ``info``, ``metrics``, ``predict``, ``predict_one``, ``name``, ``results_dir``,
``load_seconds``), so ``affectfusion predict``, the batch tables, the REST API and the dashboard
serve ``<out>`` unchanged; :func:`affectfusion.serve.predictor.load_predictor` picks it by folder.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from affectfusion.config import format_validation_error
from affectfusion.errors import AffectFusionError
from affectfusion.extract import Extractor
from affectfusion.io import file_sha256, read_json
from affectfusion.recipes.specialists.config import SpecialistsConfig
from affectfusion.rundir import RunPaths, SpecialistsPaths, read_run
from affectfusion.serve.base import Prediction, RunPredictor, check_ids, route_input
from affectfusion.serve.predictor import Predictor


class SpecialistsPredictor(RunPredictor):
    """A specialists output folder, loaded once: raw inputs -> specialist embeddings -> fusion.

    Modalities are the fusion's; each takes what its specialist was trained on (raw media through
    the specialist's extractor, or feature arrays). Any non-empty subset works, as the fusion was
    trained with modality dropout.
    """

    def __init__(self, out: str | Path, which: str = "best", device: str = "cpu") -> None:
        start = time.perf_counter()
        self.root = Path(out)
        self.config = _read_config(self.root)
        self.paths = SpecialistsPaths(self.root)
        self.fusion = Predictor(read_run(self.paths.fusion), which, device)
        self.modalities = list(self.fusion.modalities)
        # The embeddings were exported from each specialist's best checkpoint: always use that one.
        self.specialists: dict[str, Predictor] = {}
        for m in self.modalities:
            run_dir = self.paths.specialist(m)
            if not run_dir.is_dir():
                raise AffectFusionError(f"{run_dir}: missing; the fusion of {self.root} reads a {m} specialist")
            spec = Predictor(read_run(run_dir), "best", device)
            if spec.modalities != [m]:
                raise AffectFusionError(
                    f"{run_dir}: expected a specialist of modality {m!r}, found a model of {', '.join(spec.modalities)}"
                )
            hidden = spec.run.config.model.hidden_dim
            if hidden != self.fusion.feature_dim(m):
                raise AffectFusionError(
                    f"{run_dir}: its embeddings have dimension {hidden}, the fusion in {self.paths.fusion} "
                    f"expects {self.fusion.feature_dim(m)} for {m}"
                )
            self.specialists[m] = spec
        _check_checkpoints(self.root, self.specialists)
        self.extractors: dict[str, Extractor] = {
            m: spec.extractors[m] for m, spec in self.specialists.items() if m in spec.extractors
        }
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def load(cls, out: str | Path, which: str = "best", device: str = "cpu") -> SpecialistsPredictor:
        """``which`` picks the fusion checkpoint; the specialists are always their best (as exported)."""
        return cls(out, which, device)

    # -- what the run accepts -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def results_dir(self) -> Path:
        """The fusion run: its ``eval/`` and ``plots/`` are this model's evaluation."""
        return self.fusion.results_dir

    def input_kind(self, modality: str) -> str:
        """The kind of raw input the modality's specialist reads, or ``features``."""
        return self.specialists[modality].input_kind(modality)

    def feature_dim(self, modality: str) -> int:
        """The dimension of the features the modality's specialist reads (not its embedding's)."""
        return self.specialists[modality].feature_dim(modality)

    def info(self) -> dict[str, Any]:
        """As :meth:`Predictor.info`, plus each specialist and, if scored, the per-subset metrics."""
        fusion = self.fusion.info()
        info: dict[str, Any] = {
            "name": self.name,
            "kind": "specialists",
            "tasks": fusion["tasks"],
            "modalities": self.modalities_info(),
            "fusion": fusion["fusion"],
            "metrics": fusion["metrics"],
            "load_seconds": round(self.load_seconds, 3),
            "specialists": {
                m: {
                    "run_dir": str(SpecialistsPaths(Path()).specialist(m)),
                    "encoder": spec.run.config.model.encoder_for(m).name,
                    "embedding_dim": spec.run.config.model.hidden_dim,
                }
                for m, spec in self.specialists.items()
            },
        }
        subsets = self.paths.subsets_json
        if subsets.is_file():
            info["subsets"] = read_json(subsets)
        return info

    # -- prediction -----------------------------------------------------------------------------

    def predict(
        self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None, explain: bool = False
    ) -> list[Prediction]:
        """Predictions for many inputs: each specialist embeds its modality's inputs in one batch,
        then the fusion scores every input's embeddings in one batch. An input that cannot be used
        (unknown key, failed extraction, wrong dimension) gets ``error`` set; the others are unaffected.
        """
        self.check_explain(explain)
        ids = check_ids(inputs, ids)
        results = [Prediction(id=i) for i in ids]
        for spec in self.specialists.values():
            spec.limits = self.limits  # the limits this predictor is served with apply to each input
        accepted = self.accepted_inputs
        routed: list[dict[str, Any]] = []
        for k, item in enumerate(inputs):
            try:
                routed.append(route_input(item, self.modalities, accepted))
            except AffectFusionError as e:
                results[k].error = str(e)
                routed.append({})
        embeddings: list[dict[str, np.ndarray]] = [{} for _ in inputs]
        faces: list[dict[str, dict[str, Any]]] = [{} for _ in inputs]  # what each face specialist found
        for m, spec in self.specialists.items():
            todo = [k for k in range(len(inputs)) if results[k].error is None and m in routed[k]]
            if not todo:
                continue
            found: list[dict[str, dict[str, Any]]] = []
            outs = spec.embed([{m: routed[k][m]} for k in todo], [ids[k] for k in todo], found)
            for k, out, reports in zip(todo, outs, found, strict=True):
                faces[k].update(reports)
                if isinstance(out, AffectFusionError):
                    results[k].error = str(out)
                else:
                    embeddings[k][m] = out[m]
        ok = [k for k in range(len(inputs)) if results[k].error is None]
        if ok:
            fused = self.fusion.predict([embeddings[k] for k in ok], [ids[k] for k in ok])
            for k, prediction in zip(ok, fused, strict=True):
                results[k] = prediction
        for result, found_k in zip(results, faces, strict=True):
            result.faces = found_k or None
        return results


def _read_config(out: Path) -> SpecialistsConfig:
    path = RunPaths(out).config
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise AffectFusionError(f"{path}: cannot read ({e.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise AffectFusionError(f"{path}: not readable YAML ({str(e).splitlines()[0]})") from None
    try:
        return SpecialistsConfig.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, str(path))) from None


def _check_checkpoints(out: Path, specialists: Mapping[str, Predictor]) -> None:
    """The fusion must have been trained on embeddings of exactly these specialist checkpoints
    (``fusion/embeddings.json`` records their SHA-256); otherwise its predictions would be wrong."""
    marker = SpecialistsPaths(out).fusion_embeddings
    if not marker.is_file():
        raise AffectFusionError(
            f"{marker}: missing, so the specialist checkpoints the fusion was trained on are unknown; "
            f"run `affectfusion train {RunPaths(out).config} --out {out}` to finish the run"
        )
    trained_on = read_json(marker).get("specialists") or {}
    for m, spec in specialists.items():
        checkpoint = spec.run.paths.best.with_suffix(".safetensors")
        expected = (trained_on.get(m) or {}).get("sha256")
        if expected != file_sha256(checkpoint):
            raise AffectFusionError(
                f"{checkpoint}: not the {m} specialist checkpoint the fusion was trained on ({marker}); "
                f"run `affectfusion train {RunPaths(out).config} --out {out}` to re-export and retrain the fusion"
            )
