"""From a config's ``search:`` space to Optuna suggestions, and from a trial's values to configs.

A trial's run scores only the validation split (its test split is removed), so nothing about the
test split can leak into the choice; ``best.yaml`` is the config with the best trial's values and
its own test split back, which ``affectfusion train best.yaml`` trains exactly as the trial did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml

from affectfusion.config import RunConfig, apply_overrides, resolve_paths_against, validate
from affectfusion.config.search import Distribution
from affectfusion.rundir import TunePaths

_SCALARS = (str, int, float, bool, type(None))


def _encoded(value: Any) -> Any:
    """Optuna's categorical values are scalars: a list or mapping choice goes as its YAML text."""
    return value if isinstance(value, _SCALARS) else yaml.safe_dump(value, default_flow_style=True).strip()


def suggest(trial: optuna.Trial, space: dict[str, Distribution]) -> dict[str, Any]:
    """The trial's value of every searched key (Optuna records them as the trial's params)."""
    values: dict[str, Any] = {}
    for key, dist in space.items():
        if dist.kind == "choice":
            encoded = [_encoded(v) for v in dist.values]
            picked = trial.suggest_categorical(key, encoded)
            values[key] = dist.values[encoded.index(picked)]
        elif dist.kind == "int":
            values[key] = trial.suggest_int(key, *dist.values)
        else:
            low, high = (float(v) for v in dist.values)
            values[key] = trial.suggest_float(key, low, high, log=dist.kind == "log_uniform")
    return values


def decoded(params: dict[str, Any], space: dict[str, Distribution]) -> dict[str, Any]:
    """A finished trial's params as config values (choices that were encoded as YAML text decoded)."""
    out = dict(params)
    for key, dist in space.items():
        if dist.kind == "choice" and key in out:
            encoded = [_encoded(v) for v in dist.values]
            out[key] = dist.values[encoded.index(out[key])]
    return out


def _with(cfg: RunConfig, values: dict[str, Any], name: str, keep_test: bool) -> RunConfig:
    raw = cfg.to_dict()
    raw["search"] = None
    raw["name"] = name
    if not keep_test:
        raw["data"]["test_split"] = None
    return validate(apply_overrides(raw, values), f"{cfg.name} with {values}")


def trial_config(cfg: RunConfig, values: dict[str, Any], number: int) -> RunConfig:
    """The config a trial trains: its values set, no search space, validation split only."""
    return _with(cfg, values, f"{cfg.name}_trial{number}", keep_test=False)


def best_config(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """The tuned config: the best trial's values, the original test split, no search space, and data
    paths made absolute (a config file's relative paths are read against its own folder, so the
    working-directory paths of a shipped config would point elsewhere from ``best.yaml``)."""
    tuned = _with(cfg, values, f"{cfg.name}_tuned", keep_test=True)
    return validate(resolve_paths_against(tuned.to_dict(), Path.cwd()), TunePaths.BEST_CONFIG)
