"""What the dashboard's pages show, behind one interface for every kind of run.

The pages talk to a :class:`Backend`, not to a model class, so page code does not branch on the
kind of run. :func:`load_backend` asks the run-kind registry (:mod:`affectfusion.runkinds`) which
backend a folder gets: :class:`PredictorBackend` serves any :class:`RunPredictor` (a fusion run, a
P3 specialists run, a plugin's kind) through the same predictor as ``affectfusion predict`` and the
REST API, so all give the same predictions; a vision-language run gets
:class:`~affectfusion.recipes.vlm.dashboard.VLMBackend`. Nothing here imports Streamlit, torch or the
face libraries at module level.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import yaml

from affectfusion.errors import AffectFusionError
from affectfusion.inputs import INPUTS, SLOT_ORDER
from affectfusion.rundir import RunPaths
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.base import run_metrics
from affectfusion.serve.dashboard import DEVICE_ENV
from affectfusion.serve.dashboard.faces import FacePreview, face_preview
from affectfusion.serve.dashboard.usage import predictor_usage
from affectfusion.serve.input_limits import InputLimits, InputRejected
from affectfusion.serve.trust_view import dashboard_parts

if TYPE_CHECKING:
    from affectfusion.serve.base import Prediction, RunPredictor


# -- what the pages show --------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSlot:
    """One input widget: an input kind (or a features modality), the file types it takes, what it fills."""

    key: str
    kind: str
    label: str
    modalities: tuple[str, ...] = ()

    @property
    def file_types(self) -> tuple[str, ...]:
        return INPUTS[self.kind].file_types if self.kind in INPUTS else ()


@dataclass
class Analysis:
    """One analysed input, in the form every page renders, whatever the backend."""

    headline: dict[str, str] = field(default_factory=dict)  # task -> label / value text
    charts: dict[str, dict[str, float]] = field(default_factory=dict)  # title -> name -> value
    probability_charts: bool = True  # values in [0, 1] (probabilities) rather than free scores
    weights: dict[str, float] = field(default_factory=dict)  # modality -> fusion weight
    generated_text: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # parsed fields of the generated text
    raw: dict[str, Any] = field(default_factory=dict)  # the prediction as the API returns it
    faces: list[FacePreview] = field(default_factory=list)
    error: str | None = None
    sets: dict[str, str] = field(default_factory=dict)  # task -> conformal prediction set / interval text
    attribution: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> modality -> Shapley value
    alone: dict[str, dict[str, Any]] = field(default_factory=dict)  # input slot -> its prediction given alone
    no_face: list[str] = field(default_factory=list)  # face modalities whose image had no face


class Backend(ABC):
    """What the dashboard needs from a run: inputs, single and batch prediction, model facts."""

    kind: ClassVar[str]

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir).resolve()
        # Where eval/ and plots/ are: the run itself, or the fusion stage of a specialists run.
        self.results_dir = self.run_dir
        # Streamlit runs each browser session in its own thread; models and extractors (TFLite,
        # MediaPipe, openSMILE) are not thread-safe, so predictions run one at a time.
        self.lock = threading.RLock()

    @property
    def name(self) -> str:
        return str(self.config().get("name") or self.run_dir.name)

    @abstractmethod
    def slots(self) -> list[InputSlot]:
        """The inputs of the Analyse page (at least one)."""

    def analyse(self, inputs: dict[str, str]) -> Analysis:
        """Predict one input (slot key -> text or file path); problems go into ``Analysis.error``."""
        with self.lock:
            return self._analyse(inputs)

    def predict_table(self, df: pd.DataFrame, base: Path) -> pd.DataFrame:
        """A table of inputs (paths relative to ``base``) -> the predictions CSV table."""
        with self.lock:
            return self._predict_table(df, base)

    @abstractmethod
    def _analyse(self, inputs: dict[str, str]) -> Analysis: ...

    @abstractmethod
    def _predict_table(self, df: pd.DataFrame, base: Path) -> pd.DataFrame: ...

    @abstractmethod
    def file_columns(self, columns: list[str]) -> list[str]:
        """Which columns of a batch table hold file paths (the rest is text)."""

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """Headline facts for the Model page (kind, tasks, modalities, fusion or base model)."""

    @abstractmethod
    def usage(self) -> list[tuple[str, str, str]]:
        """How to use this run outside the dashboard: (title, language, code) blocks."""

    def predict_files(self, slot: InputSlot, paths: list[Path], ids: list[str]) -> pd.DataFrame:
        """Many files of one kind, one row each (id = file name)."""
        df = pd.DataFrame({"id": ids, slot.key: [p.name for p in paths]})
        bases = {p.parent for p in paths}
        if len(bases) != 1:
            raise AffectFusionError("batch files must be in one folder")
        return self.predict_table(df, bases.pop())

    def context(self) -> str:
        """The run's conversation context stage (``none``: each input is read alone)."""
        model = self.config().get("model") or {}
        return str((model.get("context") or {}).get("name", "none"))

    def predict_conversation(self, texts: list[str], speakers: list[str | None]) -> list[Prediction]:
        """Text turns of one conversation, in order, each predicted in its context."""
        raise AffectFusionError(f"a {self.kind} run does not read conversations")

    def batch_slots(self) -> list[InputSlot]:
        """Slots that take files (text goes through a table)."""
        return [s for s in self.slots() if s.kind != "text"]

    @property
    def limits(self) -> InputLimits:
        """The decoded-work limits every input is checked against (serve/input_limits.py)."""
        return InputLimits()

    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_text()) or {}

    def config_text(self) -> str:
        return RunPaths(self.run_dir).config.read_text(encoding="utf-8")

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Split -> ``eval/<split>/metrics.json`` (one being rewritten by ``test`` right now is skipped)."""
        return run_metrics(self.results_dir)

    def plots(self) -> list[Path]:
        return sorted(RunPaths(self.results_dir).plots.glob("*.png"))


def metrics_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per split and task with its scalar metrics (accuracy, macro F1, MAE, CCC, ...)."""
    rows = []
    for split, m in metrics.items():
        tasks = m.get("tasks")
        if isinstance(tasks, dict) and tasks:
            for task, tm in tasks.items():
                rows.append({"split": split, "task": task, "n": tm.get("n"), **_scalars(tm, skip={"n"})})
        else:
            rows.append({"split": split, "task": "", "n": m.get("n"), **_scalars(m, skip={"n"})})
    return pd.DataFrame(rows)


def _scalars(d: dict[str, Any], skip: set[str]) -> dict[str, float]:
    return {k: v for k, v in d.items() if k not in skip and isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass
class Confusion:
    split: str
    task: str
    classes: list[str]
    matrix: list[list[int]]
    image: Path | None  # plots/confusion_<split>_<task>.png when `train`/`test` drew it

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.matrix,
            index=pd.Index(self.classes, name="true \\ predicted"),
            columns=pd.Index(self.classes),
        )


def confusions(run_dir: Path, metrics: dict[str, dict[str, Any]]) -> list[Confusion]:
    """Every confusion matrix in the run's metrics, with its plot when there is one."""
    out = []
    for split, m in metrics.items():
        tasks = m.get("tasks")
        if not isinstance(tasks, dict):  # a single-task run's metrics
            tasks = {"": m}
        for task, tm in tasks.items():
            if not isinstance(tm, dict) or not tm.get("confusion_matrix") or not tm.get("classes"):
                continue
            image = RunPaths(run_dir).confusion_plot(split, task)
            out.append(
                Confusion(split, task, list(tm["classes"]), tm["confusion_matrix"], image if image.is_file() else None)
            )
    return out


# -- a trained fusion run -------------------------------------------------------------------------


class PredictorBackend(Backend):
    """Any run through its :class:`RunPredictor`: the same features, model and outputs as ``predict``.

    A specialists run (P3) is served the same way through its composed
    :class:`~affectfusion.recipes.specialists.predictor.SpecialistsPredictor`; its metrics are the fusion's.
    """

    kind = "predictor"

    def __init__(self, run_dir: Path, predictor: RunPredictor | None = None) -> None:
        super().__init__(run_dir)
        if predictor is None:
            from affectfusion.serve.predictor import load_predictor  # loads torch: only when a run is opened

            predictor = load_predictor(self.run_dir, device=os.environ.get(DEVICE_ENV, "cpu"))
        self.predictor = predictor
        self.results_dir = Path(self.predictor.results_dir).resolve()

    @property
    def limits(self) -> InputLimits:
        return self.predictor.limits

    def slots(self) -> list[InputSlot]:
        """Text first, then media in a fixed order, then modalities that take feature files."""
        out = []
        accepted = self.predictor.accepted_inputs
        for kind in sorted(accepted, key=lambda k: SLOT_ORDER.index(k) if k in SLOT_ORDER else len(SLOT_ORDER)):
            modalities = accepted[kind]
            if kind == "features":
                out += [InputSlot(m, "features", f"{m}: pre-extracted features (.npy)", (m,)) for m in modalities]
            else:
                used = ", ".join(modalities)
                out.append(InputSlot(kind, kind, f"{INPUTS[kind].label} → {used}", tuple(modalities)))
        return out

    def _analyse(self, inputs: dict[str, str]) -> Analysis:
        # Shapley attribution per modality wherever the run offers it (a fusion run)
        prediction = self.predictor.predict_one(inputs, explain=self.predictor.supports_explain)
        analysis = analysis_of(prediction)
        analysis.faces = self.face_previews(inputs)
        analysis.no_face = no_face(prediction, analysis.faces)
        if len(inputs) > 1 and not prediction.error:  # what each input alone says (missing ones masked)
            alone = self.predictor.predict([{k: v} for k, v in inputs.items()], list(inputs))
            analysis.alone = {p.id: p.to_dict() for p in alone}
        return analysis

    def predict_conversation(self, texts: list[str], speakers: list[str | None]) -> list[Prediction]:
        if not self.predictor.supports_conversation:
            return super().predict_conversation(texts, speakers)
        with self.lock:
            ids = [f"turn {k + 1}" for k in range(len(texts))]
            return self.predictor.predict_conversation([{"text": t} for t in texts], ids, speakers)

    def face_previews(self, inputs: dict[str, str]) -> list[FacePreview]:
        """One preview per modality read as a face crop (``fer_cnn``, ``face_pixels``) from an uploaded image."""
        from affectfusion.extract import ExtractionError  # with the face stack below: only for face runs
        from affectfusion.extract.face import FaceOptions, ServedFaceExtractor  # optional face stack

        out = []
        for m, ex in self.predictor.extractors.items():
            if not isinstance(ex, ServedFaceExtractor):
                continue
            path = inputs.get(m) or inputs.get(ex.kind)
            if not path:
                continue
            o = ex.options
            detector = ex.serving_detector  # a crop-trained run detects faces in uploads
            options = FaceOptions(detector=detector, min_confidence=o.min_confidence, align=o.align, margin=o.margin)
            try:
                preview = face_preview(
                    Path(path), options, ex.crop_size, o.no_face, grey=True, modality=m, limits=self.limits
                )
            except (ExtractionError, InputRejected):
                continue  # the prediction's error already says what is wrong with the file
            if getattr(o, "flip_average", False):  # fer_cnn's option
                preview.model_caption += " (and its mirror image, averaged)"
            out.append(preview)
        return out

    def file_columns(self, columns: list[str]) -> list[str]:
        p = self.predictor
        return [c for c in columns if c != "id" and (p.input_kind(c) if c in p.modalities else c) != "text"]

    def _predict_table(self, df: pd.DataFrame, base: Path) -> pd.DataFrame:
        from affectfusion.serve.batch import predict_rows, predictions_table, table_inputs  # pandas readers, rich

        ids, inputs = table_inputs(self.predictor, df, base)
        return predictions_table(predict_rows(self.predictor, ids, inputs, progress=False))

    def summary(self) -> dict[str, Any]:
        info = self.predictor.info()
        specialists = info.get("specialists")
        return {
            "kind": "specialists, then a fusion of their frozen embeddings"
            if specialists
            else "multimodal fusion model",
            "fusion": info["fusion"],
            **({"specialists": specialists} if specialists else {}),
            "tasks": info["tasks"],
            "modalities": [
                {
                    "modality": m,
                    "input": spec["input"],
                    "extractor": (spec["extractor"] or {}).get("extractor", "(pre-extracted features)"),
                    "dim": spec["dim"],
                }
                for m, spec in info["modalities"].items()
            ],
        }

    def usage(self) -> list[tuple[str, str, str]]:
        return predictor_usage(self.run_dir, self.predictor, {s.kind: [*s.modalities] for s in self.slots()})


def analysis_of(p: Prediction) -> Analysis:
    """A Predictor result as the pages show it (the raw JSON is exactly ``Prediction.to_dict()``)."""
    a = Analysis(raw=p.to_dict(), weights=dict(p.modality_weights), error=p.error)
    for task, out in p.tasks.items():
        if "label" in out:
            a.headline[task] = out["label"]
        elif "labels" in out:
            a.headline[task] = ", ".join(out["labels"]) or "(none)"
        else:
            a.headline[task] = f"{out['value']:.4g}"
        if out.get("probabilities"):
            a.charts[task] = dict(out["probabilities"])
    calibrated, a.sets, a.attribution = dashboard_parts(p.tasks)
    a.charts.update(calibrated)
    return a


def no_face(p: Prediction, previews: list[FacePreview]) -> list[str]:
    """Face modalities without a face: the prediction's ``faces`` field where it has one, else the previews."""
    faces = getattr(p, "faces", None)
    if faces is not None:
        return [m for m, f in faces.items() if not f.get("found", True)]
    return [f.modality for f in previews if f.found is False]


def load_backend(run_dir: Path) -> Backend:
    """The backend for a run folder, as its kind registers it (:mod:`affectfusion.runkinds`)."""
    return run_kind_of(run_dir).resolve("dashboard_backend")(Path(run_dir))


def safe_relative(name: str) -> PurePosixPath:
    """A table cell or upload name as a relative path that stays inside the upload folder."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return PurePosixPath(p.name or "file")
    return p
