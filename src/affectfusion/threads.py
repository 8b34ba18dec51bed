"""How many CPU threads one process's math should use: chosen on purpose, never torch's default.

Torch starts one intra-op thread per visible core. On a shared or busy machine that oversubscribes the
cores: on 2 cores with one other process, 2 demo epochs took 26.5 s with the default and 11.9 s with one
thread; three trainings side by side, 106 s against 24.7 s. ``auto`` therefore counts the cores this
process may really use (CPU affinity and the cgroup quota of a container), subtracts the load of the
other processes, and gives small models one thread (they gain nothing from more). An explicit number
wins, and so does ``OMP_NUM_THREADS`` when the user set it. Used by training, extraction and serving.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Threads = int | Literal["auto"]

# Parameters per intra-op thread worth having: the small heads trained here (the demo's cross-attention
# model has 210k) run batches too small to split across threads, so they get one.
PARAMS_PER_THREAD = 2_000_000


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.reason})"


def cpu_budget() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup (v2 or v1) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.floor(quota)) if quota else cores)


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU quota in cores, or None when there is none (or it cannot be read)."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def other_load() -> float:
    """Runnable processes other than this one: the larger of the 1-minute load average (lags behind) and
    the instantaneous count of running tasks (noisy), minus this process itself."""
    try:
        fields = Path("/proc/loadavg").read_text().split()
        running = int(fields[3].split("/")[0])
        load1 = float(fields[0])
    except (OSError, ValueError, IndexError):
        try:
            load1, running = os.getloadavg()[0], 0
        except (AttributeError, OSError):
            return 0.0
    return max(0.0, max(load1, float(running)) - 1.0)


def choose_threads(requested: Threads = "auto", n_parameters: int | None = None) -> ThreadChoice:
    """The intra-op thread count for this process. ``n_parameters`` (the model's size) caps ``auto``."""
    if requested != "auto":
        return ThreadChoice(int(requested), "set in the config")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    budget = cpu_budget()
    free = max(1, math.floor(budget - other_load() + 0.5))
    if n_parameters is not None:
        by_size = max(1, n_parameters // PARAMS_PER_THREAD)
        if by_size < free:
            return ThreadChoice(by_size, f"auto: a {n_parameters:,}-parameter model, {budget} cores")
    return ThreadChoice(free, f"auto: {budget} cores, {budget - free} busy with other work")


def apply_threads(requested: Threads = "auto", n_parameters: int | None = None) -> ThreadChoice:
    """Choose and set torch's intra-op thread count (torch is imported here: only callers that run
    torch math call this)."""
    import torch  # heavy: only the processes that do torch math pay for it

    choice = choose_threads(requested, n_parameters)
    torch.set_num_threads(choice.threads)
    return choice
