"""Images -> aligned faces -> generated description -> structured fields, from a trained VLM run.

``VLMPredictor.load(run_dir)`` loads the base BLIP-2 named in the run's config and its LoRA adapter
once; ``predict`` takes any number of images (file paths, RGB arrays or PIL images), runs P4's face
preprocessing through the toolkit's :class:`~affectfusion.extract.face.FacePipeline`, generates in
batches and parses each answer (:func:`affectfusion.recipes.vlm.parse.parse_output`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.config import load_raw
from affectfusion.errors import AffectFusionError
from affectfusion.extract.face import FaceOptions, FacePipeline, full_image_crop, load_image
from affectfusion.io import read_json
from affectfusion.recipes.vlm.config import FaceConfig, VLMConfig, validate_vlm
from affectfusion.recipes.vlm.model import ADAPTER_DIR, generate_texts, load_adapter, load_blip2
from affectfusion.recipes.vlm.parse import parse_output
from affectfusion.rundir import RunPaths, declared_kind, is_run

ImageInput = str | Path | np.ndarray


@dataclass
class VLMPrediction:
    """One image's result. ``label`` is the dataset class of the parsed top emotion (None if unreadable)."""

    text: str
    emotions: list[str]
    emotion_vector: dict[str, float]
    action_units: list[str]
    label: str | None
    face_found: bool
    parse_ok: bool
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FacePreparer:
    """P4's preprocessing: detect, align by the eyes, crop a ``size`` square (the toolkit's face pipeline)."""

    def __init__(self, face: FaceConfig, size: int) -> None:

        self.face = face
        self.size = size
        options = FaceOptions(
            detector=face.detector, align=face.align, margin=face.margin, min_confidence=face.min_confidence
        )
        self.pipeline = FacePipeline(options)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """``(crop, face_found)``; crop is None when no face is found and ``no_face`` is skip."""

        crop = self.pipeline.face_crop(image, self.size)
        if crop is not None:
            return crop, True
        if self.face.no_face == "skip":
            return None, False
        return full_image_crop(image, self.size), False


def as_rgb(item: Any, where: str = "image") -> np.ndarray:
    """An RGB uint8 ``[H, W, 3]`` array from a JPG/PNG/BMP path, an array (grey, RGB or RGBA) or a PIL image."""

    if isinstance(item, str | Path):
        return load_image(item)
    if hasattr(item, "convert") and hasattr(item, "size"):  # PIL image
        return np.asarray(item.convert("RGB"))
    if not isinstance(item, np.ndarray):
        raise AffectFusionError(f"{where}: expected an image path or an RGB array, got {type(item).__name__}")
    if item.dtype != np.uint8:
        raise AffectFusionError(f"{where}: expected a uint8 array (0-255), got {item.dtype}")
    if item.ndim == 2:
        item = np.stack([item] * 3, axis=-1)
    if item.ndim != 3 or item.shape[2] not in (3, 4) or min(item.shape[:2]) < 2:
        raise AffectFusionError(f"{where}: expected an [H, W, 3] RGB array, got shape {item.shape}")
    return np.ascontiguousarray(item[:, :, :3])


def read_vlm_run(run_dir: str | Path) -> tuple[VLMConfig, dict[str, Any]]:
    """The config and metadata of a VLM run directory."""
    paths = RunPaths(Path(run_dir))
    if not is_run(paths.root):
        raise AffectFusionError(f"{paths.root} is not a run directory (expected config.yaml and meta.json in it)")
    if declared_kind(paths.root) != "vlm":
        raise AffectFusionError(f"{paths.root} is not a VLM run (its config.yaml has no 'kind: vlm')")
    return validate_vlm(load_raw(paths.config), str(paths.config)), read_json(paths.meta)


def base_model_summary(model: Any) -> dict[str, Any]:
    """What an adapter depends on in its base model; recorded at training, checked at loading."""
    cfg = model.config
    return {
        "language_model": cfg.text_config.model_type,
        "text_hidden_size": cfg.text_config.hidden_size,
        "text_layers": cfg.text_config.num_hidden_layers,
        "vocab_size": model.get_input_embeddings().num_embeddings,
        "num_query_tokens": cfg.num_query_tokens,
    }


class VLMPredictor:
    """A BLIP-2 + LoRA model with its face preprocessing, prompt, generation settings and label map."""

    def __init__(self, cfg: VLMConfig, model: Any, processor: Any, label_map: dict[str, str]) -> None:
        self.cfg = cfg
        self.model = model
        self.processor = processor
        self.label_map = dict(label_map)  # dataset class -> canonical emotion
        self._class_of = {emotion: cls for cls, emotion in self.label_map.items()}
        self.preparer = FacePreparer(cfg.face, cfg.image_size)
        self.model.eval()

    @property
    def classes(self) -> list[str]:
        return list(self.label_map)

    @classmethod
    def load(cls, run_dir: str | Path, model_path: str | Path | None = None) -> VLMPredictor:
        """Load a run's base model (``model.path`` of its config, or ``model_path``) and its adapter."""
        cfg, meta = read_vlm_run(run_dir)
        path = Path(model_path) if model_path is not None else Path(cfg.model.path or "")
        if not str(path) or str(path) == ".":
            raise AffectFusionError(f"{run_dir}: config.yaml names no model.path; pass model_path")
        model, processor = load_blip2(path, cfg.model.dtype)
        expected = meta.get("base_model")
        if expected and base_model_summary(model) != expected:
            raise AffectFusionError(
                f"{path} is not the base model {run_dir} was trained on: {base_model_summary(model)} vs {expected}"
            )
        model = load_adapter(model, Path(run_dir) / ADAPTER_DIR)
        return cls(cfg, model, processor, meta["label_map"])

    def prepare(self, images: Sequence[Any]) -> list[tuple[np.ndarray | None, bool]]:
        """Aligned face crops (None where skipped) and whether a face was found, per image."""
        out = []
        for i, item in enumerate(images):
            where = f"image {i}" + (f" ({item})" if isinstance(item, str | Path) else "")
            out.append(self.preparer(as_rgb(item, where)))
        return out

    def predict(self, images: Sequence[Any], batch_size: int | None = None) -> list[VLMPrediction]:
        """One prediction per image, in order; the model sees batches of ``generation.batch_size`` faces."""
        return self.predict_prepared(self.prepare(images), batch_size)

    def predict_prepared(
        self, prepared: Sequence[tuple[np.ndarray | None, bool]], batch_size: int | None = None
    ) -> list[VLMPrediction]:
        batch_size = batch_size or self.cfg.generation.batch_size
        found = {i: crop for i, (crop, _) in enumerate(prepared) if crop is not None}
        todo = list(found)
        texts: dict[int, str] = {}
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            crops = [found[i] for i in chunk]
            for i, text in zip(
                chunk,
                generate_texts(self.model, self.processor, crops, self.cfg.prompt, self.cfg.generation),
                strict=True,
            ):
                texts[i] = text
        results = []
        for i, (_, face_found) in enumerate(prepared):
            if i not in texts:
                results.append(
                    VLMPrediction("", [], {}, [], None, face_found, False, ["no face found (face.no_face: skip)"])
                )
                continue
            parsed = parse_output(texts[i])
            label = self._class_of.get(parsed.top_emotion) if parsed.top_emotion else None
            results.append(
                VLMPrediction(
                    text=texts[i],
                    emotions=parsed.emotions,
                    emotion_vector=parsed.emotion_vector,
                    action_units=parsed.action_units,
                    label=label,
                    face_found=face_found,
                    parse_ok=parsed.parse_ok,
                    issues=parsed.issues,
                )
            )
        return results
