"""Name -> class registries, so that every component is a config switch (as timm does for models)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from affectfusion.config import format_validation_error
from affectfusion.errors import AffectFusionError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components; unknown names raise an error listing the valid ones.

    ``modules`` are imported (and so register their components) the first time the registry is read,
    not when it is created: code that only needs a data type does not pay for every adapter's imports.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}
        self._modules = modules
        self._loaded = not modules

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules that register this registry's components (imported on its first lookup)."""
        return self._modules

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            doc = help or (getattr(item, "__doc__", None) or "").strip().splitlines()[0:1]
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return item

        return decorator

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise AffectFusionError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def describe(self, name: str) -> str:
        self._load()
        return self._help.get(name, "")

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def validate_options(component: type[Any], options: dict, where: str) -> BaseModel:
    """Validate ``options`` against the component's nested pydantic ``Options`` model.

    Errors name the config path (``model.fusion.options.heads``) so a user knows what to fix.
    """

    model = component.Options
    try:
        return model.model_validate(options or {})
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, where, model)) from None
