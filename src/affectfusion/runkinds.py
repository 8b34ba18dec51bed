"""Run kinds: the one registry that says what a run folder is and which code trains, loads and shows it.

A kind is a name, a ``detect(run_dir) -> bool`` test, and the callables that serve it:
``load_predictor(run_dir, which, device) -> RunPredictor`` (``affectfusion predict``, the REST API),
``dashboard_backend(run_dir) -> Backend`` (the dashboard) and ``train`` (the recipe that writes it).
The built-in kinds name their callables as ``"module:attr"`` strings, resolved with importlib only
when used, so importing this module is cheap and
this lowest layer imports nothing of the package but its errors. A plugin registers its own kind with
:func:`register_run_kind`; kinds registered later are tried first, the plain ``fusion`` run last.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError

Target = str | Callable[..., Any]  # "module:attr", or the callable itself


@dataclass(frozen=True)
class RunKind:
    """One kind of run folder and the code that trains, loads and shows it."""

    name: str
    detect: Target  # (run_dir: Path) -> bool; may raise AffectFusionError for a half-written run
    load_predictor: Target  # (run_dir, which="best", device="cpu") -> serve.base.RunPredictor
    dashboard_backend: Target  # (run_dir) -> serve.dashboard.backends.Backend
    train: Target | None = None  # (config, overrides, out, overwrite) -> run dir: the recipe that writes it
    description: str = ""

    def resolve(self, attr: str) -> Callable[..., Any]:
        """The callable behind ``attr`` (imported on first use for ``"module:attr"`` strings)."""
        target = getattr(self, attr)
        if target is None:
            raise AffectFusionError(f"run kind {self.name!r} has no {attr}")
        return _resolve(target) if isinstance(target, str) else target

    def matches(self, run_dir: Path) -> bool:
        return bool(self.resolve("detect")(run_dir))


_KINDS: dict[str, RunKind] = {}


def register_run_kind(kind: RunKind, replace: bool = False) -> RunKind:
    """Add a kind; it is tried before every kind registered earlier."""
    if kind.name in _KINDS and not replace:
        raise AffectFusionError(f"run kind {kind.name!r} is already registered")
    _KINDS.pop(kind.name, None)
    _KINDS[kind.name] = kind
    return kind


def unregister_run_kind(name: str) -> None:
    """Remove a kind (tests and plugins that registered one for a while)."""
    _KINDS.pop(name, None)


def list_run_kinds() -> list[str]:
    return list(_KINDS)


def get_run_kind(name: str) -> RunKind:
    if name not in _KINDS:
        raise AffectFusionError(f"unknown run kind {name!r}; registered: {', '.join(_KINDS)}")
    return _KINDS[name]


def run_kind_of(run_dir: str | Path) -> RunKind:
    """The kind of a run folder (newest registration first); a one-line error for anything else.

    The plain ``fusion`` kind is tried last and says why a folder is no run at all.
    """
    run_dir = Path(run_dir)
    for kind in reversed(_KINDS.values()):
        try:
            if kind.matches(run_dir):
                return kind
        except OSError:
            continue  # a plugin's test reading a file this folder lacks: not that kind
    raise AffectFusionError(f"{run_dir} is not a run of any registered kind ({', '.join(_KINDS)})")


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):  # "module:Class.method"
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError) as e:
        raise AffectFusionError(f"cannot load {target} ({e})") from None


# -- the built-in kinds -----------------------------------------------------------------------------
# Registered as strings: nothing is imported until a folder is asked about or a run is loaded.

register_run_kind(
    RunKind(
        "fusion",
        "affectfusion.serve.kinds:is_fusion_run",
        "affectfusion.serve.predictor:Predictor.load",
        "affectfusion.serve.dashboard.backends:PredictorBackend",
        train="affectfusion.recipes.fusion:train_recipe",
        description="a multimodal fusion run (config.yaml + meta.json + checkpoints)",
    )
)
register_run_kind(
    RunKind(
        "specialists",
        "affectfusion.serve.kinds:is_specialists_run",
        "affectfusion.serve.specialists:SpecialistsPredictor.load",
        "affectfusion.serve.dashboard.backends:PredictorBackend",
        train="affectfusion.recipes.specialists:train_specialists",
        description="P3: one specialist per modality, then a fusion of their frozen embeddings",
    )
)
register_run_kind(
    RunKind(
        "vlm",
        "affectfusion.serve.kinds:is_vlm_run",
        "affectfusion.serve.vlm:VLMRunPredictor.load",
        "affectfusion.serve.dashboard.vlm:VLMBackend",
        train="affectfusion.vlm.train:train_vlm",
        description="P4: a vision-language model (BLIP-2 + LoRA) that writes its answer",
    )
)
