"""A content-addressed cache of extracted features, with provenance and a failure report.

Layout: ``<root>/<extractor>/<fingerprint>/`` holds ``params.json`` (extractor, version, options,
package versions), ``items/<key[:2]>/<key>.npy`` (one array per distinct input content) and the
last run's ``report.json`` / ``failures.csv``. The key hashes the extractor fingerprint and the
input's content, so re-running does no work, a changed option makes new features, and a renamed
file is still found.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput, content_hash
from affectfusion.io import atomic_file, write_csv, write_json

BATCH = 16


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

    def summary(self) -> str:
        return (
            f"{self.extractor}: {self.total} items, {self.cached} cached, {self.computed} computed, "
            f"{len(self.failures)} failed"
        )


class FeatureStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def folder(self, extractor: Extractor) -> Path:
        return self.root / extractor.name / extractor.fingerprint()

    def _path(self, folder: Path, key: str) -> Path:
        return folder / "items" / key[:2] / f"{key}.npy"

    def run(
        self,
        extractor: Extractor,
        items: Sequence[Item],
        workers: int = 1,
        console: Console | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], ExtractionReport]:
        """Features for every item (by id) that could be extracted, and a report of the rest."""
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
        todo: dict[str, RawInput] = {}
        for it in items:
            key = keys.get(it.id)
            if key is not None and key not in todo and not self._path(folder, key).exists():
                todo[key] = it.input
        errors: dict[str, str] = {}
        if todo:
            errors = self._compute(extractor, folder, todo, workers, console, progress)
        features: dict[str, np.ndarray] = {}
        for it in items:
            key = keys.get(it.id)
            if key is None:
                continue
            if key in errors:
                report.failures.append({"id": it.id, "source": it.source, "error": errors[key]})
                continue
            features[it.id] = np.load(self._path(folder, key), allow_pickle=False)
        report.cached = sum(1 for it in items if it.id in keys and keys[it.id] not in todo)
        report.computed = sum(1 for it in items if keys.get(it.id) in todo and keys[it.id] not in errors)
        write_json(folder / "report.json", asdict(report))
        write_csv(pd.DataFrame(report.failures, columns=["id", "source", "error"]), folder / "failures.csv")
        return features, report

    def _compute(
        self,
        extractor: Extractor,
        folder: Path,
        todo: dict[str, RawInput],
        workers: int,
        console: Console | None,
        progress: bool,
    ) -> dict[str, str]:
        keys = list(todo)
        chunks = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]
        errors: dict[str, str] = {}
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console or Console(stderr=True), disable=not progress) as bar:
            task = bar.add_task(f"extract {extractor.name}", total=len(keys))

            def store(chunk: list[str], results: list[np.ndarray | str]) -> None:
                for key, result in zip(chunk, results, strict=True):
                    if isinstance(result, str):
                        errors[key] = result
                    else:
                        self._save(self._path(folder, key), result)
                bar.update(task, advance=len(chunk))

            if workers <= 1:
                for chunk in chunks:
                    store(chunk, _as_results(extractor.extract_batch([todo[k] for k in chunk])))
            else:
                options = extractor.options.model_dump_json()
                ctx = mp.get_context("spawn")
                with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                    futures = {
                        pool.submit(_extract_in_worker, extractor.name, options, [todo[k] for k in chunk]): chunk
                        for chunk in chunks
                    }
                    for future in cf.as_completed(futures):
                        store(futures[future], future.result())
        return errors

    @staticmethod
    def _save(path: Path, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
        with atomic_file(path, "wb") as f:
            f.write(buf.getvalue())


def _as_results(results: list[np.ndarray | ExtractionError]) -> list[np.ndarray | str]:
    return [str(r) if isinstance(r, ExtractionError) else r for r in results]


_WORKER_EXTRACTORS: dict[tuple[str, str], Extractor] = {}


def _extract_in_worker(name: str, options_json: str, inputs: list[RawInput]) -> list[np.ndarray | str]:
    """Runs in a worker process: the extractor (and its model) is built once per process."""
    import affectfusion.extract  # noqa: F401  (registers the extractors in a fresh interpreter)

    key = (name, options_json)
    if key not in _WORKER_EXTRACTORS:
        cls = EXTRACTORS.get(name)
        _WORKER_EXTRACTORS[key] = cls(name, cls.Options.model_validate(json.loads(options_json)))
    return _as_results(_WORKER_EXTRACTORS[key].extract_batch(inputs))
