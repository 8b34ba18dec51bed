"""The ``kind: specialists`` config (P3) and the ordinary run configs it derives for each stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from affectfusion.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    Strict,
    TaskConfig,
    TrainConfig,
    apply_overrides,
    format_validation_error,
    read_config_file,
    resolve_config_path,
    validate,
)
from affectfusion.errors import AffectFusionError
from affectfusion.pipeline import config_modalities
from affectfusion.rundir import SpecialistsPaths

KIND = "specialists"


EXPORT_FORMAT = 1  # bump when the exported files change meaning; a new value forces a re-export


class SpecialistConfig(Strict):
    """One modality's model, trained alone (``model.modalities`` is set to that modality)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class FusionTrainConfig(TrainConfig):
    """Training of the fusion stage: as any run, but modality dropout defaults to P3's 0.3."""

    modality_dropout: float = Field(0.3, ge=0.0, lt=1.0)


class FusionStageConfig(Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: FusionTrainConfig = Field(default_factory=FusionTrainConfig)


class SpecialistsConfig(Strict):
    """A ``kind: specialists`` config: shared data and tasks, one specialist per modality, a fusion."""

    kind: Literal["specialists"]
    name: str
    description: str = ""
    data: DataConfig
    tasks: list[TaskConfig] = Field(min_length=1)
    specialists: dict[str, SpecialistConfig] = Field(min_length=1, description="modality -> its specialist")
    fusion: FusionStageConfig = Field(default_factory=FusionStageConfig)

    @model_validator(mode="after")
    def _check_modalities(self) -> SpecialistsConfig:
        for m, spec in self.specialists.items():
            if spec.model.modalities not in (None, [m]):
                raise ValueError(
                    f"specialists.{m}.model.modalities must be left out (it is [{m}]), got {spec.model.modalities}"
                )
        wanted = self.fusion.model.modalities
        if wanted is not None:
            unknown = [m for m in wanted if m not in self.specialists]
            if unknown or not wanted:
                raise ValueError(
                    f"fusion.model.modalities names {', '.join(unknown) or 'nothing'}; "
                    f"expected some of the specialists: {', '.join(self.specialists)}"
                )
        return self

    @property
    def modalities(self) -> list[str]:
        """The fused modalities, in the config's specialist order."""
        wanted = self.fusion.model.modalities
        return [m for m in self.specialists if wanted is None or m in wanted]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_specialists_config(config: str | Path, overrides: dict[str, Any] | None = None) -> SpecialistsConfig:
    """Read, override (dotted ``--set`` keys) and validate a specialists config, including the
    RunConfig of every stage, so a mistake surfaces before anything trains."""
    path = resolve_config_path(config)
    return validate_specialists(apply_overrides(read_config_file(path), overrides or {}), str(path), overrides)


def validate_specialists(raw: dict[str, Any], where: str, overrides: dict[str, Any] | None = None) -> SpecialistsConfig:
    """A specialists config from its mapping (``--set`` applied), every stage's RunConfig checked too."""
    try:
        cfg = SpecialistsConfig.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, where, SpecialistsConfig, overrides or {})) from None
    for m in cfg.specialists:
        specialist_run_config(cfg, m)
    fusion_run_config(cfg, SpecialistsPaths(Path()).embeddings)
    return cfg


def _stage_raw(cfg: SpecialistsConfig, name: str, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    return {
        "name": f"{cfg.name}/{name}",
        "description": cfg.description,
        "data": cfg.data.model_dump(mode="json"),
        "tasks": [t.model_dump(mode="json") for t in cfg.tasks],
        "model": model.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
    }


def specialist_run_config(cfg: SpecialistsConfig, modality: str) -> RunConfig:
    spec = cfg.specialists[modality]
    raw = _stage_raw(cfg, f"specialists/{modality}", spec.model, spec.train)
    raw["model"]["modalities"] = [modality]
    raw["data"]["require_modalities"] = [modality]  # a specialist neither trains nor is scored on others
    return validate(raw, f"specialists.{modality}")


def fusion_run_config(cfg: SpecialistsConfig, embeddings: Path) -> RunConfig:
    """The fusion stage reads the exported embeddings with the ``feature_folder`` adapter."""
    raw = _stage_raw(cfg, "fusion", cfg.fusion.model, cfg.fusion.train)
    raw["model"]["modalities"] = None
    raw["data"] = {
        "adapter": "feature_folder",
        "root": str(embeddings),
        "train_split": cfg.data.train_split,
        "val_split": cfg.data.val_split,
        "test_split": cfg.data.test_split,
        # The specialists' own stages checked the data; the embeddings keep its groups and inputs.
        "allow_leakage": True,
        "options": {
            "manifest": SpecialistsPaths(Path()).manifest.name,
            "features": {m: SpecialistsPaths(Path()).embedding_file(m, "{split}").name for m in cfg.modalities},
            "targets": {t.name: t.name for t in cfg.tasks},
            "source_column": "source",
        },
    }
    return validate(raw, "fusion")


def check_data_modalities(cfg: SpecialistsConfig) -> None:
    """Every specialist's modality must exist in the data (synthetic: declared; else the train split)."""
    base = validate(_stage_raw(cfg, "data", ModelConfig(), TrainConfig()), "data")
    found = config_modalities(base)
    for m in cfg.specialists:
        if m not in found:
            raise AffectFusionError(
                f"specialists.{m}: modality {m!r} is not in the data ({cfg.data.adapter} has: {', '.join(found)})"
            )
