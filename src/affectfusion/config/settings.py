"""Settings every kind of run shares (fusion, vision-language): where its torch math runs, on how many threads,
and what a face pipeline does with an image without a face."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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


def no_face_alias(data: Any, section: str = "") -> Any:
    """Options as given, with the old ``on_no_face: full_image|error`` read as ``no_face`` (trained runs keep
    the config they were trained with)."""
    if not isinstance(data, dict) or "on_no_face" not in data:
        return data
    data = dict(data)
    old = data.pop("on_no_face")
    if "no_face" in data:
        raise ValueError(f"give {section}no_face only ({section}on_no_face is its old name)")
    data["no_face"] = {"full_image": "whole_frame"}.get(old, old)
    return data
