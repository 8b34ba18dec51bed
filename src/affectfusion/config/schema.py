"""The config schema: pydantic models of every section; unknown keys are errors, not silently ignored."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from affectfusion.config.search import Distribution, check_space
from affectfusion.config.settings import DeviceSetting, ThreadsSetting
from affectfusion.errors import AffectFusionError

DEFAULT_FUSION = "concat"  # the fusion strategy of a config that names none


def fusion_overrides(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """Dotted overrides that switch a raw config to fusion ``name``. Fusion options belong to a strategy,
    so the config's own options are kept only for the strategy they were written for."""
    model = raw.get("model")
    fusion = (model.get("fusion") or {}) if isinstance(model, dict) else {}
    same = fusion.get("name", DEFAULT_FUSION) == name
    return {"model.fusion.name": name, "model.fusion.options": fusion.get("options", {}) if same else {}}


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TaskConfig(Strict):
    """One prediction target. Several tasks make a multi-task model (P1 v2).

    ``multilabel`` (GoEmotions): any subset of ``classes`` per sample, one sigmoid output per class
    and BCE. A class is predicted when its probability reaches the decision threshold: ``threshold``
    until training ends, then the one tuned on the validation split (``threshold_tuning``).
    """

    name: str
    type: Literal["classification", "regression", "multilabel"]
    classes: list[str] | None = None
    # Regression: a name in training.losses.REGRESSION_LOSSES (ccc = 1 - concordance correlation per batch).
    loss: Literal["ce", "mse", "rmse", "ccc", "bce"] | None = None
    weight: float = 1.0
    class_weights: Literal["none", "balanced"] | list[float] = "none"
    # Classification: share of each target's probability spread evenly over the classes (cross-entropy's
    # label_smoothing), so the head is not pushed to certainty on a few hundred training clips.
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    # Multilabel: weight of each class's positive BCE term; balanced = negatives / positives on train.
    pos_weight: Literal["none", "balanced"] | list[float] = "none"
    # Multilabel: after training, pick the threshold maximising validation macro F1 (default global).
    threshold_tuning: Literal["none", "global", "per_class"] | None = None
    # A regression target whose sign is a polarity (sentiment in [-3, 3]) also gets binary acc/F1.
    signed: bool = False
    # Derive a classification target by thresholding another (regression) target, e.g. PHQ-8 >= 10.
    threshold_of: str | None = None
    # With threshold_of: the cut on that target. Multilabel: the decision threshold (default 0.5).
    threshold: float | None = None

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.type == "multilabel":
            return self._check_multilabel()
        if self.pos_weight != "none" or self.threshold_tuning is not None:
            raise ValueError(f"task {self.name!r}: pos_weight and threshold_tuning are for multilabel tasks")
        if self.label_smoothing and self.type != "classification":
            raise ValueError(f"task {self.name!r}: label_smoothing is for classification tasks")
        if self.type == "classification":
            if not self.classes or len(self.classes) < 2:
                raise ValueError(f"task {self.name!r}: a classification task needs 'classes' (2 or more)")
            if self.loss not in (None, "ce"):
                raise ValueError(f"task {self.name!r}: classification uses loss 'ce', not {self.loss!r}")
            if isinstance(self.class_weights, list) and len(self.class_weights) != len(self.classes):
                raise ValueError(
                    f"task {self.name!r}: class_weights has {len(self.class_weights)} values "
                    f"for {len(self.classes)} classes"
                )
        else:
            if self.loss in ("ce", "bce"):
                raise ValueError(f"task {self.name!r}: regression uses loss 'mse', 'rmse' or 'ccc'")
            if self.classes:
                raise ValueError(f"task {self.name!r}: a regression task has no 'classes'")
        if (self.threshold_of is None) != (self.threshold is None):
            raise ValueError(f"task {self.name!r}: give both threshold_of and threshold, or neither")
        if self.threshold_of is not None and (self.type != "classification" or len(self.classes or []) != 2):
            raise ValueError(f"task {self.name!r}: threshold_of needs a 2-class classification task")
        return self

    def _check_multilabel(self) -> TaskConfig:
        """Validate, then fill in the effective defaults so the saved config shows them."""
        if not self.classes or len(self.classes) < 2:
            raise ValueError(f"task {self.name!r}: a multilabel task needs 'classes' (2 or more)")
        if self.loss not in (None, "bce"):
            raise ValueError(f"task {self.name!r}: multilabel uses loss 'bce', not {self.loss!r}")
        if self.class_weights != "none":
            raise ValueError(
                f"task {self.name!r}: a multilabel task weights classes with pos_weight, not class_weights"
            )
        if isinstance(self.pos_weight, list) and len(self.pos_weight) != len(self.classes):
            raise ValueError(
                f"task {self.name!r}: pos_weight has {len(self.pos_weight)} values for {len(self.classes)} classes"
            )
        if self.threshold_of is not None:
            raise ValueError(f"task {self.name!r}: threshold_of needs a 2-class classification task")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"task {self.name!r}: a multilabel threshold is a probability in (0, 1)")
        self.threshold = 0.5 if self.threshold is None else self.threshold
        self.threshold_tuning = self.threshold_tuning or "global"
        return self

    @property
    def loss_name(self) -> str:
        return self.loss or {"classification": "ce", "multilabel": "bce"}.get(self.type, "mse")


class ComponentConfig(Strict):
    """A registered component chosen by name, with its own options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class SplitNames(Strict):
    """Which of a dataset's splits train, select and test: the fusion and the VLM configs share them."""

    train_split: str = "train"
    val_split: str = "dev"
    test_split: str | None = Field(None, description="also scored after training, if set")


class DataConfig(SplitNames):
    adapter: str
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # Raw media -> features: modality -> extractor (see `affectfusion list extractors`).
    extract: dict[str, ComponentConfig] = Field(default_factory=dict)
    cache_dir: str = Field("~/.cache/affectfusion/features", description="feature store for extracted features")
    workers: int = Field(1, ge=1, description="parallel extraction processes")
    bad_media: Literal["error", "drop_modality"] = Field(
        "error",
        description="a media file that is missing, empty or cannot be decoded: error (name every bad row) "
        "or drop_modality (that row keeps its other modalities)",
    )
    require_modalities: list[str] = Field(
        default_factory=list, description="keep only samples that have all of these modalities (P3 specialists)"
    )
    allow_leakage: bool = Field(
        False, description="train even if the data check finds leaking splits (train --allow-leakage; recorded)"
    )
    calibration_split: str | None = Field(
        None,
        description="held-out split that temperature scaling (calibrate) and conformal sets (test --conformal) "
        "are fitted on, instead of val_split; neither the train nor the test split",
    )

    @model_validator(mode="after")
    def _calibration_split_held_out(self) -> DataConfig:
        if self.calibration_split is not None and self.calibration_split in (self.train_split, self.test_split):
            raise ValueError(
                f"calibration_split {self.calibration_split!r} must be a held-out split, not the train or test split"
            )
        return self

    @property
    def fit_split(self) -> str:
        """The split calibration and conformal prediction are fitted on."""
        return self.calibration_split or self.val_split


class FusionConfig(ComponentConfig):
    name: str = DEFAULT_FUSION
    # P5: a learnable scale per channel of each modality embedding, before any strategy.
    channel_scaling: bool = False


class ContextConfig(ComponentConfig):
    """The conversation context stage between fusion and heads (``none``: each utterance alone)."""

    name: str = "none"
    window: int = Field(0, ge=0, description="utterances per training window; 0 = whole conversations")
    overlap: int = Field(0, ge=0, description="utterances a window repeats from the previous one, as context only")
    speakers: int = Field(0, ge=0, description="speaker embeddings for up to this many speakers per window (0 = none)")

    @model_validator(mode="after")
    def _overlap_below_window(self) -> ContextConfig:
        if self.window and self.overlap >= self.window:
            raise ValueError(f"context overlap ({self.overlap}) must be smaller than window ({self.window})")
        return self


# Widths far beyond any useful model (16x the widest shipped config): a typo such as 1e7 is refused here,
# not met as a 5 GB allocation.
MAX_WIDTH = 8192


class ModelConfig(Strict):
    hidden_dim: int = Field(128, ge=1, le=MAX_WIDTH, description="size of every modality embedding fed to fusion")
    encoder: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="mean"))
    encoders: dict[str, ComponentConfig] = Field(
        default_factory=dict, description="per-modality encoder, overriding `encoder`"
    )
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    context: ContextConfig = Field(default_factory=ContextConfig)
    head_hidden: int = Field(128, ge=0, le=MAX_WIDTH, description="hidden width of each task head; 0 = linear head")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    modalities: list[str] | None = Field(None, description="use only these modalities (default: all)")
    normalize_inputs: bool = Field(True, description="z-score each feature with train-split statistics")

    def encoder_for(self, modality: str) -> ComponentConfig:
        return self.encoders.get(modality, self.encoder)


class EarlyStopping(Strict):
    monitor: str = Field("auto", description="validation metric, e.g. macro_f1 or rmse; auto = per task type")
    mode: Literal["auto", "max", "min"] = "auto"
    patience: int = Field(10, ge=1)


class TrainConfig(Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    scheduler: Literal["none", "plateau", "cosine"] = "plateau"
    warmup_epochs: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, description="max gradient norm; null = off")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the weights (e.g. 0.99 per step) and validate, "
        "checkpoint and evaluate it instead of the raw weights: on a small validation split the best epoch is "
        "then chosen from smoothed weights, not from one epoch's noise; null = off",
    )
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    contrastive_weight: float = Field(0.0, ge=0.0, description="weight of InfoNCE between modality pairs")
    contrastive_temperature: float = Field(0.1, gt=0)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    bucket_by_length: bool = Field(
        False,
        description="batches of samples of similar length (less padding, faster epochs on varying sequence "
        "lengths); other batches than false, so other numbers; single-process training only",
    )
    progress: bool = True
    # Where and how the math runs; none of these changes what is learned beyond floating-point noise,
    # so a run may be resumed or evaluated with other values (see docs/backbones.md).
    device: DeviceSetting = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16/fp16 = autocast mixed precision (fp16 with a gradient scaler); weights stay fp32"
    )
    validate_precision: Literal["fp32", "train"] = Field(
        "fp32",
        description="per-epoch validation in fp32 (the reference) or in the training precision's autocast (train: "
        "faster on CPU under bf16, e.g. a CNN's epochs); the best checkpoint's final evaluation is fp32 either way",
    )
    threads: ThreadsSetting = Field(
        "auto",
        description="CPU intra-op threads; auto = from the free cores (affinity, cgroup quota, load) "
        "and the model's size; OMP_NUM_THREADS, when set, is used as given",
    )

    track: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="log metrics, config and report: TensorBoard (<run>/tb/) and/or MLflow"
    )
    tracking_uri: str | None = Field(None, description="MLflow store (default: SQLite under runs/mlruns)")


class RunConfig(Strict):
    name: str
    description: str = ""
    data: DataConfig
    tasks: list[TaskConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    # Several variants of one config (P2 trains four fusions): variant name -> dotted overrides.
    # A plain list of fusion names is shorthand for {name: {model.fusion.name: name, ...}}.
    variants: dict[str, dict[str, Any]] | None = None
    # `affectfusion tune`: dotted config key -> distribution, e.g. train.lr: {log_uniform: [1e-4, 1e-2]}.
    search: dict[str, Distribution] | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_variant_list(cls, data: Any) -> Any:
        """``variants: [a, b]`` -> one variant per fusion strategy. Fusion options belong to a
        strategy, so a variant keeps the config's options only for the strategy they were written for."""
        if isinstance(data, dict) and isinstance(data.get("variants"), list):
            data = dict(data)
            data["variants"] = {str(n): fusion_overrides(data, n) for n in data["variants"]}
        return data

    @model_validator(mode="after")
    def _check_tasks(self) -> RunConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for t in self.tasks:
            if t.threshold_of and t.threshold_of not in names:
                raise ValueError(f"task {t.name!r}: threshold_of names unknown task {t.threshold_of!r}")
        return self

    @model_validator(mode="after")
    def _check_token_encoders(self) -> RunConfig:
        """A fine-tuned text encoder (hf_lora) reads the token ids of the same model's tokenizer (hf_tokens)."""
        for m, component in self.data.extract.items():
            encoder = self.model.encoder_for(m)
            if (encoder.name == "hf_lora") != (component.name == "hf_tokens"):
                raise ValueError(
                    f"modality {m!r}: the hf_lora encoder and the hf_tokens extractor go together "
                    f"(got encoder {encoder.name!r} with extractor {component.name!r})"
                )
            if encoder.name == "hf_lora" and encoder.options.get("model_path") != component.options.get("model_path"):
                raise ValueError(
                    f"modality {m!r}: hf_lora model_path {encoder.options.get('model_path')!r} differs from the "
                    f"hf_tokens extractor's {component.options.get('model_path')!r}"
                )
        return self

    @model_validator(mode="after")
    def _check_search(self) -> RunConfig:
        if self.search:
            check_space(self.search, self.to_dict(), _validate_searched)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _validate_searched(raw: dict[str, Any]) -> None:
    """A config with searched values set, checked with the same rules (as one line)."""
    try:
        RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ValueError(format_validation_error(e, "the config")) from None


def validate(raw: dict[str, Any], source: str = "config", overrides: Iterable[str] = ()) -> RunConfig:
    """``overrides``: the dotted keys ``--set`` gave, so that an error in one names the option, not ``source``."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, source, RunConfig, overrides)) from None


def format_validation_error(
    e: ValidationError, source: str, model: type[BaseModel] | None = None, overrides: Iterable[str] = ()
) -> str:
    """One line: each problem under where it came from (``source``, or the ``--set`` override that gave the
    key); an unknown key of ``model`` with the known keys closest to it."""
    by_source: dict[str, list[str]] = {}
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = next((f"--set {k}" for k in overrides if loc == k or loc.startswith(f"{k}.")), source)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), _known_keys(model, err["loc"][:-1]), n=3)
            prefix = loc.rpartition(".")[0] + "." if "." in loc else ""
            hint = f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)" if close else ""
            by_source.setdefault(where, []).append(f"unknown config key {loc!r}{hint}")
        else:
            named = "" if where == f"--set {loc}" else f"{loc or 'value'}: "
            msg = err["msg"].removeprefix("Value error, ")  # a validator's own message reads as written
            by_source.setdefault(where, []).append(f"{named}{msg}")
    return "; ".join(f"{where}: " + "; ".join(parts) for where, parts in by_source.items())


def _known_keys(model: Any, path: tuple[Any, ...]) -> list[str]:
    """The field names of the config section at ``path`` under ``model`` (through lists, dicts, optionals)."""
    steps = list(path)
    while steps:
        field = model.model_fields.get(str(steps.pop(0))) if _is_section(model) else None
        if field is None:
            return []
        if _container(field.annotation) and steps:
            steps.pop(0)  # the list index or dict key
        model = _section(field.annotation)
    return list(model.model_fields) if _is_section(model) else []


def _is_section(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, BaseModel)


def _container(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return origin in (list, dict) or (origin in (Union, UnionType) and any(map(_container, get_args(annotation))))


def _section(annotation: Any) -> Any:
    """The model class inside an annotation: itself, or the first model among its arguments."""
    if _is_section(annotation):
        return annotation
    return next((a for a in map(_section, get_args(annotation)) if a is not None), None)
