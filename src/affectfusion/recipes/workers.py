"""Training jobs in worker processes that stay alive across jobs, within the CPU budget.

A training process pays a fixed start-up (torch, scipy, the trainer: seconds) before its first epoch.
Folds (and trials) share one pool of workers, each running several jobs one after another, so that cost
is paid once per worker, not once per job; each job reports its own time outside epochs.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from affectfusion.threads import Threads, choose_threads, cpu_budget, other_load

J = TypeVar("J")

# Filled by each worker's initializer: what importing the training stack cost that process.
_STARTUP: dict[str, float] = {}


@dataclass(frozen=True)
class WorkerPlan:
    """How many worker processes, and how many CPU threads each one's math gets."""

    workers: int
    threads: int

    def __str__(self) -> str:
        return f"{self.workers} worker process(es) x {self.threads} thread(s)"


def plan_workers(n_jobs: int, requested: int | None = None, threads: Threads = "auto") -> WorkerPlan:
    """Workers x threads within the cores this process may use and other processes leave free (as
    :mod:`affectfusion.threads` counts them): an explicit thread count (config or ``OMP_NUM_THREADS``) fixes
    the threads per job, else the free cores are spread over the jobs. On a 2-core machine under a load of
    ~18, two workers took 347 s for MOSI's 4 folds against 193 s for one."""
    free = max(1, math.floor(cpu_budget() - other_load() + 0.5))  # cores not busy with other work
    fixed = choose_threads(threads)
    if threads != "auto" or fixed.reason == "OMP_NUM_THREADS":
        per_job = max(1, fixed.threads)
        workers = requested or max(1, free // per_job)
    else:
        workers = requested or fixed.threads  # the free cores, one job each
        per_job = max(1, fixed.threads // max(1, min(workers, n_jobs)))
    return WorkerPlan(max(1, min(workers, n_jobs)), per_job)


def _init_worker(warm: Callable[[], None] | None) -> None:
    """Pay the training stack's start-up once per worker (timed), before its first job."""
    t0 = time.perf_counter()
    if warm is not None:
        warm()
    _STARTUP["seconds"] = time.perf_counter() - t0


def worker_startup() -> tuple[int, float | None]:
    """(pid, seconds its start-up imports took), for a job to report; None in the calling process."""
    return os.getpid(), _STARTUP.get("seconds")


def run_jobs(
    fn: Callable[[J], Any], jobs: Sequence[J], plan: WorkerPlan, warm: Callable[[], None] | None = None
) -> Iterator[tuple[J, Any]]:
    """``fn(job)`` for every job, yielding ``(job, result)`` as each finishes. One worker: in this process.

    The first failing job cancels those not started and re-raises its error here; ``fn`` must be a
    module-level function and jobs picklable (workers are spawned: no forked torch state); ``warm``, a
    module-level function too, runs once in each worker before its first job (imports, lazy set-ups).
    """
    if plan.workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, fn(job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(plan.workers, mp_context=context, initializer=_init_worker, initargs=(warm,)) as pool:
        pending: dict[Future, J] = {pool.submit(fn, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                job = pending.pop(future)
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                yield job, future.result()
