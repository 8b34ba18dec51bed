"""Pre-extracted features in a folder: a manifest of samples plus feature files per modality.

Two layouts are read with the same adapter: one file per sample (pattern with ``{id}``), or one
file per split holding a mapping id -> array (a ``.pt`` dict as in P2, or an ``.npz`` keyed by id).
``.pt`` files are only opened with ``weights_only=True``: a feature file must never run code.
"""

from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from affectfusion.data import examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError

PATH_SUFFIX = "_path"  # manifest column <modality>_path overrides the pattern for that row


def _fill(pattern: str, split: str, sample_id: str | None = None) -> str:
    """Substitute ``{split}`` / ``{id}`` without ``str.format`` (other braces stay literal)."""
    out = pattern.replace("{split}", split)
    return out.replace("{id}", sample_id) if sample_id is not None else out


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "")


def _rows_of_split(
    rows: list[dict[str, Any]], pattern: str, split_column: str, split: str, manifest: Path
) -> list[dict[str, Any]]:
    """The rows of one split: all of a per-split manifest (``{split}`` in its name), else the rows
    whose split column equals ``split`` (all rows when the manifest has no such column)."""
    if "{split}" in pattern or not any(split_column in r for r in rows):
        return rows
    values = sorted({str(r.get(split_column)) for r in rows})
    kept = [r for r in rows if str(r.get(split_column)) == split]
    if not kept:
        raise AffectFusionError(
            f"manifest {manifest}: no row has {split_column}={split!r} (values: {', '.join(values)})"
        )
    return kept


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` / ``.tsv`` (all values strings) or ``.jsonl`` (JSON values) manifest."""
    if not path.is_file():
        listing = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise AffectFusionError(
            f"manifest {path} does not exist (files in {path.parent}: {', '.join(listing[:20]) or 'none'})"
        )
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise AffectFusionError(f"manifest {path} line {n}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise AffectFusionError(f"manifest {path} line {n}: expected a JSON object per line")
                rows.append(row)
        return rows
    raise AffectFusionError(f"manifest {path}: expected a .csv, .tsv or .jsonl file")


def _to_array(x: Any, where: str) -> np.ndarray:
    """A float32 ``[D]`` or ``[T, D]`` array from a numpy array or torch tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float32).cpu().numpy()
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
        raise AffectFusionError(f"{where}: expected a numeric array or tensor, got {type(x).__name__}")
    if x.ndim not in (1, 2):
        raise AffectFusionError(f"{where}: expected a [D] vector or [T, D] sequence, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def _load_file(path: Path) -> Any:
    """Contents of a ``.npy`` (array), ``.npz`` (dict of arrays) or ``.pt`` (tensor or dict) file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if suffix == ".pt":
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise AffectFusionError(
            f"feature file {path} could not be read as a weights-only torch file: it is corrupt or holds "
            "Python objects other than tensors (expected a tensor or a dict of tensors)"
        ) from None
    except Exception as e:  # numpy/torch raise many types for a corrupt file
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AffectFusionError(f"feature file {path} could not be read: {type(e).__name__}: {first_line}") from None
    raise AffectFusionError(f"feature file {path}: expected .npy, .npz or .pt")


@DATASETS.register("feature_folder")
class FeatureFolderAdapter(DatasetAdapter):
    """Pre-extracted features (.npy / .npz / .pt) listed by a CSV or JSONL manifest."""

    write_example = staticmethod(examples.feature_folder)

    class Options(DatasetAdapter.Options):
        manifest: str = Field(
            "manifest.csv",
            description="manifest path relative to root (.csv, .tsv or .jsonl); may contain {split}, "
            "e.g. '{split}_split.csv', then no split column is needed",
        )
        id_column: str = Field("id", description="manifest column with the unique sample id")
        split_column: str = Field(
            "split", description="if the manifest has this column, keep rows whose value equals the split"
        )
        group_column: str = Field(
            "group",
            description="column with the speaker/video/dialogue id, if present (group-disjoint checks)",
        )
        source_column: str | None = Field(None, description="column naming the original media file, if any")
        features: dict[str, str] = Field(
            ...,
            min_length=1,
            description="modality -> file pattern relative to root. With {id}: one .npy/.npz/.pt file per "
            "sample (a missing file = modality missing). Without {id}: one .pt dict or .npz per split "
            "(may contain {split}) mapping sample id -> [D] or [T, D] array. A manifest column "
            "<modality>_path overrides the file for that row",
        )
        array_key: str | None = Field(
            None, description="key to read from a per-sample .npz (or .pt dict) holding several arrays"
        )
        targets: dict[str, str] | None = Field(
            None,
            description="task name -> manifest column; default: every column that is not id/split/group/"
            "source/*_path, under its own name. Empty cells are unlabelled",
        )

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        o = self.options
        assert root is not None  # needs_root: load_dataset checks it
        manifest = root / _fill(o.manifest, split)
        rows = _read_manifest(manifest)
        if not rows:
            raise AffectFusionError(f"manifest {manifest} has no rows")
        columns = list(dict.fromkeys(k for r in rows for k in r))  # JSONL rows may differ in keys
        if o.id_column not in columns:
            raise AffectFusionError(
                f"manifest {manifest} has no id column {o.id_column!r} (columns: {', '.join(columns)}); "
                "set data.options.id_column"
            )
        if o.source_column is not None and o.source_column not in columns:
            raise AffectFusionError(
                f"manifest {manifest} has no source column {o.source_column!r} (columns: {', '.join(columns)})"
            )
        rows = _rows_of_split(rows, o.manifest, o.split_column, split, manifest)
        ids = self._ids(rows, manifest)
        targets = self._target_columns(columns, manifest)
        features: dict[str, dict[str, np.ndarray]] = {
            m: self._modality(m, pattern, rows, ids, root, split, manifest) for m, pattern in o.features.items()
        }
        samples = []
        for row, sid in zip(rows, ids, strict=True):
            group = row.get(o.group_column)
            source = row.get(o.source_column) if o.source_column else None
            samples.append(
                Sample(
                    id=sid,
                    features={m: feats[sid] for m, feats in features.items() if sid in feats},
                    targets={t: None if _is_empty(row.get(c)) else row.get(c) for t, c in targets.items()},
                    group=None if _is_empty(group) else str(group),
                    source=None if _is_empty(source) else str(source),
                )
            )
        return samples

    def _ids(self, rows: list[dict[str, Any]], manifest: Path) -> list[str]:
        """Sample ids as strings; an empty or repeated id is an error naming the row."""
        seen: dict[str, int] = {}
        ids = []
        for n, row in enumerate(rows, start=1):
            value = row.get(self.options.id_column)
            if _is_empty(value):
                raise AffectFusionError(f"manifest {manifest} row {n}: empty {self.options.id_column!r}")
            sid = str(value)
            if sid in seen:
                raise AffectFusionError(
                    f"manifest {manifest}: id {sid!r} appears in rows {seen[sid]} and {n}; ids must be unique"
                )
            seen[sid] = n
            ids.append(sid)
        return ids

    def _target_columns(self, columns: list[str], manifest: Path) -> dict[str, str]:
        o = self.options
        if o.targets is None:
            reserved = {o.id_column, o.split_column, o.group_column, o.source_column}
            return {c: c for c in columns if c not in reserved and not c.endswith(PATH_SUFFIX)}
        for task, column in o.targets.items():
            if column not in columns:
                raise AffectFusionError(
                    f"manifest {manifest} has no column {column!r} for target {task!r} (columns: {', '.join(columns)})"
                )
        return dict(o.targets)

    def _modality(
        self,
        modality: str,
        pattern: str,
        rows: list[dict[str, Any]],
        ids: list[str],
        root: Path,
        split: str,
        manifest: Path,
    ) -> dict[str, np.ndarray]:
        """id -> array for the samples that have this modality; none at all is an error."""
        override = modality + PATH_SUFFIX
        per_split = None if "{id}" in pattern else root / _fill(pattern, split)
        mapping: Mapping[str, Any] | None = None
        out: dict[str, np.ndarray] = {}
        for row, sid in zip(rows, ids, strict=True):
            if not _is_empty(row.get(override)):
                path = root / str(row[override])  # an absolute path stays absolute
                if path.is_file():
                    out[sid] = self._single(path, f"feature file {path}")
                continue
            if per_split is None:
                path = root / _fill(pattern, split, sid)
                if path.is_file():
                    out[sid] = self._single(path, f"feature file {path}")
                continue
            if mapping is None:
                mapping = self._mapping(per_split)
            if sid in mapping:
                out[sid] = _to_array(mapping[sid], f"feature file {per_split} key {sid!r}")
        if not out:
            if mapping is not None:
                keys = ", ".join(repr(k) for k in list(mapping)[:3])
                raise AffectFusionError(
                    f"feature file {per_split} ({modality}) has none of the {len(ids)} ids of manifest "
                    f"{manifest} (ids e.g. {ids[0]!r}; file keys e.g. {keys or 'none'})"
                )
            raise AffectFusionError(
                f"modality {modality!r}: no feature file found for any of the {len(ids)} samples of split "
                f"{split!r} (pattern {str(root / pattern)!r}, "
                f"e.g. {str(root / _fill(pattern, split, ids[0]))!r})"
            )
        return out

    def _single(self, path: Path, where: str) -> np.ndarray:
        """The one array of a per-sample file (``array_key`` picks it when there are several)."""
        data = _load_file(path)
        if not isinstance(data, Mapping):
            return _to_array(data, where)
        key = self.options.array_key
        if key is None and len(data) == 1:
            key = next(iter(data))
        if key not in data:
            raise AffectFusionError(
                f"{where}: holds arrays {', '.join(map(str, data))}; "
                + (f"no key {key!r}" if key is not None else "set data.options.array_key to pick one")
            )
        return _to_array(data[key], f"{where} key {key!r}")

    def _mapping(self, path: Path) -> dict[str, Any]:
        """A per-split file as id -> array (ids compared as strings)."""
        if not path.is_file():
            raise AffectFusionError(f"feature file {path} does not exist")
        if path.suffix.lower() not in (".pt", ".npz"):
            raise AffectFusionError(
                f"feature file {path}: a pattern without {{id}} must name a .pt dict or .npz keyed by sample id"
            )
        data = _load_file(path)
        if not isinstance(data, Mapping):
            raise AffectFusionError(
                f"feature file {path}: expected a dict of sample id -> tensor, got {type(data).__name__}"
            )
        return {str(k): v for k, v in data.items()}
