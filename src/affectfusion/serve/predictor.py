"""The Predictor: one trained run directory -> predictions from raw media or features.

The CLI (``predict``), the REST API and the dashboard all go through this class, so the same
inputs give the same predictions everywhere. It loads the model and the run's extractors once,
turns each input into features with exactly the extractors (and options) the run was trained
with, and scores them with the same code path as evaluation (:func:`training.predict.predict`).

Inputs are given per *input kind* (``text``, ``audio``, ``image``, ``video``, ``signal``) or per
modality name. One input feeds every modality whose extractor reads that kind: a video file
fills both the face-sequence and the audio-track modalities of a model trained on both. A
modality the run did not extract (pre-extracted features) takes an array or a ``.npy`` file.

:meth:`Predictor.embed` gives the encoders' pooled outputs instead of predictions; a P3
specialists output folder is served by composing its specialists' embeddings with its fusion
(:mod:`affectfusion.recipes.specialists.predictor`); a vision-language run (``kind: vlm``) by wrapping its
generator (:mod:`affectfusion.recipes.vlm.run_predictor`). :func:`load_predictor` picks the right class for a folder.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.conversation import dataset_for
from affectfusion.data.types import MultimodalDataset, Sample, Signal
from affectfusion.device import resolve_device
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, Extractor, build_extractor, extract_inputs
from affectfusion.extract.video import DecodeBudget, decode_budget
from affectfusion.inputs import KIND_HINTS
from affectfusion.rundir import LoadedRun, read_run
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.base import Prediction, RunPredictor, Turn, check_ids, conversation_turns, route_input
from affectfusion.serve.decode import as_features, check_file, check_text, read_features, read_signal
from affectfusion.serve.faces import face_modality, face_predictions, read_each_face
from affectfusion.serve.ranges import range_error

# Re-exported: the interface lives in serve/base.py so that run kinds do not import this module.
__all__ = ["Prediction", "Predictor", "RunPredictor", "load_predictor"]


class Predictor(RunPredictor):
    """A trained run, loaded once, that predicts for any subset of its modalities."""

    supports_explain = True  # its trust layer attributes each output to the modalities (Shapley values)
    supports_conversation = True  # a context stage reads each utterance with its neighbours

    def __init__(self, run: LoadedRun, which: str = "best", device: str = "cpu", warm: bool = True) -> None:
        """``warm``: set up every extractor now (servers: a missing model fails at start-up); False: each on
        first use, so one command-line prediction from text does not load the run's audio and face models."""
        from affectfusion.training.loading import load_model  # torch: loaded with a run, not on import

        start = time.perf_counter()
        self.run = run
        self.device = str(resolve_device(device, "--device"))
        self.model = load_model(run, which, device=self.device)
        from affectfusion.analysis.trust_layer import TrustLayer  # torch: loaded with the model

        self.trust = TrustLayer(run)  # calibration, conformal sets, attribution
        self.modalities = list(run.modalities)
        self.extractors: dict[str, Extractor] = {}
        for m in self.modalities:
            component = run.config.data.extract.get(m)
            if component is not None:
                self.extractors[m] = build_extractor(
                    component.name, component.options, f"{run.paths.config}: data.extract.{m}.options", self.device
                ).for_serving()  # uploads are photos even where training read prepared inputs (face crops)
        for ex in self.extractors.values() if warm else ():
            ex.ensure_ready()
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def load(cls, run_dir: str | Path, which: str = "best", device: str = "cpu", warm: bool = True) -> Predictor:
        kind = run_kind_of(run_dir)
        if kind.name != "fusion":
            raise AffectFusionError(
                f"{run_dir} is a {kind.name} run ({kind.description}): load it with "
                "affectfusion.serve.predictor.load_predictor, which serves every kind of run"
            )
        return cls(read_run(run_dir), which, device, warm)

    @property
    def name(self) -> str:
        return self.run.config.name

    @property
    def results_dir(self) -> Path:
        return self.run.paths.root

    @property
    def reads_conversations(self) -> bool:  # a context stage: only then does the API offer conversations
        return self.run.config.model.context.name != "none"

    def feature_dim(self, modality: str) -> int:
        """The last dimension of the features the model reads for ``modality``."""
        return self.run.modalities[modality].dim

    # -- what the run accepts -------------------------------------------------------------------

    def input_kind(self, modality: str) -> str:
        ex = self.extractors.get(modality)
        return ex.kind if ex is not None else "features"

    def table_columns(self) -> tuple[dict[str, str], set[str]]:
        """As the run's data config names its columns (``inputs``, ``targets``/``target``, ``group_column``,
        ``id_column`` of table adapters such as ``media_table``)."""
        renames, ignored = super().table_columns()
        options = self.run.config.data.options or {}
        inputs = options.get("inputs")
        if isinstance(inputs, Mapping):
            renames.update({str(c): m for m, c in inputs.items() if m in self.modalities and c != m})
        targets = options.get("targets")
        if isinstance(targets, Mapping):
            ignored |= {str(c) for c in targets.values()}
        ignored |= {str(options[k]) for k in ("target", "group_column") if isinstance(options.get(k), str)}
        id_column = options.get("id_column")
        if isinstance(id_column, str) and id_column != "id":
            renames[id_column] = "id"
        return renames, ignored

    def info(self) -> dict[str, Any]:
        """What a client needs to know: tasks and classes, modalities and their inputs, metrics."""
        cfg = self.run.config
        return {
            "name": cfg.name,
            "kind": "fusion",  # the run kind, as config.yaml and `affectfusion list` name it
            "tasks": [{"name": t.name, "type": t.type, "classes": t.classes} for t in cfg.tasks],
            "modalities": self.modalities_info(),
            "fusion": cfg.model.fusion.name,
            "metrics": self.metrics(),
            "load_seconds": round(self.load_seconds, 3),
        }

    # -- prediction -----------------------------------------------------------------------------

    def predict(
        self,
        inputs: Sequence[Mapping[str, Any]],
        ids: Sequence[str] | None = None,
        explain: bool = False,
        turns: Sequence[Turn] | None = None,
    ) -> list[Prediction]:
        """Predictions for many inputs (each a mapping of input kind or modality -> value), batched.

        An input that cannot be used (unknown key, failed extraction, nothing the model reads)
        gets a Prediction with ``error`` set; the others are unaffected. A calibrated run adds
        calibrated probabilities and conformal sets / intervals; ``explain`` adds each modality's
        Shapley attribution (2^modalities forward passes). ``turns`` places each input in a
        conversation (group, order, speaker): a run with a context stage then reads each utterance with
        its conversation's other (a causal one: earlier) usable utterances.
        """
        ids = check_ids(inputs, ids)
        if turns is not None and len(turns) != len(inputs):
            raise AffectFusionError(f"{len(turns)} conversation turns for {len(inputs)} inputs")
        results = [Prediction(id=i) for i in ids]
        features, errors, faces = self._gather(inputs)
        if turns is not None:  # the context stage mixes turns: a turn out of range is refused before it
            errors = [e or range_error(self.model, f) for e, f in zip(errors, features, strict=True)]
        for res, error, found in zip(results, errors, faces, strict=True):
            res.error, res.faces = error, found or None
        ok = [k for k in range(len(inputs)) if errors[k] is None]
        if ok:
            # positions, not the client's ids, name the samples: two inputs may carry one id
            samples = [Sample(id=str(k), features=features[k]) for k in ok]
            for k, s in zip(ok, samples, strict=True):
                if turns is not None:
                    s.group, s.order, s.speaker = turns[k]
            self._score(samples, [results[k] for k in ok], explain)
        return results

    def predict_one(self, inputs: Mapping[str, Any], id: str = "input", explain: bool = False) -> Prediction:
        return self.predict([inputs], [id], explain)[0]

    def predict_faces(self, inputs: Mapping[str, Any], id: str = "input", explain: bool = False) -> list[Prediction]:
        """One prediction per face in the input's image, largest first, ids ``<id>#face<k>``, each with its
        face report (``used`` = k, ``box``) under ``faces``; other inputs (text, audio) count for every face.

        With no face the run's ``no_face`` policy applies to a single prediction (id ``<id>``). A problem
        with the whole input (unknown key, no face modality, too many faces) is one prediction with
        ``error`` set. See :mod:`affectfusion.serve.faces`.
        """
        try:
            routed = dict(self._route(inputs))
            m = face_modality(routed, self.extractors)
            path = Path(str(self._raw_input("image", routed.pop(m))))  # checked and limited like any image
            each = read_each_face(self.extractors[m], m, path, self.limits.max_faces)
        except AffectFusionError as e:
            return [Prediction(id=id, error=str(e))]
        features, errors, faces = self._gather([routed]) if routed else ([{}], [None], [{}])
        results, samples = face_predictions(id, m, path, each, (features[0], errors[0], faces[0]))
        if samples:
            self._score(samples, [p for p in results if p.error is None], explain)
        return results

    def predict_conversation(
        self,
        inputs: Sequence[Mapping[str, Any]],
        ids: Sequence[str] | None = None,
        speakers: Sequence[str | None] | None = None,
        explain: bool = False,
        order: Sequence[int | None] | None = None,
    ) -> list[Prediction]:
        """One conversation (optionally who spoke each utterance and its place): :meth:`predict` with turns."""
        return self.predict(inputs, ids, explain, conversation_turns(len(inputs), speakers, order))

    def embed(
        self,
        inputs: Sequence[Mapping[str, Any]],
        ids: Sequence[str] | None = None,
        faces: list[dict[str, dict[str, Any]]] | None = None,
    ) -> list[dict[str, np.ndarray] | AffectFusionError]:
        """Per input, modality -> the model's pooled encoder output (``[hidden_dim]``), or the error.

        Inputs are routed and extracted as in :meth:`predict`; the embedding is computed exactly as
        the P3 export does (``training.predict.predict(..., keep_embeddings=True)``, eval mode), so
        a specialist's embedding of a sample equals its row in ``<out>/embeddings``. ``faces``, if
        given, receives each input's face reports (modality -> report, as :attr:`Prediction.faces`).
        """
        from affectfusion.training.predict import predict  # torch: loaded with a run, not on import

        check_ids(inputs, ids)  # as many ids as inputs (the samples are named by position)
        features, errors, found = self._gather(inputs)
        if faces is not None:
            faces.extend(found)
        out: list[dict[str, np.ndarray] | AffectFusionError] = [
            AffectFusionError(e) if e is not None else {} for e in errors
        ]
        ok = [k for k in range(len(inputs)) if errors[k] is None]
        if ok:
            samples = [Sample(id=str(k), features=features[k]) for k in ok]  # ids may repeat; positions do not
            ds = MultimodalDataset(samples, modalities=self.run.modalities, name="inputs")
            emb = predict(self.model, ds, self.run.scalers, keep_embeddings=True).embeddings
            for i, k in enumerate(ok):
                out[k] = {m: emb[m][i] for m in self.modalities if m in samples[i].features}
        return out

    def _gather(
        self, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, np.ndarray]], list[str | None], list[dict[str, dict[str, Any]]]]:
        """Per input, modality -> features (routed, extracted in batches per modality), its error and
        modality -> face report. A modality its extractor calls absent for an input (no face under
        ``no_face: missing_modality``) is left out; an input left with nothing gets that as its error."""
        errors: list[str | None] = [None] * len(inputs)
        per_modality: dict[str, list[tuple[int, Any]]] = {}
        for k, item in enumerate(inputs):
            try:
                for m, value in self._route(item).items():
                    per_modality.setdefault(m, []).append((k, value))
            except AffectFusionError as e:
                errors[k] = str(e)
        features: list[dict[str, np.ndarray]] = [{} for _ in inputs]
        faces: list[dict[str, dict[str, Any]]] = [{} for _ in inputs]
        absent: list[list[str]] = [[] for _ in inputs]
        for m, entries in per_modality.items():
            todo = [(k, v) for k, v in entries if errors[k] is None]
            reports: list[dict[str, Any] | None] = []
            # Decoding is bounded too, not only the headers (a container may state no duration).
            limits = self.limits
            budget = DecodeBudget(limits.max_video_seconds, limits.max_video_frames, limits.max_video_pixels)
            with decode_budget(budget):
                outs = self._features(m, [v for _, v in todo], reports)
            for (k, _), out, report in zip(todo, outs, reports, strict=True):
                if report is not None:
                    faces[k][m] = report
                if not isinstance(out, Exception):
                    features[k][m] = out
                elif m in self.extractors and self.extractors[m].absent(str(out)):
                    absent[k].append(f"{m}: {out}")
                else:
                    errors[k] = f"{m}: {out}"
        for k in range(len(inputs)):
            if errors[k] is None and not features[k]:
                errors[k] = "; ".join(absent[k])
        return features, errors, faces

    def _route(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Modality -> raw value for one input; checks keys and empty values."""
        return route_input(item, self.modalities, self.accepted_inputs)

    def _features(
        self, modality: str, values: list[Any], faces: list[dict[str, Any] | None]
    ) -> list[np.ndarray | Exception]:
        """Features for one modality's values: through its extractor, or read as arrays; ``faces`` receives
        one face report per value (None where the extractor reads no face or the value failed before)."""
        ex = self.extractors.get(modality)
        dim = self.feature_dim(modality)
        if ex is None:
            arrays = [_safe(lambda v=v: self._read_array(v), AffectFusionError) for v in values]
            faces.extend([None] * len(values))
        else:
            raw = [_safe(lambda v=v: self._raw_input(ex.kind, v), AffectFusionError) for v in values]
            good = [r for r in raw if not isinstance(r, Exception)]
            found: list[dict[str, Any] | None] = []
            # The same function the feature store extracts training data with (extract/__init__.py).
            extracted = iter(extract_inputs(ex, good, found)) if good else iter(())
            reports = iter(found)
            arrays = [r if isinstance(r, Exception) else next(extracted) for r in raw]
            faces.extend(None if isinstance(r, Exception) else next(reports) for r in raw)
        return [
            ExtractionError(f"features of dimension {x.shape[-1]}, the model expects {dim}")
            if isinstance(x, np.ndarray) and x.shape[-1] != dim
            else x
            for x in arrays
        ]

    def _raw_input(self, kind: str, value: Any) -> str | Path | Signal:
        """A value as the extractor of ``kind`` expects it, within :attr:`limits` (checked from headers)."""
        if kind == "text":
            if not isinstance(value, str):
                raise AffectFusionError(f"text input must be a string, got {type(value).__name__}")
            if not value.strip():
                raise AffectFusionError("empty text")
            check_text(value, self.limits)
            return value
        if kind == "signal" and isinstance(value, Signal):
            return value
        if not isinstance(value, str | Path):
            raise AffectFusionError(
                f"{kind} input must be a file path ({KIND_HINTS[kind]}), got {type(value).__name__}"
            )
        path = Path(value).expanduser()
        if not path.is_file():
            raise AffectFusionError(f"{kind} file not found: {path}")
        check_file(kind, path, self.limits)
        return read_signal(path, self.limits) if kind == "signal" else path

    def _read_array(self, value: Any) -> np.ndarray:
        """Features from an array or a ``.npy`` file (dtype and shape checked before reading)."""
        if isinstance(value, np.ndarray):
            return as_features(value, self.limits, "")  # the caller names the modality
        return read_features(Path(value).expanduser(), self.limits)  # the dimension is checked by _features

    def _score(self, samples: list[Sample], results: list[Prediction], explain: bool = False) -> None:
        from affectfusion.analysis.attribution import ShapleyBudget  # torch: loaded with a run
        from affectfusion.training.predict import predict  # torch: loaded with a run, not on import

        ds = dataset_for(self.run.config.model.context, samples, self.run.modalities, "inputs")
        preds = predict(self.model, ds, self.run.scalers)
        budget = ShapleyBudget(max_seconds=self.limits.max_explain_seconds)
        extras = self.trust.outputs(self.model, ds, preds, explain, budget)
        weights = preds.explanations.get("modality_weights")
        row = {sid: i for i, sid in enumerate(preds.ids)}  # conversations come back in conversation order
        for sample, res in zip(samples, results, strict=True):
            i = row[sample.id]
            res.modalities_used = [m for m in self.modalities if m in sample.features]
            if not _finite_outputs(preds, i):
                res.modalities_used = []
                res.error = (
                    "the model's output is not finite for this input (NaN or infinity): "
                    "its values are far outside what the model was trained on"
                )
                continue
            for t in self.run.config.tasks:
                res.tasks[t.name] = {**_task_output(t, preds, i), **extras[i][t.name]}
            if weights is not None and weights.ndim == 2 and weights.shape[1] == len(self.modalities):
                res.modality_weights = {m: float(w) for m, w in zip(self.modalities, weights[i], strict=True)}


def load_predictor(run_dir: str | Path, which: str = "best", device: str = "cpu", warm: bool = True) -> RunPredictor:
    """The predictor for any servable run folder, by its kind (:mod:`affectfusion.runkinds`): a fusion
    run, a P3 specialists output folder (specialists and fusion composed: raw inputs in, the fusion's
    predictions out), a P4 vision-language run (answers under ``generated``), or a registered plugin
    kind. All offer the same methods and return :class:`Prediction` objects. ``device``: ``cpu``,
    ``auto``, ``cuda``, ``cuda:N`` or ``mps`` for the model and the run's model-based extractors.
    ``warm=False`` lets a kind whose loader takes ``warm`` set up its extractors on first use."""
    loader = run_kind_of(run_dir).resolve("load_predictor")
    lazy = {} if warm or "warm" not in inspect.signature(loader).parameters else {"warm": False}
    return loader(Path(run_dir), which, device, **lazy)


def _task_output(task: Any, preds: Any, i: int) -> dict[str, Any]:
    if task.type == "regression":
        return {"value": float(preds.pred[task.name][i])}
    proba = {c: float(p) for c, p in zip(task.classes, preds.proba[task.name][i], strict=True)}
    if task.type == "multilabel":
        labels = [c for c, on in zip(task.classes, preds.pred[task.name][i], strict=True) if on]
        return {"labels": labels, "probabilities": proba}
    return {"label": task.classes[int(preds.pred[task.name][i])], "probabilities": proba}


def _safe(fn: Any, *catch: type[Exception]) -> Any:
    try:
        return fn()
    except catch as e:
        return e


def _finite_outputs(preds: Any, i: int) -> bool:
    """Every score of row ``i`` is a finite number (a huge but finite input can overflow the model)."""
    arrays = [*preds.pred.values(), *preds.proba.values()]
    return all(np.isfinite(np.asarray(a[i], dtype=np.float64)).all() for a in arrays)
