"""Pack files: many cached features in one file, found through one index, so a cache of a million entries
lists and reads fast (a million small files take minutes to list and open, and strain any filesystem).

Layout under an extractor folder: ``packs/pack-<id>.npy`` (a plain float32 ``.npy`` vector, the entries end
to end, memory-mapped when read) and ``packs/index.sqlite`` (key -> pack, offset, shape). :meth:`Packs.add`
writes a pack file whole (temp file, then rename) before one transaction indexes it, so a kill leaves
either no trace or an unindexed file; a pack that is cut short or missing is noticed when read, its
entries are dropped from the index and the store extracts them again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from affectfusion.io import atomic_file

QUERY = 500  # keys per SELECT (well under SQLite's bound-parameter limit)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items "
    "(key TEXT PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL, shape TEXT NOT NULL)"
)


class Packs:
    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None) -> None:
        self.dir = folder / "packs"
        self.index = self.dir / "index.sqlite"
        self._warn = warn or (lambda message: None)
        self._maps: dict[str, np.ndarray | None] = {}

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.index, timeout=60)
        try:
            with db:
                db.execute(SCHEMA)
                yield db
        finally:
            db.close()

    def keys(self) -> set[str]:
        """Every packed key: one query, however many entries."""
        if not self.index.is_file():
            return set()
        with self._db() as db:
            return {k for (k,) in db.execute("SELECT key FROM items")}

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The packed entries among ``keys`` (own copies); damaged ones are dropped from the index, not returned."""
        wanted = list(dict.fromkeys(keys))
        if not wanted or not self.index.is_file():
            return {}
        found: dict[str, np.ndarray] = {}
        damaged: list[str] = []
        with self._db() as db:
            for i in range(0, len(wanted), QUERY):
                chunk = wanted[i : i + QUERY]
                marks = ",".join("?" * len(chunk))
                for key, pack, offset, shape in db.execute(
                    f"SELECT key, pack, offset, shape FROM items WHERE key IN ({marks})", chunk
                ):
                    array = self._entry(pack, int(offset), tuple(json.loads(shape)))
                    if array is None:
                        damaged.append(key)
                    else:
                        found[key] = array
            for i in range(0, len(damaged), QUERY):
                chunk = damaged[i : i + QUERY]
                db.execute(f"DELETE FROM items WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        return found

    def _entry(self, pack: str, offset: int, shape: tuple[int, ...]) -> np.ndarray | None:
        values = self._map(pack)
        size = int(np.prod(shape))
        if values is None or offset + size > values.shape[0]:
            return None
        array = np.array(values[offset : offset + size]).reshape(shape)
        if not np.isfinite(array).all():
            self._warn(f"feature cache: an entry of {self.dir / pack} has non-finite values; extracting it again")
            return None
        return array

    def _map(self, pack: str) -> np.ndarray | None:
        if pack not in self._maps:
            path = self.dir / pack
            try:
                values = np.load(path, mmap_mode="r", allow_pickle=False)
                if values.dtype != np.float32 or values.ndim != 1:
                    raise ValueError(f"{values.dtype} {list(values.shape)}, not a float32 vector")
                self._maps[pack] = values
            except (OSError, ValueError, EOFError) as e:
                self._warn(f"feature cache: {path} is damaged ({str(e).splitlines()[0]}); extracting its entries again")
                self._maps[pack] = None
        return self._maps[pack]

    def add(self, entries: dict[str, np.ndarray]) -> Path:
        """One new pack holding ``entries`` (finite float32 ``[D]``/``[T, D]`` arrays), then their index rows."""
        name = f"pack-{uuid.uuid4().hex[:12]}.npy"
        offsets, start = [], 0
        for array in entries.values():
            offsets.append(start)
            start += array.size
        values = np.empty(start, np.float32)
        for array, offset in zip(entries.values(), offsets, strict=True):
            values[offset : offset + array.size] = array.ravel()
        with atomic_file(self.dir / name, "wb") as f:
            np.save(f, values, allow_pickle=False)
        rows = [
            (key, name, offset, json.dumps(list(array.shape)))
            for (key, array), offset in zip(entries.items(), offsets, strict=True)
        ]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)
        return self.dir / name
