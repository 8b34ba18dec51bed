"""Which device and numeric precision torch work runs on: one resolution for training, extraction and serving.

``auto`` is CUDA when torch sees a GPU, else Apple's MPS, else the CPU, so nothing in the default path
needs a GPU. Mixed precision is autocast (the weights stay float32, so checkpoints are the same on every
device and a run trained on a GPU loads on a CPU-only machine); ``fp16`` adds a gradient scaler.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Literal

import torch

from affectfusion.config import DEVICE_PATTERN
from affectfusion.errors import AffectFusionError

Precision = Literal["fp32", "bf16", "fp16"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto", where: str = "train.device", local_rank: int | None = None) -> torch.device:
    """The torch device for ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a clear error when it is absent.

    Under torchrun (``local_rank`` given) ``auto`` and ``cuda`` mean this rank's own GPU.
    """
    if not re.match(DEVICE_PATTERN, name):
        raise AffectFusionError(f"{where}: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AffectFusionError(
                f"{where} is {name!r}, but this torch ({torch.__version__}) sees no CUDA GPU; use cpu or auto"
            )
        index = int(name.partition(":")[2] or (local_rank or 0))
        if index >= torch.cuda.device_count():
            raise AffectFusionError(f"{where} is {name!r}, but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device("cuda", index)
    if name == "mps" and not _mps_available():
        raise AffectFusionError(f"{where} is 'mps', but this torch sees no Apple MPS device; use cpu or auto")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_precision(device: torch.device, precision: Precision, where: str = "train.precision") -> None:
    """Refuse a precision the device cannot run (bf16 on a pre-Ampere GPU, fp16 on MPS autocast)."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise AffectFusionError(f"{where} is bf16, but {torch.cuda.get_device_name(device)} has no bf16; use fp16")
    if precision != "fp32" and device.type == "mps" and precision != "fp16":
        raise AffectFusionError(f"{where} is {precision}; on mps use fp16 or fp32")


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Mixed-precision autocast for ``bf16``/``fp16`` (CPU autocast too); a no-op for ``fp32``."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler | None:
    """Loss scaling keeps small fp16 gradients from flushing to zero; bf16 and fp32 need none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def describe(device: torch.device) -> str:
    """Human-readable device name for logs and run metadata."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
