"""Serving a vision-language run (``kind: vlm``, P4) like any other run.

A VLM run does not score feature vectors: BLIP-2 + LoRA *writes* an answer for an aligned face crop
and a tolerant parser turns it into emotions, a 6-d emotion vector and action units
(:class:`affectfusion.recipes.vlm.predictor.VLMPredictor`). :class:`VLMRunPredictor` wraps that predictor in
the surface every serving path uses (``modalities``, ``accepted_inputs``, ``input_kind``,
``feature_dim``, ``extractors``, ``info``, ``metrics``, ``predict``, ``predict_one``, ``name``,
``results_dir``, ``load_seconds``), so ``affectfusion predict``, the batch tables and the REST API
serve a VLM run unchanged; :func:`affectfusion.serve.predictor.load_predictor` picks it by folder.

Each result is an ordinary :class:`~affectfusion.serve.predictor.Prediction`:

- one modality, ``image`` (input kind ``image``: a JPG/PNG/BMP file, an RGB array or a PIL image);
- one classification task, named after the dataset's target (``data.options.target`` of the
  ``image_folder`` adapter, the single key of ``data.options.targets`` of ``media_table``, else
  ``emotion``), whose classes are the run's dataset classes. ``label`` is the class of the parsed
  top emotion (``None`` when the answer names none, or names one outside the classes), and
  ``probabilities`` is the parsed 6-d emotion vector as it is (happiness, sadness, anger, fear,
  surprise, disgust -> intensity in [0, 1]; not a distribution; empty when the answer has none);
- ``generated``: the answer itself and its parsed fields (text, emotions, action_units,
  face_found, parse_ok, issues).

An image that cannot be read, or has no face when the run says ``face.no_face: skip``, gets its
reason in that prediction's ``error``; the other images are generated in batches as usual.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from affectfusion.device import resolve_device
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import KIND_HINTS
from affectfusion.recipes.vlm.targets import EMOTIONS
from affectfusion.serve.base import Prediction, RunPredictor, check_ids, route_input
from affectfusion.serve.decode import check_image
from affectfusion.serve.input_limits import InputLimits

if TYPE_CHECKING:
    from affectfusion.extract import Extractor
    from affectfusion.recipes.vlm.config import VLMConfig
    from affectfusion.recipes.vlm.predictor import VLMPrediction, VLMPredictor

MODALITY = "image"
DEFAULT_TASK = "emotion"
NO_FACE = "no face found in the image (the run sets face.no_face: skip)"


def task_name(cfg: VLMConfig) -> str:
    """The name the run's dataset gives its class label, so a VLM run's output reads like a fusion run's
    trained on the same data: ``data.options.target`` (``image_folder``), the one key of
    ``data.options.targets`` (``media_table``), else ``emotion``."""
    options = cfg.data.options or {}
    target = options.get("target")
    if isinstance(target, str) and target.strip():
        return target
    targets = options.get("targets")
    if isinstance(targets, Mapping) and len(targets) == 1:
        (name,) = targets
        return str(name)
    return DEFAULT_TASK


class VLMRunPredictor(RunPredictor):
    """A VLM run directory, loaded once: face images -> generated answers -> :class:`Prediction` objects."""

    def __init__(self, run_dir: str | Path, vlm: VLMPredictor, load_seconds: float = 0.0) -> None:
        self.root = Path(run_dir)
        self.vlm = vlm
        self.cfg = vlm.cfg
        self.task = task_name(self.cfg)
        self.modalities = [MODALITY]
        # The face preprocessing happens inside the VLM (FacePreparer), not in a feature extractor.
        self.extractors: dict[str, Extractor] = {}
        self.load_seconds = load_seconds

    @classmethod
    def load(cls, run_dir: str | Path, which: str = "best", device: str = "cpu") -> VLMRunPredictor:
        """Load the base model named in the run's config and the run's LoRA adapter.

        A VLM run saves one adapter (at the end of training), so ``best`` and ``last`` are the same.
        """
        if which not in ("best", "last"):
            raise AffectFusionError(f"checkpoint must be 'best' or 'last', got {which!r}")
        try:
            from affectfusion.recipes.vlm.predictor import VLMPredictor
        except ImportError as e:
            raise AffectFusionError(
                f"{run_dir} is a vision-language run but this installation cannot load it ({e})"
            ) from None
        start = time.perf_counter()
        vlm = VLMPredictor.load(run_dir)
        vlm.model.to(resolve_device(device, "--device"))
        return cls(run_dir, vlm, time.perf_counter() - start)

    # -- what the run accepts -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def results_dir(self) -> Path:
        """The run itself: ``eval/<split>/metrics.json`` and ``predictions.csv`` of the generated answers."""
        return self.root

    def input_kind(self, modality: str) -> str:
        self._check_modality(modality)
        return "image"

    def feature_dim(self, modality: str) -> int:
        """Not applicable: the model reads the aligned face crop, never a feature array."""
        self._check_modality(modality)
        raise AffectFusionError(
            f"{self.root} is a vision-language run: it reads face images ({KIND_HINTS['image']}), not feature arrays"
        )

    def info(self) -> dict[str, Any]:
        """Tasks and classes, the image input and its face preprocessing, metrics, and the VLM's settings."""
        cfg = self.cfg
        return {
            "name": cfg.name,
            "kind": "vlm",
            "tasks": [{"name": self.task, "type": "classification", "classes": self.vlm.classes}],
            "modalities": {MODALITY: {"input": "image", "extractor": self._face_description(), "dim": None}},
            "fusion": None,
            "metrics": self.metrics(),
            "load_seconds": round(self.load_seconds, 3),
            "vlm": {
                "base_model_path": cfg.model.path,
                "dtype": cfg.model.dtype,
                "prompt": cfg.prompt,
                "lora": cfg.lora.model_dump(mode="json"),
                "classes": self.vlm.classes,
                "label_map": dict(self.vlm.label_map),
                "emotion_vector": list(EMOTIONS),
                "generation": cfg.generation.model_dump(mode="json"),
            },
        }

    def _face_description(self) -> dict[str, Any]:
        """The image pipeline in the shape of an extractor description (what ``/info`` shows per modality)."""
        return {
            "extractor": "vlm_face_crop",
            "options": {**self.cfg.face.model_dump(mode="json"), "image_size": self.cfg.image_size},
        }

    # -- prediction -----------------------------------------------------------------------------

    def predict(
        self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None, explain: bool = False
    ) -> list[Prediction]:
        """Predictions for many inputs (each ``{"image": path, array or PIL image}``), generated in batches.

        An input that cannot be used (another key, a missing or unreadable file, no face with
        ``face.no_face: skip``) gets ``error`` set; the others are unaffected.
        """
        self.check_explain(explain)
        ids = check_ids(inputs, ids)
        results = [Prediction(id=i) for i in ids]
        prepared: dict[int, tuple[np.ndarray, bool]] = {}
        for k, item in enumerate(inputs):
            try:
                value = route_input(item, self.modalities, self.accepted_inputs)[MODALITY]
                crop, found = self.vlm.preparer(_rgb(value, self.limits))
            except AffectFusionError as e:
                results[k].error = f"{MODALITY}: {e}"
                continue
            if crop is None:
                results[k].error = f"{MODALITY}: {NO_FACE}"
            else:
                prepared[k] = (crop, found)
        order = sorted(prepared)
        for k, generated in zip(order, self.vlm.predict_prepared([prepared[k] for k in order]), strict=True):
            self._fill(results[k], generated)
        return results

    def _fill(self, res: Prediction, p: VLMPrediction) -> None:
        res.modalities_used = [MODALITY]
        res.tasks[self.task] = {"label": p.label, "probabilities": {e: float(v) for e, v in p.emotion_vector.items()}}
        res.generated = {
            "text": p.text,
            "emotions": list(p.emotions),
            "action_units": list(p.action_units),
            "face_found": bool(p.face_found),
            "parse_ok": bool(p.parse_ok),
            "issues": list(p.issues),
        }

    def _check_modality(self, modality: str) -> None:
        if modality != MODALITY:
            raise AffectFusionError(f"unknown modality {modality!r}; this vision-language run has only {MODALITY!r}")


def _rgb(value: Any, limits: InputLimits) -> np.ndarray:
    """An RGB array from an image file path (checked to exist and to be within ``limits``), an array or a PIL image."""
    from affectfusion.recipes.vlm.predictor import as_rgb  # needs the optional VLM stack (transformers, peft)

    if isinstance(value, str | Path):
        path = Path(value).expanduser()
        if not path.is_file():
            raise AffectFusionError(f"image file not found: {path}")
        check_image(path, limits, str(path))
        return as_rgb(path)
    return as_rgb(value)
