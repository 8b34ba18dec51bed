"""Per-split feature shards on disk: written once from an adapter, read lazily by every command.

A split's features are the largest thing a run holds (CMU-MOSEI's unaligned sequences are about
8 GB); loading them into Python lists for each of ``train``, the data check and evaluation held
them up to three times. Here each split is written once, in this layout, under
``<data.cache_dir>/splits/<key>/``::

    shard.json         format, sample count, per modality its dim and frame count
    samples.json       per sample: id, raw targets, group, source, metadata, order, speaker,
                       and the data check's (exact, near) hashes of each modality's array
    <modality>.f32     one contiguous float32 array [frames, dim], samples back to back
    <modality>.idx.npy int64 [n, 2]: each sample's first frame and length (0 = modality absent)

Plain float32 files and ``.npy`` indexes need no new dependency and are read with positioned
reads (``os.preadv``) straight into a batch's padded buffer. The shards are not memory-mapped on
purpose: mapped pages that a pass has touched count towards the process's resident set until the
kernel reclaims them, so an epoch over an 8 GB mapping shows up as 8 GB of RSS; data read with
``pread`` is cached by the kernel without being charged to the process. The hashes are computed
while writing, so the leakage guard never reads the arrays again.

``key`` is a hash of the adapter, its options, the split and the sizes and modification times of
the files under ``data.root`` (and of any option that names a file), so editing the data writes
new shards; a config that differs only in its model or training reuses them, as do ``test``,
``analyze`` and every seed or variant of a sweep. Writers in parallel processes each write a
temporary folder and rename it into place; the first one wins.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.config import DataConfig
from affectfusion.data.fingerprints import array_prints
from affectfusion.data.registry import DatasetAdapter
from affectfusion.data.types import LazyFeatures, Sample, check_array
from affectfusion.errors import AffectFusionError
from affectfusion.io import disk_full

FORMAT = 2  # part of every split key: a new layout writes new folders (2: shard.json)
_STORES: dict[Path, SplitStore] = {}  # opened once per process: every command reads a split once


class NotStorable(Exception):
    """The adapter's samples carry something the shards do not hold (raw media); use them in memory."""

    def __init__(self, samples: Any = None) -> None:
        super().__init__("not storable")
        self.samples: list[Sample] = samples if isinstance(samples, list) else []


# The two files of a split folder beside its arrays (see the module docstring).
SAMPLES_FILE = "samples.json"  # ids, targets, groups, metadata and hashes, one entry per sample
SHARD_FILE = "shard.json"  # modality shapes and counts: what a reader checks before it trusts the folder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SplitWriter:
    """Receives a split modality by modality (``add`` in any row order), then the samples (``finish``)."""

    def __init__(self, folder: Path, n: int, name: str) -> None:
        self.folder, self.n, self.name = folder, n, name
        self.tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir(parents=True)
        self.files: dict[str, Any] = {}
        self.index: dict[str, np.ndarray] = {}
        self.frames: dict[str, int] = {}
        self.dims: dict[str, tuple[int, str]] = {}  # modality -> (dim, id of the first sample that had it)
        self.prints: list[dict[str, tuple[str, str]]] = [{} for _ in range(n)]

    def add(self, modality: str, row: int, sample_id: str, array: Any) -> None:
        x = check_array(array, f"{self.name}: sample {sample_id!r} modality {modality!r}")
        if modality not in self.files:
            self.files[modality] = open(self.tmp / f"{modality}.f32", "wb")  # noqa: SIM115 (closed in finish)
            self.index[modality] = np.zeros((self.n, 2), dtype=np.int64)
            self.frames[modality] = 0
            self.dims[modality] = (x.shape[1], sample_id)
        dim, first = self.dims[modality]
        if x.shape[1] != dim:
            raise AffectFusionError(
                f"{self.name}: sample {sample_id!r} modality {modality!r} has feature dimension {x.shape[1]}, "
                f"but sample {first!r} has {dim}"
            )
        self.files[modality].write(x.tobytes())
        self.index[modality][row] = (self.frames[modality], x.shape[0])
        self.frames[modality] += x.shape[0]
        self.prints[row][modality] = array_prints(x)

    def drop(self, modality: str, rows: np.ndarray) -> None:
        """Mark ``rows`` as lacking ``modality`` (their frames stay in the file, unread)."""
        if modality in self.index:
            self.index[modality][rows, 1] = 0
            for r in rows:
                self.prints[int(r)].pop(modality, None)

    def finish(self, samples: Sequence[Sample]) -> Path:
        """Write the sample table and move the folder into place (unless a parallel writer was first)."""
        for f in self.files.values():
            f.close()
        if not any(len(p) for p in self.prints):
            raise AffectFusionError(f"{self.name}: no sample has any modality features")
        table = [_row(s, self.prints[i]) for i, s in enumerate(samples)]
        for m, idx in self.index.items():
            np.save(self.tmp / f"{m}.idx.npy", idx)
        meta = {
            "format": FORMAT,
            "n": self.n,
            "modalities": {m: {"dim": self.dims[m][0], "frames": self.frames[m]} for m in self.index},
        }
        (self.tmp / SAMPLES_FILE).write_text(json.dumps(table))
        (self.tmp / SHARD_FILE).write_text(json.dumps(meta))
        try:
            os.rename(self.tmp, self.folder)
        except OSError:  # written meanwhile by a parallel process: same key, same content
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.folder

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _plain(value: Any) -> Any:
    """JSON-ready targets and metadata (numpy scalars and arrays to Python); anything else is not storable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise NotStorable(f"a value of type {type(value).__name__}")


def _row(s: Sample, prints: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": s.id,
        "targets": {k: _plain(v) for k, v in s.targets.items()},
        "group": s.group,
        "source": s.source,
        "metadata": {k: _plain(v) for k, v in s.metadata.items()},
        "order": s.order,
        "speaker": s.speaker,
        "prints": prints,
    }


def write_samples(samples: list[Sample], writer: SplitWriter) -> None:
    """The default way into the shards: an adapter's in-memory samples, written sample by sample."""
    try:
        for i, s in enumerate(samples):
            for m, x in s.features.items():
                writer.add(m, i, s.id, x)
        writer.finish(samples)
    except BaseException:
        writer.abort()
        raise


class SplitStore:
    """One split's shards, open for reading."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        meta = json.loads((folder / SHARD_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise AffectFusionError(f"{folder}: shards of format {meta.get('format')}, expected {FORMAT}")
        self.n = int(meta["n"])
        self.dims = {m: int(v["dim"]) for m, v in meta["modalities"].items()}
        self.index = {m: np.load(folder / f"{m}.idx.npy") for m in self.dims}
        self.fds = {m: os.open(folder / f"{m}.f32", os.O_RDONLY) for m in self.dims}
        self.table: list[dict[str, Any]] = json.loads((folder / SAMPLES_FILE).read_text())

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a DataLoader worker started by spawn) as its folder; the copy opens its own files."""
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc]

    def read_into(self, modality: str, row: int, out: np.ndarray) -> None:
        """Read a sample's frames into ``out`` (a C-contiguous float32 [length, dim] view)."""
        start = int(self.index[modality][row, 0]) * self.dims[modality] * 4
        want = out.nbytes
        got = os.preadv(self.fds[modality], [out.data.cast("B")], start)
        if got != want:
            raise AffectFusionError(f"{self.folder}: {modality}.f32 is cut short; delete the folder to rewrite it")

    def read(self, modality: str, row: int) -> np.ndarray:
        out = np.empty((int(self.index[modality][row, 1]), self.dims[modality]), dtype=np.float32)
        self.read_into(modality, row, out)
        return out

    def samples(self) -> list[Sample]:
        """Fresh samples (their targets may be encoded in place) whose features are read on access."""
        lengths = {m: idx[:, 1] for m, idx in self.index.items()}
        out = []
        for i, r in enumerate(self.table):
            present = tuple(m for m in self.dims if lengths[m][i] > 0)
            out.append(
                Sample(
                    id=r["id"],
                    features=StoredFeatures(self, i, present),
                    targets=dict(r["targets"]),
                    group=r["group"],
                    source=r["source"],
                    metadata=dict(r["metadata"]),
                    order=r["order"],
                    speaker=r["speaker"],
                )
            )
        return out

    def prints(self, row: int) -> dict[str, tuple[str, str]]:
        return {m: (h[0], h[1]) for m, h in self.table[row]["prints"].items()}


class StoredFeatures(LazyFeatures):
    """A sample's modalities in a :class:`SplitStore`: each array is read from disk when asked for."""

    __slots__ = ("names", "row", "store")

    def __init__(self, store: SplitStore, row: int, names: tuple[str, ...]) -> None:
        self.store, self.row, self.names = store, row, names

    def __getitem__(self, modality: str) -> np.ndarray:
        if modality not in self.names:
            raise KeyError(modality)
        return self.store.read(modality, self.row)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, modality: object) -> bool:
        return modality in self.names

    def shape(self, modality: str) -> tuple[int, int]:
        return int(self.store.index[modality][self.row, 1]), self.store.dims[modality]

    def read_into(self, modality: str, out: np.ndarray) -> None:
        self.store.read_into(modality, self.row, out)

    def only(self, keep: Sequence[str]) -> StoredFeatures:
        return StoredFeatures(self.store, self.row, tuple(m for m in self.names if m in keep))

    def prints(self) -> dict[str, tuple[str, str]]:
        return {m: h for m, h in self.store.prints(self.row).items() if m in self.names}


def _file_state(path: Path) -> list[Any]:
    """Relative path, size and modification time of every file at or under ``path``."""
    if path.is_file():
        st = path.stat()
        return [[path.name, st.st_size, st.st_mtime_ns]]
    out = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            st = os.stat(os.path.join(folder, f))
            out.append([os.path.relpath(os.path.join(folder, f), path), st.st_size, st.st_mtime_ns])
    return out


def split_key(data: DataConfig, split: str, root: Path | None) -> str:
    """What the split's content depends on: adapter, options, split and the state of the files it reads."""
    named_files = {
        k: _file_state(Path(v).expanduser())
        for k, v in sorted(data.options.items())
        if isinstance(v, str) and v and Path(v).expanduser().exists()
    }
    ident = {
        "format": FORMAT,
        "adapter": data.adapter,
        "options": data.options,
        "split": split,
        "root": None if root is None else str(root.resolve()),
        "files": _file_state(root) if root is not None else None,
        "option_files": named_files,
    }
    return _sha(json.dumps(ident, sort_keys=True, default=str).encode())[:32]


def open_split(data: DataConfig, adapter: DatasetAdapter, root: Path | None, split: str, name: str) -> SplitStore:
    """The split's shards: opened if this process or an earlier command wrote them, else written now.

    An adapter with a ``write_split(root, split, writer_for)`` method streams into the writer (the
    synthetic one generates 8 GB that way); any other is loaded and written sample by sample.
    Raises :class:`NotStorable`, carrying the loaded samples, for a split the shards do not hold
    (raw media, targets that are not plain values, no samples), which is then used in memory.
    """
    folder = Path(data.cache_dir).expanduser() / "splits" / split_key(data, split, root)
    if folder in _STORES:
        return _STORES[folder]
    if not (folder / SHARD_FILE).exists():
        with contextlib.suppress(OSError):  # checked next
            folder.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(folder.parent, os.W_OK):  # a read-only cache: the split is held in memory
            raise NotStorable(adapter.load(root, split))
        try:
            _write(adapter, root, split, folder, name)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full(e, folder) from None
            raise
    store = _STORES[folder] = SplitStore(folder)
    return store


def _write(adapter: DatasetAdapter, root: Path | None, split: str, folder: Path, name: str) -> None:
    stream = getattr(adapter, "write_split", None)
    if stream is not None:
        stream(root, split, lambda n: SplitWriter(folder, n, name))
        return
    samples = adapter.load(root, split)
    if not samples or any(s.raw for s in samples):
        raise NotStorable(samples)
    try:
        for s in samples:
            _row(s, {})
    except NotStorable:
        raise NotStorable(samples) from None
    write_samples(samples, SplitWriter(folder, len(samples), name))


def split_samples(data: DataConfig, adapter: DatasetAdapter, root: Path | None, split: str, where: str) -> list[Sample]:
    """A split's samples: from its shards (written on first use) when it holds features only, else
    from the adapter, in memory (raw media go through extraction and the feature cache)."""
    if data.extract:
        return adapter.load(root, split)
    try:
        return open_split(data, adapter, root, split, where).samples()
    except NotStorable as e:
        return e.samples


def restrict(features: Mapping[str, np.ndarray], keep: Sequence[str]) -> Mapping[str, np.ndarray]:
    """The same features with only the modalities in ``keep`` (stored ones stay on disk)."""
    if isinstance(features, StoredFeatures):
        return features.only(keep)
    return {m: x for m, x in features.items() if m in keep}
