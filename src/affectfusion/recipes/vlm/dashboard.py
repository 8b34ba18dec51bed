"""The dashboard backend of a vision-language run (``kind: vlm``): face image -> generated text ->
emotions, a 6-d emotion vector and action units, predicted through :class:`VLMRunPredictor` like any run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectfusion.inputs import INPUTS
from affectfusion.recipes.vlm.run_predictor import VLMRunPredictor
from affectfusion.serve.base import RunPredictor
from affectfusion.serve.dashboard.backends import Analysis, PredictorBackend, analysis_of
from affectfusion.serve.dashboard.faces import face_preview
from affectfusion.serve.dashboard.usage import vlm_usage
from affectfusion.serve.input_limits import InputRejected

if TYPE_CHECKING:
    from affectfusion.extract.face import FaceOptions


class VLMBackend(PredictorBackend):
    """A ``kind: vlm`` run: face image -> generated text -> emotions, emotion vector, action units.

    Predictions, batch tables and the raw JSON come from :class:`VLMRunPredictor` through the same
    functions as every other run (so the Batch tab's CSV is ``affectfusion predict --batch``'s);
    this class only adds how the generated answer and the face crop are shown.
    """

    kind = "vlm"
    predictor: VLMRunPredictor  # what load_predictor gives for a vlm run, or what __init__ wraps

    def __init__(self, run_dir: Path, predictor: Any = None) -> None:
        if predictor is not None and not isinstance(predictor, RunPredictor):
            predictor = VLMRunPredictor(run_dir, predictor)  # a VLMPredictor (or a stand-in for one)
        super().__init__(run_dir, predictor)

    def _face(self) -> tuple[FaceOptions, int, str]:
        """The run's face settings, as its predictor's :class:`FacePreparer` applies them."""
        from affectfusion.extract.face import FaceOptions  # the face stack: only when a face is previewed

        cfg = self.predictor.cfg
        f = cfg.face
        options = FaceOptions(detector=f.detector, align=f.align, margin=f.margin, min_confidence=f.min_confidence)
        return options, cfg.image_size, f.no_face

    def _analyse(self, inputs: dict[str, str]) -> Analysis:
        from affectfusion.extract import ExtractionError  # with the face stack: only when a face is previewed

        image = inputs.get("image")
        if not image:
            return Analysis(error=f"upload a face image ({INPUTS['image'].hint})")
        prediction = self.predictor.predict_one(inputs)
        a = analysis_of(prediction)
        a.probability_charts = False  # the parsed emotion vector: intensities, not a distribution
        a.headline = {task: label if label else "(none)" for task, label in a.headline.items()}
        vectors = list(a.charts.values())  # one task; its "probabilities" are the parsed emotion vector
        a.charts = {"emotion vector": vectors[0]} if vectors else {}
        generated = prediction.generated or {}
        a.generated_text = generated.get("text")
        a.fields = {k: generated[k] for k in ("emotions", "action_units", "face_found", "parse_ok") if k in generated}
        options, size, no_face = self._face()
        with contextlib.suppress(ExtractionError, InputRejected):  # the prediction's error says what is wrong
            a.faces = [face_preview(Path(image), options, size, no_face, grey=False, limits=self.limits)]
        return a

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
        return vlm_usage(self.run_dir)
