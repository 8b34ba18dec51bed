"""One cross-validation fold of any dataset, as an adapter: ``train``, ``val`` and ``test`` carved
out of the samples of the wrapped adapter's splits.

``affectfusion cv`` writes one of these into each fold's config, so a fold folder is an ordinary run
that ``test``, ``analyze`` and ``predict`` read back the usual way. The fold is stated by *values*
(which fold / group values are tested, which groups validate), never by a list of sample positions, so
it is readable in ``config.yaml`` and a group can never be split: every sample of a group goes where its
group goes. The test key (``column``) and the group key (``group_column``) are read from the sample's
metadata (adapters keep extra table columns there), ``group`` is the adapter's own group (speaker,
actor) and no column at all means the sample id (plain k-fold).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from affectfusion.data.examples import ExampleSpec
from affectfusion.data.examples import media as media_examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.registry import validate_options

ROLES = ("train", "val", "test")


def sample_value(s: Sample, column: str | None, where: str) -> str:
    """``column`` of a sample: a metadata column, the adapter's ``group``, or the id when ``column`` is None."""
    if column is None:
        return s.id
    if column in s.metadata:
        return str(s.metadata[column])
    if column == "group" and s.group is not None:
        return s.group
    known = ", ".join(sorted({*s.metadata, *(["group"] if s.group is not None else [])})) or "none"
    raise AffectFusionError(f"{where}: sample {s.id!r} has no value in column {column!r} (its columns: {known})")


def group_of(s: Sample, group_column: str | None, where: str) -> str:
    """The group a sample moves with: ``group_column``'s value, else the adapter's group, else its id."""
    if group_column is not None:
        return sample_value(s, group_column, where)
    return s.group if s.group is not None else s.id


def load_all(adapter: DatasetAdapter, root: Path | None, splits: list[str], where: str) -> list[Sample]:
    """Every sample of ``splits``, each id once (an id in two splits is an error naming both)."""
    seen: dict[str, str] = {}
    out = []
    for split in splits:
        for s in adapter.load(root, split):
            if s.id in seen:
                raise AffectFusionError(
                    f"{where}: sample id {s.id!r} is in split {seen[s.id]!r} and in {split!r}; "
                    "cross-validation pools the splits, so choose splits that do not overlap (--splits)"
                )
            seen[s.id] = split
            s.metadata.setdefault("split", split)
            out.append(s)
    return out


def _example(root: Path) -> ExampleSpec:
    """RAVDESS-style clips of actors 01 and 02; the fold tests actor 01 and trains on actor 02."""
    spec = media_examples.ravdess(root)
    options = {"adapter": "ravdess", "splits": ["train"], "column": "actor", "test": ["01"], "val": []}
    return ExampleSpec("test", spec.tasks, options)


@DATASETS.register("folds")
class FoldsAdapter(DatasetAdapter):
    """One fold of a cross-validation (written by `affectfusion cv`): splits train, val and test."""

    write_example = staticmethod(_example)

    class Options(DatasetAdapter.Options):
        adapter: str = Field(..., description="the wrapped dataset adapter")
        options: dict = Field(default_factory=dict, description="the wrapped adapter's options")
        splits: list[str] = Field(..., min_length=1, description="the wrapped adapter's splits, pooled")
        column: str | None = Field(None, description="metadata column whose values name the test part (None: id)")
        group_column: str | None = Field(
            None, description="metadata column of the groups that move together (None: the adapter's group)"
        )
        test: list[str] = Field(..., min_length=1, description="values of `column` tested in this fold")
        val: list[str] = Field(default_factory=list, description="groups held out of training for validation")

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        inner = DATASETS.get(options.adapter)
        self.inner = inner(validate_options(inner, options.options, "data.options.options"))
        self.needs_root = inner.needs_root
        # cv groups by a column on purpose; else the wrapped adapter says what its groups are
        self.groups_identify_sources = options.group_column is not None or inner.groups_identify_sources

    def load(self, root: Path | None, split: str) -> list[Sample]:
        o = self.options
        if split not in ROLES:
            raise AffectFusionError(f"a cross-validation fold has splits {', '.join(ROLES)}, not {split!r}")
        where = f"fold of {o.adapter} splits {', '.join(o.splits)}"
        return assign(load_all(self.inner, root, o.splits, where), o, where)[split]


def assign(samples: list[Sample], o: FoldsAdapter.Options, where: str) -> dict[str, list[Sample]]:
    """The fold's train, val and test samples: tested by ``column`` value, validating by group."""
    test, val = set(o.test), set(o.val)
    out: dict[str, list[Sample]] = {role: [] for role in ROLES}
    for s in samples:
        group = group_of(s, o.group_column, where)
        if o.group_column is not None:
            s.group = group
        role = "test" if sample_value(s, o.column, where) in test else "val" if group in val else "train"
        out[role].append(s)
    return out
