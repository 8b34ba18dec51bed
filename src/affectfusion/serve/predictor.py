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
(:mod:`affectfusion.serve.specialists`); a vision-language run (``kind: vlm``) by wrapping its
generator (:mod:`affectfusion.serve.vlm`). :func:`load_predictor` picks the right class for a folder.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.types import MultimodalDataset, Sample, Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, Extractor, build_extractor
from affectfusion.rundir import LoadedRun, read_run

INPUT_KINDS = ("text", "audio", "image", "video", "signal")
# What one value of each input kind looks like, for messages and the API/CLI help.
KIND_HINTS = {
    "text": "a non-empty string",
    "audio": "a WAV/FLAC/OGG/MP3 file",
    "image": "a JPG/PNG/BMP file",
    "video": "an MP4/AVI/MOV/MKV/WEBM file",
    "signal": "a .npz file with arrays 'data' [channels, time] and 'sfreq'",
    "features": "a .npy file or array of shape [D] or [T, D]",
}


@dataclass
class Prediction:
    """One input's prediction: per task a label + probabilities, a value, or a label set.

    ``error`` is set (and ``tasks`` empty) when the input could not be used; batch callers
    report it per row instead of stopping. ``generated`` is set by models that write text (a
    vision-language run: the answer and its parsed fields, see :mod:`affectfusion.serve.vlm`).
    """

    id: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    modality_weights: dict[str, float] = field(default_factory=dict)
    modalities_used: list[str] = field(default_factory=list)
    error: str | None = None
    generated: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``generated`` only when the model wrote text (other runs' output is unchanged)."""
        d = asdict(self)
        if d["generated"] is None:
            del d["generated"]
        return d

    def to_row(self) -> dict[str, Any]:
        """A flat row for CSV: ``<task>``, ``<task>_prob_<class>``, ``weight_<modality>``, then the generated
        fields (lists joined with ';'; ``generated_<field>`` if a task has that name), ``error``."""
        row: dict[str, Any] = {"id": self.id, "modalities": ";".join(self.modalities_used)}
        for name, out in self.tasks.items():
            if "label" in out:
                row[name] = out["label"]
            elif "labels" in out:
                row[name] = ";".join(out["labels"])
            else:
                row[name] = out["value"]
            for c, p in out.get("probabilities", {}).items():
                row[f"{name}_prob_{c}"] = p
        for m, w in self.modality_weights.items():
            row[f"weight_{m}"] = w
        for k, v in (self.generated or {}).items():
            row[f"generated_{k}" if k in row or k == "error" else k] = (
                ";".join(str(x) for x in v) if isinstance(v, list | tuple) else v
            )
        row["error"] = self.error or ""
        return row


class RunPredictor(ABC):
    """What serving needs from any run folder (classifier, P3 specialists, vision-language):
    the CLI, batch tables, the REST API and the dashboard only use this interface."""

    modalities: list[str]
    extractors: dict[str, Extractor]  # modality -> the extractor its raw inputs go through

    @abstractmethod
    def input_kind(self, modality: str) -> str:
        """The kind of raw input a modality is made from, or ``features`` if it takes arrays."""

    @abstractmethod
    def feature_dim(self, modality: str) -> int:
        """The feature dimension the modality's model reads."""

    @abstractmethod
    def predict(self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None) -> list[Prediction]:
        """One prediction per input (a mapping of input kind or modality -> value); errors per input."""

    @property
    def accepted_inputs(self) -> dict[str, list[str]]:
        """Input kind -> the modalities it fills (``features`` modalities are named directly)."""
        out: dict[str, list[str]] = {}
        for m in self.modalities:
            out.setdefault(self.input_kind(m), []).append(m)
        return out

    def predict_one(self, inputs: Mapping[str, Any], id: str = "input") -> Prediction:
        return self.predict([inputs], [id])[0]

    def modalities_info(self) -> dict[str, dict[str, Any]]:
        """Per modality: its input kind, the extractor's provenance (if any) and the feature size read."""
        return {
            m: {
                "input": self.input_kind(m),
                "extractor": self.extractors[m].describe() if m in self.extractors else None,
                "dim": self.feature_dim(m),
            }
            for m in self.modalities
        }


class Predictor(RunPredictor):
    """A trained run, loaded once, that predicts for any subset of its modalities."""

    def __init__(self, run: LoadedRun, which: str = "best") -> None:
        from affectfusion.training.trainer import load_model

        start = time.perf_counter()
        self.run = run
        self.model = load_model(run, which)
        self.modalities = list(run.modalities)
        self.extractors: dict[str, Extractor] = {}
        for m in self.modalities:
            component = run.config.data.extract.get(m)
            if component is not None:
                self.extractors[m] = build_extractor(
                    component.name, component.options, f"{run.paths.config}: data.extract.{m}.options"
                )
        for ex in self.extractors.values():
            ex.ensure_ready()
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def load(cls, run_dir: str | Path, which: str = "best") -> Predictor:
        from affectfusion.serve.backends import run_kind

        kind = run_kind(Path(run_dir))
        if kind == "vlm":
            raise AffectFusionError(
                f"{run_dir} is a vision-language run (BLIP-2 + LoRA): load it with "
                "affectfusion.serve.predictor.load_predictor, which serves it like any run"
            )
        if kind == "specialists":
            raise AffectFusionError(
                f"{run_dir} is a specialists run (specialists, then fusion): load it with "
                "affectfusion.serve.predictor.load_predictor, which composes its specialists and fusion"
            )
        return cls(read_run(run_dir), which)

    @property
    def name(self) -> str:
        """The run's config name (what the API and dashboard call the model)."""
        return self.run.config.name

    @property
    def results_dir(self) -> Path:
        """The folder whose ``eval/`` and ``plots/`` hold this model's evaluation."""
        return self.run.paths.root

    def feature_dim(self, modality: str) -> int:
        """The last dimension of the features the model reads for ``modality``."""
        return self.run.modalities[modality].dim

    # -- what the run accepts -------------------------------------------------------------------

    def input_kind(self, modality: str) -> str:
        ex = self.extractors.get(modality)
        return ex.kind if ex is not None else "features"

    def info(self) -> dict[str, Any]:
        """What a client needs to know: tasks and classes, modalities and their inputs, metrics."""
        cfg = self.run.config
        return {
            "name": cfg.name,
            "kind": "classifier",
            "tasks": [{"name": t.name, "type": t.type, "classes": t.classes} for t in cfg.tasks],
            "modalities": self.modalities_info(),
            "fusion": cfg.model.fusion.name,
            "metrics": self.metrics(),
            "load_seconds": round(self.load_seconds, 3),
        }

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Split -> the metrics the run was evaluated with (``eval/<split>/metrics.json``)."""
        out = {}
        for path in sorted((self.results_dir / "eval").glob("*/metrics.json")):
            out[path.parent.name] = json.loads(path.read_text())
        return out

    # -- prediction -----------------------------------------------------------------------------

    def predict(self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None) -> list[Prediction]:
        """Predictions for many inputs (each a mapping of input kind or modality -> value), batched.

        An input that cannot be used (unknown key, failed extraction, nothing the model reads)
        gets a Prediction with ``error`` set; the others are unaffected.
        """
        ids = check_ids(inputs, ids)
        results = [Prediction(id=i) for i in ids]
        features, errors = self._gather(inputs)
        for res, error in zip(results, errors, strict=True):
            res.error = error
        ok = [k for k in range(len(inputs)) if errors[k] is None]
        if ok:
            self._score([Sample(id=ids[k], features=features[k]) for k in ok], [results[k] for k in ok])
        return results

    def embed(
        self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None
    ) -> list[dict[str, np.ndarray] | AffectFusionError]:
        """Per input, modality -> the model's pooled encoder output (``[hidden_dim]``), or the error.

        Inputs are routed and extracted as in :meth:`predict`; the embedding is computed exactly as
        the P3 export does (``training.predict.predict(..., keep_embeddings=True)``, eval mode), so
        a specialist's embedding of a sample equals its row in ``<out>/embeddings``.
        """
        from affectfusion.training.predict import predict

        ids = check_ids(inputs, ids)
        features, errors = self._gather(inputs)
        out: list[dict[str, np.ndarray] | AffectFusionError] = [
            AffectFusionError(e) if e is not None else {} for e in errors
        ]
        ok = [k for k in range(len(inputs)) if errors[k] is None]
        if ok:
            samples = [Sample(id=ids[k], features=features[k]) for k in ok]
            ds = MultimodalDataset(samples, modalities=self.run.modalities, name="inputs")
            emb = predict(self.model, ds, self.run.scalers, keep_embeddings=True).embeddings
            for i, k in enumerate(ok):
                out[k] = {m: emb[m][i] for m in self.modalities if m in samples[i].features}
        return out

    def _gather(self, inputs: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, np.ndarray]], list[str | None]]:
        """Per input, modality -> features (routed, extracted in batches per modality) and its error."""
        errors: list[str | None] = [None] * len(inputs)
        per_modality: dict[str, list[tuple[int, Any]]] = {}
        for k, item in enumerate(inputs):
            try:
                for m, value in self._route(item).items():
                    per_modality.setdefault(m, []).append((k, value))
            except AffectFusionError as e:
                errors[k] = str(e)
        features: list[dict[str, np.ndarray]] = [{} for _ in inputs]
        for m, entries in per_modality.items():
            todo = [(k, v) for k, v in entries if errors[k] is None]
            for (k, _), out in zip(todo, self._features(m, [v for _, v in todo]), strict=True):
                if isinstance(out, Exception):
                    errors[k] = f"{m}: {out}"
                else:
                    features[k][m] = out
        return features, errors

    def _route(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Modality -> raw value for one input; checks keys and empty values."""
        return route_input(item, self.modalities, self.accepted_inputs)

    def _features(self, modality: str, values: list[Any]) -> list[np.ndarray | Exception]:
        """Features for one modality's values: through its extractor, or read as arrays."""
        ex = self.extractors.get(modality)
        if ex is None:
            arrays = [_safe(lambda v=v: _read_array(v), AffectFusionError) for v in values]
        else:
            raw = [_safe(lambda v=v: _raw_input(ex.kind, v), AffectFusionError) for v in values]
            good = [r for r in raw if not isinstance(r, Exception)]
            extracted = iter(ex.extract_batch(good)) if good else iter(())
            arrays = [r if isinstance(r, Exception) else next(extracted) for r in raw]
        dim = self.feature_dim(modality)
        return [
            ExtractionError(f"features of dimension {x.shape[-1]}, the model expects {dim}")
            if isinstance(x, np.ndarray) and x.shape[-1] != dim
            else x
            for x in arrays
        ]

    def _score(self, samples: list[Sample], results: list[Prediction]) -> None:
        from affectfusion.training.predict import predict

        ds = MultimodalDataset(samples, modalities=self.run.modalities, name="inputs")
        preds = predict(self.model, ds, self.run.scalers)
        weights = preds.explanations.get("modality_weights")
        for i, res in enumerate(results):
            res.modalities_used = [m for m in self.modalities if m in samples[i].features]
            for t in self.run.config.tasks:
                res.tasks[t.name] = _task_output(t, preds, i)
            if weights is not None and weights.ndim == 2 and weights.shape[1] == len(self.modalities):
                res.modality_weights = {m: float(w) for m, w in zip(self.modalities, weights[i], strict=True)}


def load_predictor(run_dir: str | Path, which: str = "best") -> RunPredictor:
    """The predictor for any servable run folder: a trained run; a P3 specialists output folder
    (``affectfusion train`` of a ``kind: specialists`` config), whose specialists and fusion are
    composed so that raw inputs go in and the fusion's predictions come out; or a P4
    vision-language run (``kind: vlm``), whose generated answers come out as predictions with
    a ``generated`` field. All three offer the same methods and return :class:`Prediction` objects."""
    from affectfusion.serve.backends import run_kind

    kind = run_kind(Path(run_dir))
    if kind == "specialists":
        from affectfusion.serve.specialists import SpecialistsPredictor

        return SpecialistsPredictor.load(run_dir, which)
    if kind == "vlm":
        from affectfusion.serve.vlm import VLMRunPredictor

        return VLMRunPredictor.load(run_dir, which)
    return Predictor.load(run_dir, which)


def route_input(
    item: Mapping[str, Any], modalities: Sequence[str], accepted: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Modality -> raw value for one input given by input kind or modality name; checks keys and
    empty values. ``accepted`` maps input kind -> the modalities it fills (``accepted_inputs``)."""
    routed: dict[str, Any] = {}
    for key, value in item.items():
        if value is None or (isinstance(value, str) and not value.strip() and key != "text"):
            continue  # an empty cell in a batch file = this input is absent
        if key in modalities:
            targets = [key]
        elif key in accepted and key != "features":
            targets = accepted[key]
        else:
            valid = sorted({*modalities, *(k for k in accepted if k != "features")})
            raise AffectFusionError(f"unknown input {key!r}; this model takes: {', '.join(valid)}")
        if isinstance(value, str) and not value.strip():
            raise AffectFusionError(f"{key}: empty text")
        for m in targets:
            routed[m] = value
    if not routed:
        wanted = ", ".join(f"{k} ({KIND_HINTS[k]})" for k in accepted if k != "features")
        named = accepted.get("features", [])
        raise AffectFusionError(
            "no input for any of the model's modalities; give "
            + (wanted + (" or " if named else "") if wanted else "")
            + (f"features for {', '.join(named)}" if named else "")
        )
    return routed


def check_ids(inputs: Sequence[Any], ids: Sequence[str] | None) -> list[str]:
    """The ids of a batch of inputs (default: their positions); as many as there are inputs."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(inputs))]
    if len(ids) != len(inputs):
        raise AffectFusionError(f"{len(ids)} ids for {len(inputs)} inputs")
    return ids


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


def _raw_input(kind: str, value: Any) -> str | Path | Signal:
    """A value as the extractor of ``kind`` expects it (text stays text, files become paths)."""
    if kind == "text":
        if not isinstance(value, str):
            raise AffectFusionError(f"text input must be a string, got {type(value).__name__}")
        if not value.strip():
            raise AffectFusionError("empty text")
        return value
    if kind == "signal":
        return value if isinstance(value, Signal) else _read_signal(Path(value))
    if not isinstance(value, str | Path):
        raise AffectFusionError(f"{kind} input must be a file path ({KIND_HINTS[kind]}), got {type(value).__name__}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise AffectFusionError(f"{kind} file not found: {path}")
    return path


def _read_signal(path: Path) -> Signal:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Signal(np.asarray(z["data"], dtype=np.float64), float(z["sfreq"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise AffectFusionError(f"{path}: expected {KIND_HINTS['signal']} ({e})") from None


def _read_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        x = value
    else:
        path = Path(value).expanduser()
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AffectFusionError(f"{path}: expected {KIND_HINTS['features']} ({e})") from None
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (1, 2) or x.size == 0 or not np.isfinite(x).all():
        raise AffectFusionError(f"expected {KIND_HINTS['features']} with finite values, got shape {x.shape}")
    return x
