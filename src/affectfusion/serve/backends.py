"""What the dashboard's pages show, behind one interface for every kind of run.

The pages talk to a :class:`Backend`, not to a model class, so page code does not branch on the
kind of run. :class:`ClassifierBackend` serves a trained fusion run through the same
:class:`~affectfusion.serve.predictor.Predictor` as ``affectfusion predict`` and the REST API (so
all give the same predictions), and a P3 specialists run through its composed
:class:`~affectfusion.serve.specialists.SpecialistsPredictor`; :class:`VLMBackend` serves a
vision-language run (``kind: vlm``: generated text parsed into emotions, a 6-d emotion vector and
action units) through :class:`~affectfusion.vlm.predictor.VLMPredictor` itself, whose fields it
renders as they are (``affectfusion predict`` and the REST API serve the same run through
:class:`~affectfusion.serve.vlm.VLMRunPredictor`, which wraps the same predictor). Nothing here
imports Streamlit, torch or the face libraries at module level.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    from affectfusion.extract.face import FaceOptions
    from affectfusion.serve.predictor import Prediction, RunPredictor


# File types each input kind accepts (upload widgets filter on them; the server checks them again).
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "bmp"),
    "audio": ("wav", "flac", "ogg", "mp3"),
    "video": ("mp4", "avi", "mov", "mkv", "webm"),
    "signal": ("npz",),
    "features": ("npy",),
}
KIND_LABELS = {
    "text": "Text (transcript, post, utterance)",
    "image": "Face image (JPG/PNG/BMP)",
    "audio": "Audio (WAV/FLAC/OGG/MP3)",
    "video": "Video (MP4/AVI/MOV/MKV/WEBM)",
    "signal": "EEG (.npz with 'data' [channels, time] and 'sfreq')",
}
SLOT_ORDER = ("text", "image", "audio", "video", "signal", "features")
CLI_FLAGS = {"text": "--text", "image": "--image", "audio": "--audio", "video": "--video", "signal": "--eeg"}
EXAMPLE_VALUES = {
    "text": "I feel great today",
    "image": "face.jpg",
    "audio": "clip.wav",
    "video": "clip.mp4",
    "signal": "eeg.npz",
}


def run_kind(run_dir: Path) -> str:
    """``classifier`` (a fusion run), ``vlm`` (``kind: vlm`` in config.yaml) or ``specialists`` (the
    output folder of a ``kind: specialists`` config: specialists, then fusion); an error for anything else."""
    run_dir = Path(run_dir)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise AffectFusionError(f"{run_dir} is not a run directory (expected config.yaml in it)")
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise AffectFusionError(f"{config}: not readable YAML ({str(e).splitlines()[0]})") from None
    if isinstance(raw, dict) and raw.get("kind") == "vlm":
        return "vlm"
    if isinstance(raw, dict) and raw.get("kind") == "specialists":
        if not (run_dir / "fusion" / "meta.json").is_file():
            raise AffectFusionError(
                f"{run_dir} is a specialists run whose fusion is not trained yet (expected fusion/meta.json in it); "
                f"run `affectfusion train {run_dir / 'config.yaml'} --out {run_dir}` to finish it"
            )
        return "specialists"
    if not (run_dir / "meta.json").is_file():
        raise AffectFusionError(f"{run_dir} is not a trained run (expected meta.json next to config.yaml)")
    return "classifier"


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
        return FILE_TYPES.get(self.kind, ())


@dataclass
class FacePreview:
    """The detected face drawn on the input, and exactly the crop the model reads."""

    modality: str
    annotated: np.ndarray
    model_input: np.ndarray | None  # None: no face and the model refuses the image
    caption: str
    model_caption: str


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

    def batch_slots(self) -> list[InputSlot]:
        """Slots that take files (text goes through a table)."""
        return [s for s in self.slots() if s.kind != "text"]

    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.run_dir / "config.yaml").read_text(encoding="utf-8")) or {}

    def config_text(self) -> str:
        return (self.run_dir / "config.yaml").read_text(encoding="utf-8")

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Split -> ``eval/<split>/metrics.json``."""
        out = {}
        for path in sorted((self.results_dir / "eval").glob("*/metrics.json")):
            try:
                out[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue  # being rewritten by `affectfusion test` right now: show the others
        return out

    def plots(self) -> list[Path]:
        return sorted((self.results_dir / "plots").glob("*.png"))


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
        tasks = m.get("tasks") if isinstance(m.get("tasks"), dict) else {"": m}
        for task, tm in tasks.items():
            if not isinstance(tm, dict) or not tm.get("confusion_matrix") or not tm.get("classes"):
                continue
            image = run_dir / "plots" / f"confusion_{split}_{task}.png"
            out.append(
                Confusion(split, task, list(tm["classes"]), tm["confusion_matrix"], image if image.is_file() else None)
            )
    return out


# -- face preview ---------------------------------------------------------------------------------


def face_preview(
    path: Path, options: FaceOptions, size: int, on_no_face: str, grey: bool, modality: str = "image"
) -> FacePreview:
    """Run the face pipeline on one image the way the model's extractor does, for display.

    The crop comes from :meth:`FacePipeline.face_crop` (or the whole image when no face is found and
    the run allows that), the same calls the extractor makes, so it is the model's input. Raises
    :class:`ExtractionError` for a file that is not a readable image.
    """
    from affectfusion.extract.face import FacePipeline, detect_faces, full_image_crop, load_image, to_grey

    image = load_image(path)
    annotated = image.copy()
    pipeline = FacePipeline(options)
    crop: np.ndarray | None
    if options.detector == "none":
        crop = full_image_crop(image, size)
        caption = "no face detector (the run's images are face crops): the whole image is used"
    else:
        faces = detect_faces(image, options.detector, options.min_confidence)
        if faces:
            _draw_face(annotated, faces[0].box, faces[0].eyes)
            crop = pipeline.face_crop(image, size)
            aligned = options.align and faces[0].eyes is not None
            caption = (
                f"{options.detector} detector: {len(faces)} face(s), the largest used"
                f"{', rotated so the eyes are level' if aligned else ' (no eyes found: not rotated)'}"
            )
        elif on_no_face == "full_image":
            crop = full_image_crop(image, size)
            caption = f"{options.detector} detector found no face: the whole image is used"
        else:
            crop = None
            caption = f"{options.detector} detector found no face: the model does not use this image"
    if crop is not None and grey:
        crop = to_grey(crop)
    model_caption = f"model input: {size}×{size}{' grey' if grey else ''}"
    if options.detector != "none":
        model_caption += f", face box enlarged by {options.margin:.0%}"
    return FacePreview(modality, annotated, crop, caption, model_caption)


def _draw_face(image: np.ndarray, box: tuple[int, int, int, int], eyes: Any) -> None:
    import cv2

    x, y, w, h = box
    thickness = max(1, round(min(image.shape[:2]) / 150))
    cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), thickness)
    for ex, ey in eyes or ():
        cv2.circle(image, (round(ex), round(ey)), 2 * thickness + 1, (255, 60, 0), -1)


# -- a trained fusion run -------------------------------------------------------------------------


class ClassifierBackend(Backend):
    """A fusion run through the Predictor: the same features, model and outputs as ``predict``.

    A specialists run (P3) is served the same way through its composed
    :class:`~affectfusion.serve.specialists.SpecialistsPredictor`; its metrics are the fusion's.
    """

    kind = "classifier"

    def __init__(self, run_dir: Path, predictor: RunPredictor | None = None) -> None:
        from affectfusion.serve.predictor import load_predictor

        super().__init__(run_dir)
        self.predictor = predictor or load_predictor(self.run_dir)
        self.results_dir = Path(self.predictor.results_dir).resolve()

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
                out.append(InputSlot(kind, kind, f"{KIND_LABELS[kind]} → {used}", tuple(modalities)))
        return out

    def _analyse(self, inputs: dict[str, str]) -> Analysis:
        prediction = self.predictor.predict_one(inputs)
        analysis = analysis_of(prediction)
        analysis.faces = self.face_previews(inputs)
        return analysis

    def face_previews(self, inputs: dict[str, str]) -> list[FacePreview]:
        """One preview per modality made by the FER-CNN face pipeline from an uploaded image."""
        from affectfusion.extract import ExtractionError
        from affectfusion.extract.face import FER_INPUT_SIZE, FaceOptions, FerCnnExtractor

        out = []
        for m, ex in self.predictor.extractors.items():
            if not isinstance(ex, FerCnnExtractor):
                continue
            path = inputs.get(m) or inputs.get(ex.kind)
            if not path:
                continue
            o = ex.options
            options = FaceOptions(detector=o.detector, min_confidence=o.min_confidence, align=o.align, margin=o.margin)
            try:
                preview = face_preview(Path(path), options, FER_INPUT_SIZE, o.on_no_face, grey=True, modality=m)
            except ExtractionError:
                continue  # the prediction's error already says what is wrong with the file
            if o.flip_average:
                preview.model_caption += " (and its mirror image, averaged)"
            out.append(preview)
        return out

    def file_columns(self, columns: list[str]) -> list[str]:
        p = self.predictor
        return [c for c in columns if c != "id" and (p.input_kind(c) if c in p.modalities else c) != "text"]

    def _predict_table(self, df: pd.DataFrame, base: Path) -> pd.DataFrame:
        from affectfusion.serve.batch import predict_rows, predictions_table, table_inputs

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
        run = shlex.quote(str(self.run_dir))
        accepted = {s.kind: [*s.modalities] for s in self.slots() if s.kind != "features"}
        accepted["features"] = self.predictor.accepted_inputs.get("features", [])
        flags = [f"{CLI_FLAGS[k]} {shlex.quote(EXAMPLE_VALUES[k])}" for k in accepted if k in CLI_FLAGS]
        flags += [f"--features {m}={m}.npy" for m in accepted.get("features", [])]
        columns = ["id", *(k for k in accepted if k != "features"), *accepted.get("features", [])]
        example = {k: EXAMPLE_VALUES.get(k, f"{k}.npy") for k in columns if k != "id"}
        if "specialists" in self.predictor.info():
            load_code = (
                "from affectfusion.serve.predictor import load_predictor\n\n"
                f"predictor = load_predictor({str(self.run_dir)!r})  # specialists, then fusion\n"
            )
        else:
            load_code = (
                f"from affectfusion.serve import Predictor\n\npredictor = Predictor.load({str(self.run_dir)!r})\n"
            )
        curl = [
            f"-F {k}={shlex.quote(v) if k == 'text' else '@' + v}" for k, v in example.items() if k in CLI_FLAGS
        ] + [f"-F features_{m}=@{m}.npy" for m in accepted.get("features", [])]
        return [
            (
                "One input from the command line (add `--json` for JSON)",
                "bash",
                f"affectfusion predict {run} {' '.join(flags)}",
            ),
            (
                f"A table of inputs (CSV or JSONL; columns {', '.join(columns)}; file paths relative to the table; "
                "empty cells = not given) to a predictions CSV, the same file the Batch tab downloads",
                "bash",
                f"affectfusion predict {run} --batch inputs.csv --out predictions.csv",
            ),
            (
                "REST API (docs at http://127.0.0.1:8000/docs) and this dashboard",
                "bash",
                f"affectfusion serve api {run}\n"
                f"curl {' '.join(curl)} http://127.0.0.1:8000/predict\n"
                f"affectfusion serve dashboard {run}",
            ),
            (
                "Python",
                "python",
                load_code + f"prediction = predictor.predict_one({example!r})\n"
                "print(prediction.tasks, prediction.modality_weights, prediction.error)",
            ),
        ]


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
    return a


# -- a vision-language run ------------------------------------------------------------------------


class VLMBackend(Backend):
    """A ``kind: vlm`` run: face image -> generated text -> emotions, emotion vector, action units."""

    kind = "vlm"

    def __init__(self, run_dir: Path, predictor: Any = None) -> None:
        super().__init__(run_dir)
        if predictor is None:
            try:
                from affectfusion.vlm.predictor import VLMPredictor
            except ImportError as e:
                raise AffectFusionError(
                    f"{run_dir} is a vision-language run but this installation cannot load it ({e})"
                ) from None
            predictor = VLMPredictor.load(self.run_dir)
        self.predictor = predictor

    def slots(self) -> list[InputSlot]:
        return [InputSlot("image", "image", KIND_LABELS["image"], ("image",))]

    def _face(self) -> tuple[FaceOptions, int, str]:
        """The run's face settings, as its predictor's :class:`FacePreparer` applies them."""
        from affectfusion.extract.face import FaceOptions
        from affectfusion.vlm.config import validate_vlm

        cfg = getattr(self.predictor, "cfg", None) or validate_vlm(self.config(), str(self.run_dir / "config.yaml"))
        f = cfg.face
        options = FaceOptions(detector=f.detector, align=f.align, margin=f.margin, min_confidence=f.min_confidence)
        return options, cfg.image_size, f.on_no_face

    def _predict(self, paths: list[Path]) -> list[dict[str, Any]]:
        """``to_dict()`` per image; a batch that fails is retried image by image so one bad file fails alone."""
        try:
            return [p.to_dict() for p in self.predictor.predict([str(p) for p in paths])]
        except AffectFusionError:
            if len(paths) == 1:
                raise
        out = []
        for path in paths:
            try:
                out.append(self.predictor.predict([str(path)])[0].to_dict())
            except AffectFusionError as e:
                out.append({"error": str(e)})
        return out

    def _analyse(self, inputs: dict[str, str]) -> Analysis:
        from affectfusion.extract import ExtractionError

        image = inputs.get("image")
        if not image:
            return Analysis(error="upload a face image (JPG/PNG/BMP)")
        try:
            d = self._predict([Path(image)])[0]
        except AffectFusionError as e:
            return Analysis(error=str(e))
        a = Analysis(raw=d, probability_charts=False, error=d.get("error") or None)
        a.generated_text = d.get("text")
        label = d.get("label")
        a.headline["emotion"] = label if label else "(none)"
        if d.get("emotion_vector"):
            a.charts["emotion vector"] = {k: float(v) for k, v in d["emotion_vector"].items()}
        a.fields = {k: d[k] for k in ("emotions", "action_units", "face_found", "parse_ok") if k in d}
        options, size, on_no_face = self._face()
        with contextlib.suppress(ExtractionError):  # the prediction's error says what is wrong with the file
            a.faces = [face_preview(Path(image), options, size, on_no_face, grey=False)]
        return a

    def file_columns(self, columns: list[str]) -> list[str]:
        return [c for c in columns if c == "image"]

    def _predict_table(self, df: pd.DataFrame, base: Path) -> pd.DataFrame:
        unknown = [c for c in df.columns if c not in ("id", "image")]
        if unknown or "image" not in df.columns:
            raise AffectFusionError(
                f"a vision-language run takes a table with columns id and image; got {', '.join(df.columns)}"
            )
        ids = [str(v) if v else str(i) for i, v in enumerate(df["id"])] if "id" in df.columns else None
        ids = ids or [str(i) for i in range(len(df))]
        rows: list[dict[str, Any]] = [{} for _ in ids]
        todo = [(k, base / cell) for k, cell in enumerate(df["image"]) if cell]
        for k, cell in enumerate(df["image"]):
            if not cell:
                rows[k] = {"error": "no image"}
        for (k, _), d in zip(todo, self._predict([p for _, p in todo]) if todo else [], strict=True):
            rows[k] = d
        return pd.DataFrame([_flat_row(i, d) for i, d in zip(ids, rows, strict=True)])

    def summary(self) -> dict[str, Any]:
        cfg = self.config()
        return {
            "kind": "vision-language model (generates text)",
            "base model": (cfg.get("model") or {}).get("path"),
            "prompt": cfg.get("prompt"),
            "face": cfg.get("face"),
            "image size": cfg.get("image_size"),
            "LoRA": cfg.get("lora"),
        }

    def usage(self) -> list[tuple[str, str, str]]:
        run = shlex.quote(str(self.run_dir))
        return [
            (
                "One image from the command line (add `--json` for JSON), or a table of images "
                "(columns id, image; paths relative to the table) to a predictions CSV",
                "bash",
                f"affectfusion predict {run} --image face.jpg\n"
                f"affectfusion predict {run} --batch images.csv --out predictions.csv",
            ),
            (
                "REST API (docs at http://127.0.0.1:8000/docs) and this dashboard",
                "bash",
                f"affectfusion serve api {run}\n"
                "curl -F image=@face.jpg http://127.0.0.1:8000/predict\n"
                f"affectfusion serve dashboard {run}",
            ),
            (
                "Python",
                "python",
                "from affectfusion.vlm.predictor import VLMPredictor\n\n"
                f"predictor = VLMPredictor.load({str(self.run_dir)!r})\n"
                "for p in predictor.predict(['face1.jpg', 'face2.png']):\n"
                "    print(p.label, p.emotions, p.emotion_vector, p.action_units)\n\n"
                "# or as every run is served (CLI, API): a Prediction with the answer under `generated`\n"
                "from affectfusion.serve import load_predictor\n\n"
                f"prediction = load_predictor({str(self.run_dir)!r}).predict_one({{'image': 'face1.jpg'}})\n"
                "print(prediction.tasks, prediction.generated, prediction.error)",
            ),
        ]


def _flat_row(id: str, d: dict[str, Any]) -> dict[str, Any]:
    """A VLM prediction as a CSV row: lists joined with ';', the emotion vector one column per emotion."""
    row: dict[str, Any] = {"id": id}
    for k, v in d.items():
        if k == "error":
            continue
        if isinstance(v, dict):
            row.update({f"{k}_{name}": value for name, value in v.items()})
        elif isinstance(v, list | tuple):
            row[k] = ";".join(str(x) for x in v)
        else:
            row[k] = v
    row["error"] = d.get("error") or ""
    return row


def load_backend(run_dir: Path) -> Backend:
    """The backend for a run folder, by its kind (a specialists run is served as a classifier)."""
    return VLMBackend(run_dir) if run_kind(run_dir) == "vlm" else ClassifierBackend(run_dir)


def safe_relative(name: str) -> PurePosixPath:
    """A table cell or upload name as a relative path that stays inside the upload folder."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return PurePosixPath(p.name or "file")
    return p
