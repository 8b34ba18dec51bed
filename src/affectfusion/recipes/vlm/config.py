"""Typed configuration of the vision-language path (``kind: vlm``), validated like every other config.

A VLM run is not a feature-fusion model, so it has its own schema; it shares the YAML loading,
``--set`` overrides and error formatting of :mod:`affectfusion.config`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from affectfusion.config import (
    DeviceSetting,
    SplitNames,
    Strict,
    ThreadsSetting,
    apply_overrides,
    format_validation_error,
    no_face_alias,
    read_config_file,
    resolve_config_path,
)
from affectfusion.errors import AffectFusionError

DEFAULT_PROMPT = (
    "Question: which emotions does this face show? Answer with the emotions, "
    "the emotion vector and the action units. Answer:"
)
TINY_MODEL_HINT = "python -m affectfusion.recipes.vlm.tiny DIR"


class VLMDataConfig(SplitNames):
    """Where the labelled face images come from (any adapter whose samples carry ``raw['image']``)."""

    adapter: str = "image_folder"
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class VLMModelConfig(Strict):
    path: str | None = Field(
        None,
        description="local folder of a Hugging Face BLIP-2 model + processor (config.json, weights, tokenizer, "
        "processor config), e.g. a download of Salesforce/blip2-opt-2.7b",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="weights dtype; bfloat16 halves memory (the Q-Former stays float32)"
    )


class FaceConfig(Strict):
    """P4's preprocessing through the toolkit's face pipeline (:class:`affectfusion.extract.face.FacePipeline`)."""

    detector: Literal["haar", "mediapipe", "none"] = Field(
        "haar", description="haar: OpenCV face + eye cascades (P4); mediapipe; none: images are already face crops"
    )
    align: bool = Field(True, description="rotate so the eyes are level before cropping")
    margin: float = Field(0.2, ge=0, le=2, description="enlarge the face box by this fraction before cropping")
    min_confidence: float = Field(0.5, gt=0, lt=1, description="MediaPipe detection threshold")
    no_face: Literal["whole_frame", "skip"] = Field(
        "whole_frame",
        description="no face found: use the whole image (already-cropped datasets), or skip it (training and "
        "evaluation leave it out; prediction returns face_found=false with no text)",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_key(cls, data: Any) -> Any:
        """``on_no_face: full_image|skip`` (the old key, in configs and trained runs) read as ``no_face``, the
        face extractors' name for the same choice."""
        return no_face_alias(data, section="face.")


class LoraSettings(Strict):
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        min_length=1,
        description="module names (suffixes) that get LoRA; q_proj/v_proj are the OPT language model's",
    )


class TargetsConfig(Strict):
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="dataset class -> happiness, sadness, anger, fear, surprise, disgust or neutral "
        "(FER names such as happy, angry, sad map by themselves)",
    )


class VLMTrainConfig(Strict):
    steps: int | None = Field(None, ge=1, description="optimiser steps (give steps or epochs)")
    epochs: int | None = Field(None, ge=1, description="passes over the train split (give steps or epochs)")
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null = off")
    max_samples: int | dict[str, int] | None = Field(
        None,
        description="use at most this many samples of every split (or {split: n}), drawn with the seed: quick runs",
    )
    seed: int = 0
    log_every: int = Field(10, ge=1, description="write the mean loss to history.jsonl every this many steps")
    progress: bool = True
    device: DeviceSetting = "auto"
    threads: ThreadsSetting = Field(
        "auto", description="CPU intra-op threads (as a fusion run's train.threads); auto = from the free cores"
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> VLMTrainConfig:
        if self.steps is None and self.epochs is None:
            raise ValueError("give train.steps or train.epochs")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give train.steps or train.epochs, not both (set the other to null)")
        if isinstance(self.max_samples, dict) and any(v < 1 for v in self.max_samples.values()):
            raise ValueError("train.max_samples values must be >= 1")
        if isinstance(self.max_samples, int) and self.max_samples < 1:
            raise ValueError("train.max_samples must be >= 1")
        return self

    def cap(self, split: str) -> int | None:
        if isinstance(self.max_samples, dict):
            return self.max_samples.get(split)
        return self.max_samples


class GenerationConfig(Strict):
    max_new_tokens: int = Field(200, ge=1, description="P4: 200")
    do_sample: bool = Field(False, description="greedy (reproducible) unless true; P4 sampled")
    temperature: float = Field(0.7, gt=0, description="with do_sample (P4: 0.7)")
    top_p: float = Field(0.9, gt=0, le=1, description="with do_sample (P4: 0.9)")
    num_beams: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1, description="images per generate() call")


class VLMConfig(Strict):
    kind: Literal["vlm"] = "vlm"
    name: str
    description: str = ""
    data: VLMDataConfig
    model: VLMModelConfig = Field(default_factory=VLMModelConfig)
    prompt: str = Field(DEFAULT_PROMPT, min_length=1)
    image_size: int = Field(336, ge=16, description="side of the aligned face crop (P4: 336); the processor resizes")
    face: FaceConfig = Field(default_factory=FaceConfig)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    train: VLMTrainConfig = Field(default_factory=lambda: VLMTrainConfig(steps=100))
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_vlm(raw: dict[str, Any], source: str = "config", overrides: Iterable[str] = ()) -> VLMConfig:
    try:
        return VLMConfig.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, source, VLMConfig, overrides)) from None


def load_vlm_config(config: str | Path, overrides: dict[str, Any] | None = None) -> VLMConfig:
    """A shipped config name or YAML path, with dotted ``--set`` overrides applied."""
    path = resolve_config_path(config)
    raw = apply_overrides(read_config_file(path), overrides or {})
    if raw.get("kind", "vlm") != "vlm":
        raise AffectFusionError(f"config {path}: kind is {raw.get('kind')!r}, expected 'vlm'")
    return validate_vlm(raw, str(path), overrides or {})


def require_model_path(cfg: VLMConfig, source: str = "config") -> Path:
    """The BLIP-2 folder, or an error that says exactly what to set."""
    if not cfg.model.path:
        raise AffectFusionError(
            f"{source}: model.path is not set; point it at a local BLIP-2 folder (e.g. a download of "
            f"Salesforce/blip2-opt-2.7b) with --set model.path=DIR, or build a tiny random one for a smoke "
            f"test with `{TINY_MODEL_HINT}`"
        )
    return Path(cfg.model.path).expanduser()
