"""A content-addressed cache of extracted features, with provenance and a failure report.

Layout: ``<root>/<extractor>/<fingerprint>/`` holds ``params.json`` (extractor, version, options,
package versions), ``items/<key[:2]>/<key>.npy`` (one array per distinct input content; :meth:`FeatureStore.pack`
moves them into ``packs/``, see :mod:`affectfusion.extract.packs`, and reads look there first),
``items/<key[:2]>/<key>.error.json`` (why an input failed, with the package versions it failed
under), ``report.json`` (the last run's counts) and ``failures.csv`` (every input that failed the
last time it was asked for, one line each: a run over another split adds its lines, it does not
erase the earlier ones).
The key hashes the extractor fingerprint and the input's content, so re-running does no work (a
failed input is not retried until its content or a package version changes), a changed option
makes new features, a package upgrade makes new features (package versions are part of the
fingerprint), and a renamed file is still found.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from affectfusion.extract.base import ExtractionError, Extractor, RawInput, content_hash
from affectfusion.extract.engines import Engine, LocalEngine
from affectfusion.extract.packs import Packs
from affectfusion.io import disk_full, is_disk_full, write_csv, write_json

BATCH = 16
PACK_BYTES = 256 << 20  # one pack file's size: what packing holds in memory at once
STALE_TMP_S = 86_400  # a temp file this old belongs to no live writer, whichever host made it
WRITER = socket.gethostname().replace(".", "-")  # this host, in temp file names
INPUT = "{input}"  # stands for the input's path in a stored error message


@dataclass
class Item:
    id: str
    input: RawInput
    source: str | None = None


@dataclass
class ExtractionReport:
    extractor: str
    fingerprint: str
    folder: str
    total: int = 0
    cached: int = 0
    computed: int = 0
    failures: list[dict[str, str | None]] = field(default_factory=list)
    # failures the extractor's options call an absent modality (no face under no_face: missing_modality)
    absent: list[dict[str, str | None]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.extractor}: {self.total} items, {self.cached} cached, {self.computed} computed, "
            f"{len(self.failures)} failed" + (f", {len(self.absent)} absent" if self.absent else "")
        )


class FeatureStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def folder(self, extractor: Extractor) -> Path:
        return self.root / extractor.name / extractor.fingerprint()

    def _path(self, folder: Path, key: str) -> Path:
        return folder / "items" / key[:2] / f"{key}.npy"

    def _error_path(self, folder: Path, key: str) -> Path:
        return folder / "items" / key[:2] / f"{key}.error.json"

    def _cached_error(self, folder: Path, key: str, packages: dict[str, str | None]) -> str | None:
        """The recorded failure of this input, unless a package changed since (then it is retried)."""
        path = self._error_path(folder, key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # unreadable record: extract again
        if not isinstance(record, dict) or record.get("packages") != packages or not record.get("error"):
            return None
        return str(record["error"])

    def run(
        self,
        extractor: Extractor,
        items: Sequence[Item],
        workers: int = 1,
        console: Console | None = None,
        progress: bool = True,
        engine: Engine | None = None,
    ) -> tuple[dict[str, np.ndarray], ExtractionReport]:
        """Features for every item (by id) that could be extracted, and a report of the rest.

        ``engine`` runs the extractor (default: :class:`LocalEngine` with ``workers`` processes)."""
        folder = self.folder(extractor)
        report = ExtractionReport(extractor.name, extractor.fingerprint(), str(folder), total=len(items))
        if not (folder / "params.json").exists():
            write_json(folder / "params.json", extractor.describe())
        fp = extractor.fingerprint()
        keys: dict[str, str] = {}
        for it in items:
            try:
                keys[it.id] = hashlib.sha256(f"{fp}:{content_hash(it.input)}".encode()).hexdigest()
            except ExtractionError as e:
                report.failures.append({"id": it.id, "source": it.source, "error": str(e)})
        packages = extractor.describe()["packages"]
        todo: dict[str, RawInput] = {}
        known_errors: dict[str, str] = {}
        cached: dict[str, np.ndarray] = {}
        packed = Packs(folder, self._warner(console)).lookup(keys.values())
        for it in items:
            key = keys.get(it.id)
            if key is None or key in todo or key in known_errors or key in cached:
                continue
            if key in packed:
                cached[key] = packed.pop(key)
                continue
            if self._path(folder, key).exists():
                array = self._read(self._path(folder, key), console)
                if array is not None:
                    cached[key] = array
                    continue
            error = self._cached_error(folder, key, packages)
            if error is None:
                todo[key] = it.input
            else:
                known_errors[key] = error
        errors: dict[str, str] = {}
        if todo:
            errors = self._compute(extractor, folder, todo, engine or LocalEngine(workers), console, progress, packages)
        errors.update(known_errors)
        features: dict[str, np.ndarray] = {}
        given: dict[str, np.ndarray] = {}
        for it in items:
            key = keys.get(it.id)
            if key is None:
                continue
            if key in errors:
                error = errors[key]
                if isinstance(it.input, Path):  # this item's path, not that of a file with the same content
                    error = error.replace(INPUT, str(it.input))
                report.failures.append({"id": it.id, "source": it.source, "error": error})
                continue
            if key in cached:  # read (and checked) above; an input with the same content gets its own copy
                array = cached.pop(key)
                features[it.id] = array
                given[key] = array
            else:
                features[it.id] = given[key].copy() if key in given else np.load(self._path(folder, key))
        report.cached = sum(
            1 for it in items if it.id in keys and keys[it.id] not in todo and keys[it.id] not in errors
        )
        report.computed = sum(1 for it in items if keys.get(it.id) in todo and keys[it.id] not in errors)
        write_json(folder / "report.json", asdict(report))
        self._write_failures(folder / "failures.csv", items, report.failures)
        return features, report

    @staticmethod
    def _write_failures(path: Path, items: Sequence[Item], failures: list[dict[str, str | None]]) -> None:
        """This run's failures replace earlier lines for the same ids; lines for other ids stay.

        One extractor folder serves every split (``extract`` runs train, dev and test one after the
        other): the train split's failures must survive the dev split's run.
        """
        import pandas as pd  # only when writing a report: serving reads nothing through the store

        columns = ["id", "source", "error"]
        asked = {it.id for it in items}
        kept: list[dict[Hashable, Any]] = []  # rows as pandas gives them
        if path.is_file():
            try:
                previous = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
                previous = pd.DataFrame(columns=columns)  # a damaged report is rebuilt from this run
            if list(previous.columns) == columns:
                kept = [r for r in previous.to_dict("records") if r["id"] not in asked]
        rows = [{k: (None if r[k] == "" else r[k]) for k in columns} for r in kept] + failures
        write_csv(pd.DataFrame(rows, columns=columns), path)

    def _compute(
        self,
        extractor: Extractor,
        folder: Path,
        todo: dict[str, RawInput],
        engine: Engine,
        console: Console | None,
        progress: bool,
        packages: dict[str, str | None],
    ) -> dict[str, str]:
        """Extract ``todo`` (key -> input); returns key -> error, with the input's path as :data:`INPUT`.

        Features and failures are recorded as each batch finishes, so an interrupted run keeps them.
        """
        keys = list(todo)
        self._sweep(folder / "items")  # once per run with work to do: it lists every entry
        chunks = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]
        errors: dict[str, str] = {}
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        # transient: the finished bar gives way to the one summary line its caller prints; in a log file
        # (no terminal) a bar shows nothing but would leave an empty line behind
        out = console or Console(stderr=True)
        shown = progress and out.is_terminal
        with Progress(*columns, console=out, disable=not shown, transient=True) as bar:
            task = bar.add_task(f"extract {extractor.name}", total=len(keys))
            for index, results in engine.map(extractor, [[todo[k] for k in chunk] for chunk in chunks]):
                for key, result in zip(chunks[index], results, strict=True):
                    if isinstance(result, str):
                        # Inputs with the same content share a key: the message must not name one file.
                        path = todo[key]
                        errors[key] = result.replace(str(path), INPUT) if isinstance(path, Path) else result
                        write_json(self._error_path(folder, key), {"error": errors[key], "packages": packages})
                    else:
                        self._save(self._path(folder, key), result)
                        self._error_path(folder, key).unlink(missing_ok=True)
                bar.update(task, advance=len(chunks[index]))
        return errors

    @staticmethod
    def _read(path: Path, console: Console | None) -> np.ndarray | None:
        """A cached entry, or None after deleting one that is damaged (cut short by a full disk or a
        copy, overwritten): it must hold exactly the finite float32 ``[D]`` / ``[T, D]`` array its header
        declares, as :func:`extract_inputs` made it. The caller then computes it again."""
        try:
            data = path.read_bytes()  # one read: at 10^5 entries opening and parsing twice costs minutes
            buf = io.BytesIO(data)
            array = np.load(buf, allow_pickle=False)
            shape, dtype = getattr(array, "shape", ()), getattr(array, "dtype", None)
            if dtype != np.float32 or len(shape) not in (1, 2) or 0 in shape or buf.tell() != len(data):
                raise ValueError(f"{dtype} {list(shape)} in {len(data)} bytes, where that header needs {buf.tell()}")
            if not np.isfinite(array).all():
                raise ValueError("non-finite values")
        except (OSError, ValueError, EOFError) as e:
            (console or Console(stderr=True)).print(
                f"feature cache: {path} is damaged ({str(e).splitlines()[0]}); extracting it again",
                highlight=False,
                soft_wrap=True,
            )
            path.unlink(missing_ok=True)
            return None
        return array

    @staticmethod
    def _save(path: Path, array: np.ndarray) -> None:
        """Whole or not at all: a temp file named after this host and process, renamed over the entry, so a
        later run can tell the temp file of a killed writer (removed by :meth:`_sweep`) from one being written."""
        buf = io.BytesIO()
        np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
        tmp = path.with_name(f".{path.name}.{WRITER}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError) and is_disk_full(e):
                raise disk_full(e, path) from None
            raise

    @staticmethod
    def _sweep(items: Path) -> None:
        """Remove the temp files that writers killed mid-write left under ``items``: those of a process of this
        host that is gone, and any older than a day (another host's, or an unnamed one)."""
        for folder in sorted(items.iterdir()) if items.is_dir() else ():
            for tmp in folder.glob(".*.tmp"):
                parts = tmp.name.rsplit(".", 3)  # [.<entry>, <host>, <pid>, tmp] (else: atomic_file's, unnamed)
                pid = parts[2] if len(parts) == 4 and parts[1] == WRITER else ""
                try:
                    stale = time.time() - tmp.stat().st_mtime > STALE_TMP_S
                    if stale or (pid.isdigit() and not _alive(int(pid))):
                        tmp.unlink(missing_ok=True)
                except OSError:
                    continue  # renamed into place meanwhile

    def _warner(self, console: Console | None) -> Callable[[str], None]:
        out = console or Console(stderr=True)
        return lambda message: out.print(message, highlight=False, soft_wrap=True)

    def pack(self, extractor: Extractor, console: Console | None = None) -> int:
        """Move every loose entry of this extractor's folder into pack files (at most :data:`PACK_BYTES` each,
        so memory stays bounded); returns how many were packed. Damaged entries are deleted, as on reading."""
        folder = self.folder(extractor)
        self._sweep(folder / "items")
        packs = Packs(folder, self._warner(console))
        indexed = packs.keys()
        moved = 0
        batch: dict[str, np.ndarray] = {}
        paths: list[Path] = []
        size = 0
        for path in sorted((folder / "items").glob("*/*.npy")):
            if path.stem in indexed:  # packed before a kill could delete it
                path.unlink(missing_ok=True)
                continue
            array = self._read(path, console)
            if array is None:
                continue
            batch[path.stem] = array
            paths.append(path)
            size += array.nbytes
            if size >= PACK_BYTES:
                moved += self._flush(packs, batch, paths)
                size = 0
        return moved + self._flush(packs, batch, paths)

    @staticmethod
    def _flush(packs: Packs, batch: dict[str, np.ndarray], paths: list[Path]) -> int:
        """Pack ``batch`` and delete its loose files (only once the index holds them); empties both."""
        if not batch:
            return 0
        packs.add(batch)
        for path in paths:
            path.unlink(missing_ok=True)
        n = len(batch)
        batch.clear()
        paths.clear()
        return n

    def listing(self, extractor: Extractor) -> set[str]:
        """The keys of every stored entry of this extractor setting (packed and loose)."""
        folder = self.folder(extractor)
        return Packs(folder).keys() | {p.stem for p in (folder / "items").glob("*/*.npy")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, under another user
        return True
    return True
