"""The dashboard backend of a vision-language run (``kind: vlm``): face image -> generated text ->
emotions, a 6-d emotion vector and action units, rendered as :class:`~affectfusion.vlm.predictor.VLMPredictor`
writes them."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths
from affectfusion.serve.dashboard.backends import Analysis, Backend, InputSlot
from affectfusion.serve.dashboard.faces import face_preview
from affectfusion.serve.dashboard.usage import vlm_usage
from affectfusion.serve.decode import check_image
from affectfusion.serve.inputs import INPUTS, InputRejected

if TYPE_CHECKING:
    from affectfusion.extract.face import FaceOptions


class VLMBackend(Backend):
    """A ``kind: vlm`` run: face image -> generated text -> emotions, emotion vector, action units."""

    kind = "vlm"

    def __init__(self, run_dir: Path, predictor: Any = None) -> None:
        super().__init__(run_dir)
        if predictor is None:
            try:
                from affectfusion.vlm.predictor import VLMPredictor  # the optional VLM stack (transformers, peft)
            except ImportError as e:
                raise AffectFusionError(
                    f"{run_dir} is a vision-language run but this installation cannot load it ({e})"
                ) from None
            predictor = VLMPredictor.load(self.run_dir)
        self.predictor = predictor

    def slots(self) -> list[InputSlot]:
        return [InputSlot("image", "image", INPUTS["image"].label, ("image",))]

    def _face(self) -> tuple[FaceOptions, int, str]:
        """The run's face settings, as its predictor's :class:`FacePreparer` applies them."""
        from affectfusion.extract.face import FaceOptions  # the face stack: only when a face is previewed
        from affectfusion.vlm.config import validate_vlm

        cfg = getattr(self.predictor, "cfg", None) or validate_vlm(self.config(), str(RunPaths(self.run_dir).config))
        f = cfg.face
        options = FaceOptions(detector=f.detector, align=f.align, margin=f.margin, min_confidence=f.min_confidence)
        return options, cfg.image_size, f.on_no_face

    def _predict(self, paths: list[Path]) -> list[dict[str, Any]]:
        """``to_dict()`` per image; a batch that fails is retried image by image so one bad file fails alone.

        An image over the pixel limit (read from its header) is refused before it is decoded.
        """
        refused: dict[int, str] = {}
        for k, path in enumerate(paths):
            try:
                check_image(path, self.limits, path.name)
            except InputRejected as e:
                refused[k] = str(e)
        if refused:
            if len(paths) == 1:
                raise InputRejected(413, refused[0])
            ok = [p for k, p in enumerate(paths) if k not in refused]
            done = iter(self._predict(ok) if ok else [])
            return [{"error": refused[k]} if k in refused else next(done) for k in range(len(paths))]
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
        from affectfusion.extract import ExtractionError  # with the face stack: only when a face is previewed

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
        with contextlib.suppress(ExtractionError, InputRejected):  # the prediction's error says what is wrong
            a.faces = [face_preview(Path(image), options, size, on_no_face, grey=False, limits=self.limits)]
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
        return vlm_usage(self.run_dir)


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
