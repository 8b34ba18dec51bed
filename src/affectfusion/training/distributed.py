"""Multi-process data parallel training via ``torchrun`` (PyTorch DDP: NCCL on CUDA, gloo on CPU).

The same ``affectfusion train`` command works under ``torchrun --nproc-per-node N``: torchrun sets
``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; every rank trains on its shard (on GPU ``LOCAL_RANK`` when the
run is on CUDA), gradients are averaged by DDP, and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def uses_cuda(device: str) -> bool:
    """Whether a ``train.device`` setting puts this process on a GPU (``auto`` does when CUDA is there)."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def backend_for(device: str) -> str:
    """NCCL for GPU ranks (it runs collectives on the GPU), gloo for CPU ranks."""
    return "nccl" if uses_cuda(device) and dist.is_nccl_available() else "gloo"


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the torchrun process group (no-op in a single process); a GPU rank binds its LOCAL_RANK GPU first."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend_for(device)
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
