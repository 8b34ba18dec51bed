"""Typed run configuration: YAML in, validated pydantic models out, resolved copy saved with each run.

Component-specific options (an adapter's, an encoder's, a fusion's) stay plain dicts here and are
validated by that component's own ``Options`` model when it is built, so a new component never
has to touch this file.
"""

from affectfusion.config.files import (
    PACKAGED_CONFIGS,
    apply_overrides,
    expand_variants,
    list_packaged_configs,
    load_config,
    load_raw,
    parse_set_options,
    read_config_file,
    resolve_config_path,
    resolve_paths_against,
)
from affectfusion.config.schema import (
    DEFAULT_FUSION,
    ComponentConfig,
    ContextConfig,
    DataConfig,
    EarlyStopping,
    FusionConfig,
    ModelConfig,
    RunConfig,
    SplitNames,
    Strict,
    TaskConfig,
    TrainConfig,
    format_validation_error,
    fusion_overrides,
    validate,
)
from affectfusion.config.settings import DEVICE_PATTERN, DeviceSetting, ThreadsSetting, no_face_alias

__all__ = [
    "DEFAULT_FUSION",
    "DEVICE_PATTERN",
    "PACKAGED_CONFIGS",
    "ComponentConfig",
    "ContextConfig",
    "DataConfig",
    "DeviceSetting",
    "EarlyStopping",
    "FusionConfig",
    "ModelConfig",
    "RunConfig",
    "SplitNames",
    "Strict",
    "TaskConfig",
    "ThreadsSetting",
    "TrainConfig",
    "apply_overrides",
    "expand_variants",
    "format_validation_error",
    "fusion_overrides",
    "list_packaged_configs",
    "load_config",
    "load_raw",
    "no_face_alias",
    "parse_set_options",
    "read_config_file",
    "resolve_config_path",
    "resolve_paths_against",
    "validate",
]
