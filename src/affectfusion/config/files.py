"""Config files: shipped configs by name, YAML, ``--set`` overrides, paths relative to the file, variants."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from affectfusion.config.schema import RunConfig, validate
from affectfusion.errors import AffectFusionError

# The shipped configs: `configs/` at the repository root, linked into the package as package data.
PACKAGED_CONFIGS = Path(__file__).parents[1] / "configs"
MAX_YAML_DEPTH = 32  # the deepest shipped config nests 5 levels


def _parse_value(text: str) -> Any:
    """`--set` values are YAML scalars/lists: 5, 0.1, true, null, [a, b], text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``train.lr``) in a nested dict; intermediate dicts are created as needed."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                if part in node and node[part] is not None:
                    raise AffectFusionError(f"config key {dotted!r}: {part!r} is not a section")
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise AffectFusionError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a shipped config (``p2_speech_text``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{path.stem}.yaml"
    if packaged.is_file() and path.suffix in ("", ".yaml", ".yml") and len(path.parts) == 1:
        return packaged
    shipped = list_packaged_configs()
    close = difflib.get_close_matches(path.stem, shipped, n=3) if len(path.parts) == 1 else []
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise AffectFusionError(f"config file not found: {name_or_path} ({hint}shipped configs: {', '.join(shipped)})")


def list_packaged_configs() -> list[str]:
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def check_yaml_depth(text: str, where: str, limit: int = MAX_YAML_DEPTH) -> None:
    """Refuse YAML nested deeper than ``limit`` before it is built: the loader recurses once per level and
    a file of ``[[[[...`` would end in a RecursionError. The event stream is read without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > limit:
                mark = event.start_mark
                at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
                raise AffectFusionError(
                    f"config {where} is nested more than {limit} levels deep{at}; a config needs only a few"
                )
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def load_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        check_yaml_depth(text, str(path))
        raw = yaml.safe_load(text)
    except OSError as e:
        raise AffectFusionError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise AffectFusionError(
            f"config {path} is not UTF-8 text (byte {e.object[e.start]:#x} at offset {e.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        raise AffectFusionError(f"config {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise AffectFusionError(f"config {path}: expected a mapping at top level")
    return raw


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """A validated config. In your own config files, relative ``data.root`` and ``data.cache_dir`` are
    relative to the file (shipped configs keep them relative to the working directory, the
    repository root); ``--set`` values are relative to the working directory."""
    path = resolve_config_path(path)
    overrides = overrides or {}
    return validate(apply_overrides(read_config_file(path), overrides), str(path), overrides)


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's mapping, with its data paths resolved against the file unless it is a shipped config."""
    raw = load_raw(path)
    if path.resolve().is_relative_to(PACKAGED_CONFIGS.resolve()):
        return raw
    return resolve_paths_against(raw, path.parent)


def resolve_paths_against(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data.root`` and ``data.cache_dir`` made absolute against ``folder`` when they are relative."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in ("root", "cache_dir"):
        value = data.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = str((folder / value).resolve())
    return {**raw, "data": data}


def expand_variants(cfg: RunConfig) -> dict[str, RunConfig]:
    """One config per variant (or the config itself, named after itself, if it has none)."""
    if not cfg.variants:
        return {cfg.name: cfg}
    base = cfg.to_dict()
    base["variants"] = None
    out = {}
    for vname, overrides in cfg.variants.items():
        raw = apply_overrides(base, overrides)
        raw["name"] = f"{cfg.name}/{vname}"
        out[vname] = validate(raw, f"variant {vname!r}")
    return out
