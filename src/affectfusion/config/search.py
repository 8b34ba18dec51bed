"""The ``search:`` section: dotted config keys mapped to the distributions ``affectfusion tune`` samples.

A space is checked when the config is read, not when the first trial runs: every distribution is
one of the four below with sensible bounds, and every key is set to its bounds (and to each choice)
in a copy of the config that must validate, so a misspelt key or an out-of-range bound is a
one-line error naming the key before any training.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")


class Distribution(BaseModel):
    """Exactly one of ``{log_uniform: [lo, hi]}``, ``{uniform: [lo, hi]}``, ``{int: [lo, hi]}``
    (inclusive) or ``{choice: [a, b, ...]}``."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    values: list[Any]

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"expected one of {', '.join(DISTRIBUTIONS)} as a one-key mapping, got {data!r}")
        ((kind, values),) = data.items()
        if kind not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {kind!r} (choose {', '.join(DISTRIBUTIONS)})")
        if not isinstance(values, list):
            raise ValueError(f"{kind} takes a list, got {values!r}")
        return {"kind": kind, "values": values}

    @model_validator(mode="after")
    def _bounds(self) -> Distribution:
        if self.kind == "choice":
            if len(self.values) < 2:
                raise ValueError("choice needs two or more values")
            return self
        if len(self.values) != 2:
            raise ValueError(f"{self.kind} takes [low, high], got {self.values!r}")
        low, high = self.values
        numeric = (int,) if self.kind == "int" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, numeric) for v in (low, high)):
            raise ValueError(f"{self.kind} bounds must be {'integers' if self.kind == 'int' else 'numbers'}")
        if not low < high:
            raise ValueError(f"{self.kind}: low ({low}) must be below high ({high})")
        if self.kind == "log_uniform" and low <= 0:
            raise ValueError(f"log_uniform: low must be positive, got {low}")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, list[Any]]:
        """Saved as the user wrote it: ``{log_uniform: [lo, hi]}``."""
        return {self.kind: list(self.values)}

    def corners(self) -> list[Any]:
        """The values that bound what a trial can draw: both bounds, or every choice."""
        return list(self.values)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"search key {dotted!r}: {part!r} is not a section")
        node = child
    node[last] = value
    return out


def check_space(space: dict[str, Distribution], config: dict[str, Any], validate_raw: Any) -> None:
    """Every key, at each of its corner values (the other keys at their first), gives a valid config.

    ``validate_raw`` validates a raw config dict and raises ``ValueError`` naming what is wrong.
    """
    base = {k: v for k, v in config.items() if k != "search"}
    for key in space:
        if key == "search" or key.startswith(("search.", "variants", "name")):
            raise ValueError(f"search key {key!r}: only training settings can be searched")
    first = dict.fromkeys(space)
    for key, dist in space.items():
        first[key] = dist.corners()[0]
    for key, dist in space.items():
        for value in dist.corners():
            raw = base
            for k, v in {**first, key: value}.items():
                raw = _set(raw, k, v)
            try:
                validate_raw(raw)
            except ValueError as e:
                raise ValueError(f"search key {key!r} = {value!r} does not give a valid config: {e}") from None
