"""Where extraction runs: in this process, in a local process pool, or on a Ray cluster (:mod:`.ray_engine`).

An engine turns batches of inputs into results and yields each batch as soon as it is done, so the feature
store records features as they come (an interrupted run keeps them, whatever the engine) and one progress
bar serves every engine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from affectfusion.extract.base import ExtractionError, Extractor, RawInput, extract_inputs
from affectfusion.extract.build import shared_extractor

# One input's features, or the message of its ExtractionError.
Results = list[np.ndarray | str]


class Engine(Protocol):
    def map(self, extractor: Extractor, batches: Sequence[list[RawInput]]) -> Iterator[tuple[int, Results]]:
        """``(index, results)`` for every batch, in the order they finish."""
        ...


@dataclass
class LocalEngine:
    """This process (``workers`` 1), or that many spawned processes, each building the extractor once."""

    workers: int = 1

    def map(self, extractor: Extractor, batches: Sequence[list[RawInput]]) -> Iterator[tuple[int, Results]]:
        if self.workers <= 1:
            for i, batch in enumerate(batches):
                yield i, as_results(extract_inputs(extractor, batch))
            return
        options = extractor.options.model_dump_json()
        with cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(extract_in_worker, extractor.name, options, extractor.device, batch): i
                for i, batch in enumerate(batches)
            }
            for future in cf.as_completed(futures):
                yield futures[future], future.result()


def as_results(results: list[np.ndarray | ExtractionError]) -> Results:
    return [str(r) if isinstance(r, ExtractionError) else r for r in results]


def extract_in_worker(name: str, options_json: str, device: str | None, inputs: list[RawInput]) -> Results:
    """Runs in a worker process: the extractor (and its model) is built once per process."""
    return as_results(extract_inputs(shared_extractor(name, options_json, "extractor options", device), inputs))
