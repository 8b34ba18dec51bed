"""Run kinds: the one registry that says what a run folder is and which code trains, loads and shows it.

A kind is a name, a ``detect(run_dir) -> bool`` test, and the callables that serve it:
``load_predictor(run_dir, which, device) -> RunPredictor`` (``affectfusion predict``, the REST API),
``dashboard_backend(run_dir) -> Backend`` (the dashboard), ``train(TrainRequest) -> run dir`` (the
recipe behind ``affectfusion train``) and ``example(folder) -> KindExample`` (a tiny run the contract
test trains). Each built-in kind lives in one package, ``affectfusion/recipes/<kind>/``, whose
``__init__`` defines ``KIND = RunKind(...)``; :data:`KIND_MODULES` names those packages. They are
imported the first time the registry is read, and a kind names its heavy callables as ``"module:attr"``
strings, resolved only when used, so importing this module is cheap and this lowest layer imports
nothing of the package but its errors and the config reader. A plugin registers its own kind with
:func:`register_run_kind`; kinds registered later are tried first, the plain ``fusion`` run last.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from affectfusion.config import apply_overrides, read_config_file, resolve_config_path
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    from rich.console import Console

Target = str | Callable[..., Any]  # "module:attr", or the callable itself

# The built-in kinds, one package each (its ``KIND``), in registration order: the first is tried last.
KIND_MODULES: tuple[str, ...] = (
    "affectfusion.recipes.fusion",
    "affectfusion.recipes.specialists",
    "affectfusion.recipes.vlm",
    "affectfusion.recipes.ensemble",
)
# ``affectfusion train`` options beyond config, --set, --out and --overwrite that only some kinds take.
TRAIN_OPTIONS = ("fusion", "seeds")


class TrainView(Protocol):
    """How a command shows what a recipe reports (the CLI's terminal tables)."""

    console: Console  # progress bars and one-line notes (stderr)

    def table(self, frame: Any, title: str) -> None:
        """A table of metrics (a pandas DataFrame, one row per run)."""

    def seed_summary(self, summary: Any, pairwise: Any) -> None:
        """The aggregate over seeds: mean ± std per group, then pairwise differences."""


@dataclass(frozen=True)
class TrainRequest:
    """One ``affectfusion train``: the config file, read once, and the command's options."""

    config: str  # the name or path as given (messages)
    path: Path  # the file it names
    raw: dict[str, Any]  # its mapping, data paths resolved against the file (``read_config_file``)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set
    out: Path | None = None
    overwrite: bool = False
    fusion: str | None = None  # train only this fusion strategy
    seeds: list[int] | None = None  # train once per seed
    leakage_allowed_by: str | None = None  # what allows leaking splits, as the run's report credits it
    view: TrainView | None = None  # None: no tables (a library caller)

    @classmethod
    def read(cls, config: str, **options: Any) -> TrainRequest:
        """Read ``config`` (a YAML path or a shipped config's name) once; ``options`` are the fields above."""
        path = resolve_config_path(config)
        return cls(config, path, read_config_file(path), **options)

    @property
    def kind(self) -> RunKind:
        """The registered kind the config names (``kind:``, default ``fusion``)."""
        return get_run_kind(kind_named(self.raw, self.config))

    @property
    def merged(self) -> dict[str, Any]:
        """The config's mapping with the ``--set`` overrides applied, for the kind's schema to validate."""
        return apply_overrides(self.raw, self.overrides)

    @property
    def where(self) -> str:
        """How validation errors name the config."""
        return str(self.path)


@dataclass(frozen=True)
class KindExample:
    """A tiny run of a kind, trained in seconds on CPU, and one input its predictor takes."""

    config: str  # a config file (or shipped config name)
    overrides: dict[str, Any]
    inputs: dict[str, Any]  # input kind or modality -> value, as ``RunPredictor.predict`` takes it


@dataclass(frozen=True)
class RunKind:
    """One kind of run folder and the code that trains, loads and shows it."""

    name: str
    detect: Target  # (run_dir: Path) -> bool; may raise AffectFusionError for a half-written run of this kind
    load_predictor: Target  # (run_dir, which="best", device="cpu") -> serve.base.RunPredictor
    dashboard_backend: Target  # (run_dir) -> serve.dashboard.backends.Backend
    train: Target | None = None  # (TrainRequest) -> run dir (None: nothing to report, a non-main DDP rank)
    example: Target | None = None  # (folder: Path) -> KindExample
    options: tuple[str, ...] = ()  # which of TRAIN_OPTIONS its recipe takes
    description: str = ""
    # (run_dir) -> str | None: why a folder is not this kind. When no kind matches, the reason of the
    # kind tried last (the plain fusion run) is the error, so "not a run" says what is missing.
    diagnose: Target | None = None

    def resolve(self, attr: str) -> Callable[..., Any]:
        """The callable behind ``attr`` (imported on first use for ``"module:attr"`` strings)."""
        target = getattr(self, attr)
        if target is None:
            raise AffectFusionError(f"run kind {self.name!r} has no {attr}")
        return _resolve(target) if isinstance(target, str) else target

    def matches(self, run_dir: Path) -> bool:
        return bool(self.resolve("detect")(run_dir))

    def train_run(self, request: TrainRequest) -> Path | None:
        """Run this kind's recipe; options it does not take are a one-line error before anything loads."""
        given = {"fusion": bool(request.fusion), "seeds": request.seeds is not None}
        refused = [f"--{o}" for o in TRAIN_OPTIONS if given[o] and o not in self.options]
        if refused:
            takers = [k.name for k in _kinds().values() if all(o[2:] in k.options for o in refused)]
            raise AffectFusionError(
                f"{' and '.join(refused)} appl{'y' if len(refused) > 1 else 'ies'} to "
                f"{' or '.join(takers) or 'other'} configs, not to a {self.name!r} config"
            )
        return self.resolve("train")(request)


_KINDS: dict[str, RunKind] = {}
_loaded = False


def _kinds() -> dict[str, RunKind]:
    """The registry, with the built-in kinds imported (and registered first) on first use."""
    global _loaded
    if not _loaded:
        _loaded = True
        plugins = dict(_KINDS)
        _KINDS.clear()
        for module in KIND_MODULES:
            register_run_kind(importlib.import_module(module).KIND)
        for kind in plugins.values():
            register_run_kind(kind, replace=True)
    return _KINDS


def register_run_kind(kind: RunKind, replace: bool = False) -> RunKind:
    """Add a kind; it is tried before every kind registered earlier (and before every built-in one)."""
    if kind.name in _KINDS and not replace:
        raise AffectFusionError(f"run kind {kind.name!r} is already registered")
    _KINDS.pop(kind.name, None)
    _KINDS[kind.name] = kind
    return kind


def unregister_run_kind(name: str) -> None:
    """Remove a kind (tests and plugins that registered one for a while)."""
    _kinds().pop(name, None)


def list_run_kinds() -> list[str]:
    return list(_kinds())


def get_run_kind(name: str) -> RunKind:
    kinds = _kinds()
    if name not in kinds:
        raise AffectFusionError(f"unknown run kind {name!r}; registered: {', '.join(kinds)}")
    return kinds[name]


def kind_named(raw: dict[str, Any], config: str) -> str:
    """The kind a config's mapping names: ``fusion`` (a RunConfig) unless ``kind:`` names another one."""
    kind = raw.get("kind", "fusion")
    if kind not in _kinds():
        raise AffectFusionError(
            f"config {config}: unknown kind {kind!r} (expected one of {', '.join(list_run_kinds())})"
        )
    return str(kind)


def run_kind_of(run_dir: str | Path) -> RunKind:
    """The kind of a run folder (newest registration first); a one-line error for anything else.

    The plain ``fusion`` kind is tried last; its ``diagnose`` says why a folder is no run at all.
    """
    run_dir = Path(run_dir)
    kinds = _kinds()
    for kind in reversed(kinds.values()):
        try:
            if kind.matches(run_dir):
                return kind
        except OSError:
            continue  # a plugin's test reading a file this folder lacks: not that kind
    last = next(iter(kinds.values()), None)
    reason = last.resolve("diagnose")(run_dir) if last is not None and last.diagnose is not None else None
    raise AffectFusionError(reason or f"{run_dir} is not a run of any registered kind ({', '.join(kinds)})")


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):  # "module:Class.method"
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError) as e:
        raise AffectFusionError(f"cannot load {target} ({e})") from None
