"""The adapter interface: a root folder and a split name in, samples out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from affectfusion.data.types import Sample
from affectfusion.registry import Registry

if TYPE_CHECKING:
    from affectfusion.data.examples import ExampleSpec


class DatasetAdapter(ABC):
    """Reads one split of one dataset format.

    Adapters take the split *name*, so any folder in the same layout with another split
    (a held-out ``test``) works unchanged.
    """

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    # Plain attributes, not ClassVars: a wrapping adapter (folds) takes them from the adapter it wraps.
    needs_root: bool = True
    # Writes a tiny dataset in this format and says how to load it; every registered adapter sets its own
    # (one line, see affectfusion.data.examples) and the registry-wide contract test loads it.
    write_example: ClassVar[staticmethod[[Path], ExampleSpec]]
    # False where Sample.group is not a speaker / source id (synthetic data draws it at random), so a
    # group shared between splits is not leakage (data.checks).
    groups_identify_sources: bool = True

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @abstractmethod
    def load(self, root: Path | None, split: str) -> list[Sample]: ...


DATASETS: Registry[type[DatasetAdapter]] = Registry(
    "dataset adapter",
    modules=(  # each registers its adapters when the registry is first read
        "affectfusion.data.daic_woz",
        "affectfusion.data.eav",
        "affectfusion.data.feature_folder",
        "affectfusion.data.folds",
        "affectfusion.data.iemocap",
        "affectfusion.data.images",
        "affectfusion.data.media_table",
        "affectfusion.data.mmsa",
        "affectfusion.data.mosi",
        "affectfusion.data.speech",
        "affectfusion.data.synthetic",
        "affectfusion.data.synthetic_conversation",
        "affectfusion.data.text_corpora",
    ),
)
