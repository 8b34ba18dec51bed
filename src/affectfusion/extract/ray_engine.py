"""Extraction on a Ray cluster: a pool of actors, each of which builds its extractor (and loads its model) once.

The driver (the ``extract`` command) keeps the feature store: actors only compute, results come back
batch by batch and the store writes them as they arrive, exactly as for the local engine. So the cache is
written by one process on one machine, resuming after a kill skips what is stored, and the features are
the ones the local engine makes. Workers must read the inputs at the paths the driver sees (a shared
filesystem on a multi-machine cluster) and have the same package versions (checked: the fingerprint of
every actor's extractor must equal the driver's).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import Extractor, RawInput, extract_inputs
from affectfusion.extract.build import shared_extractor
from affectfusion.extract.engines import Results, as_results
from affectfusion.threads import cpu_budget

CONNECT_TIMEOUT_S = 10


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AffectFusionError(
            "--engine ray needs the ray package: pip install 'affectfusion[ray]' (or use --engine local)"
        ) from None
    return ray


class _Worker:
    """One actor: one extractor, built and made ready when the actor starts."""

    def __init__(self, name: str, options_json: str, device: str | None) -> None:
        self.extractor = shared_extractor(name, options_json, "extractor options", device)
        self.extractor.ensure_ready()

    def fingerprint(self) -> str:
        return self.extractor.fingerprint()

    def run(self, index: int, inputs: list[RawInput]) -> tuple[int, Results]:
        return index, as_results(extract_inputs(self.extractor, inputs))


@dataclass
class RayEngine:
    """Ray at ``address`` (None: the instance this process already joined, else a new local one with as many
    CPUs as this process may use); ``actors`` per extractor (None: one per CPU of the cluster, one per GPU
    for an extractor that runs on a GPU when the cluster has GPUs)."""

    address: str | None = None
    actors: int | None = None
    _pools: dict[tuple[str, str, str | None], list[Any]] = field(default_factory=dict, repr=False)

    def start(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            _check_reachable(self.address)
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-statistics banner
            local = {"num_cpus": self.actors or cpu_budget()} if self.address is None else {}
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    **local,
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise AffectFusionError(f"--address {self.address}: cannot join a Ray cluster ({e})") from None
            logging.getLogger("ray").setLevel(logging.ERROR)
        return ray

    def map(self, extractor: Extractor, batches: Sequence[list[RawInput]]) -> Iterator[tuple[int, Results]]:
        ray = self.start()
        from ray.util import ActorPool  # ray is an optional extra: imported once start() found it

        actors = self._actors(ray, extractor, len(batches))
        # absolute paths: an actor's working directory is not the driver's
        sent = [[Path(x).absolute() if isinstance(x, Path) else x for x in batch] for batch in batches]
        pool = ActorPool(actors)
        try:
            for index, results in pool.map_unordered(lambda a, v: a.run.remote(*v), list(enumerate(sent))):
                yield index, [_own_paths(r, batches[index], sent[index]) for r in results]
        except ray.exceptions.RayError as e:
            raise AffectFusionError(f"ray engine: {extractor.name} failed on the cluster: {_cause(e)}") from None

    def _actors(self, ray: Any, extractor: Extractor, n_batches: int) -> list[Any]:
        """The pool for this extractor setting, started (and checked) on first use, grown when it can use more."""
        options = extractor.options.model_dump_json()
        key = (extractor.name, options, extractor.device)
        resources = ray.cluster_resources()
        gpus = 1.0 if _on_gpu(extractor) and resources.get("GPU", 0) >= 1 else 0.0
        slots = int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1))
        wanted = max(1, min(self.actors or slots, n_batches))
        actors = self._pools.get(key, [])
        # an actor on a GPU runs on the one Ray gave it; one on a CPU must not take a GPU Ray did not give it
        device = "cuda" if gpus else ("cpu" if _on_gpu(extractor) else extractor.device)
        remote = ray.remote(num_cpus=1, num_gpus=gpus)(_Worker)
        new = [remote.remote(extractor.name, options, device) for _ in range(wanted - len(actors))]
        try:
            found = ray.get([a.fingerprint.remote() for a in new])
        except ray.exceptions.RayError as e:
            raise AffectFusionError(f"ray engine: cannot start {extractor.name} on the cluster: {_cause(e)}") from None
        expected = extractor.fingerprint()
        if any(f != expected for f in found):
            raise AffectFusionError(
                f"ray engine: a worker computes {extractor.name} with other package versions than this machine "
                f"(fingerprint {next(f for f in found if f != expected)} != {expected}); install the same "
                "versions on every node (pip install -c constraints.txt)"
            )
        self._pools[key] = actors + new
        return actors + new


def _check_reachable(address: str | None) -> None:
    """A HOST:PORT that answers nobody is one line, not Ray retrying the connection for many minutes."""
    host, _, port = (address or "").rpartition(":")
    if not host or "://" in host or not port.isdigit():  # none, auto, ray://: Ray resolves these itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise AffectFusionError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or e}); "
            "start one with `ray start --head` or check the address"
        ) from None


def _on_gpu(extractor: Extractor) -> bool:
    """Whether this extractor would run on a GPU where one is free (``auto``/``cuda`` and a model that can)."""
    device = extractor.device or "auto"
    return extractor.uses_gpu and (device == "auto" or device.startswith("cuda"))


def _own_paths(result: Any, asked: list[RawInput], sent: list[RawInput]) -> Any:
    """An error names the input as the caller gave it (relative path and all), not as it was sent."""
    if isinstance(result, str):
        for a, s in zip(asked, sent, strict=True):
            if isinstance(a, Path):
                result = result.replace(str(s), str(a))
    return result


def _cause(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    return str(error).splitlines()[0]
