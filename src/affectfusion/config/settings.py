"""Settings every kind of run shares (fusion, vision-language): where its torch math runs, on how many threads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"  # torch device names a config may give
# ``train.device`` of every run kind (fusion, vision-language): where its torch math runs.
DeviceSetting = Annotated[
    str, Field(pattern=DEVICE_PATTERN, description="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
]


def _check_threads(value: int | str) -> int | str:
    if value != "auto" and isinstance(value, int) and value < 1:
        raise ValueError(f"threads must be auto or a positive number, got {value}")
    return value


# CPU intra-op threads, for every kind of run: a positive count or "auto" (from the free cores).
ThreadsSetting = Annotated[int | Literal["auto"], AfterValidator(_check_threads)]
