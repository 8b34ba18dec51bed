"""The run directory: everything about one trained model, and the one way to load it back.

``train`` writes it; ``test``, ``compare`` (and later ``analyze``, ``predict``, ``serve``) need
nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from affectfusion.config import RunConfig, validate
from affectfusion.data.tasks import TargetScaler
from affectfusion.data.types import ModalitySpec
from affectfusion.errors import AffectFusionError


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def meta(self) -> Path:
        return self.root / "meta.json"

    @property
    def history(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def eval_dir(self, split: str) -> Path:
        return self.root / "eval" / split


@dataclass
class LoadedRun:
    paths: RunPaths
    config: RunConfig
    meta: dict
    modalities: dict[str, ModalitySpec]
    scalers: dict[str, TargetScaler]


def read_run(run_dir: str | Path) -> LoadedRun:
    """Config and metadata of a trained run (no weights; see ``training.trainer.load_model``)."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file() or not paths.meta.is_file():
        raise AffectFusionError(f"{run_dir} is not a run directory (expected config.yaml and meta.json in it)")
    cfg = validate(yaml.safe_load(paths.config.read_text()), str(paths.config))
    meta = json.loads(paths.meta.read_text())
    modalities = {m: ModalitySpec(**spec) for m, spec in meta["modalities"].items()}
    scalers = {t: TargetScaler(**s) for t, s in meta.get("scalers", {}).items()}
    return LoadedRun(paths, cfg, meta, modalities, scalers)
