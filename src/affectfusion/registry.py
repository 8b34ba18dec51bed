"""Name -> class registries, so that every component is a config switch (as timm does for models)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pydantic import ValidationError

from affectfusion.config import format_validation_error
from affectfusion.errors import AffectFusionError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components; unknown names raise an error listing the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

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
        if name not in self._items:
            raise AffectFusionError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def validate_options(component: type, options: dict, where: str):
    """Validate ``options`` against the component's nested pydantic ``Options`` model.

    Errors name the config path (``model.fusion.options.heads``) so a user knows what to fix.
    """

    model = component.Options
    try:
        return model.model_validate(options or {})
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, where)) from None
