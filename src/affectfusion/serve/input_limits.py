"""The limits on the work one input may cause (the input kinds themselves: :mod:`affectfusion.inputs`).

:class:`InputLimits` bounds the *decoded* work of one input (a 237 KB FLAC can hold 10 minutes of
8-channel audio, a 160 KB PNG 13000x13000 pixels): :mod:`affectfusion.serve.decode` checks them
from the file's header before anything is decoded in full, the same way in ``predict``, the API
(413 naming the limit) and the dashboard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from affectfusion.errors import AffectFusionError


class InputRejected(AffectFusionError):
    """Bad input with the HTTP status that says why: 413 over a limit, 415 wrong type, 422 unusable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Work(NamedTuple):
    """What one checked input will cost to decode, as its header says: seconds of media and image pixels."""

    seconds: float = 0.0
    pixels: int = 0


@dataclass(frozen=True)
class InputLimits:
    """Bounds on the work one input may cause, each with a default (``--limit NAME=VALUE`` in the CLI)."""

    max_text_chars: int = 20_000
    max_audio_seconds: float = 120.0
    max_audio_channels: int = 2
    max_audio_rate: int = 192_000
    max_image_pixels: int = 4096 * 4096  # decoded RGB: 48 MB; Pillow's own bomb limit is ~179 MP
    max_video_seconds: float = 120.0  # any track, from the header and again while decoding
    max_video_frames: int = 7_200
    max_video_pixels: int = 3840 * 2160  # one frame (4K UHD); frames are decoded scaled down in any case
    max_video_megapixels: float = 15_000.0  # frames x pixels of one video: 7,200 Full HD frames, 60 s of 4K
    max_feature_values: int = 4_000_000  # one .npy / JSON array: 16 MB of float32
    max_json_mb: float = 2.0  # the body of POST /predict/batch: parsed while holding the GIL, so kept small
    max_faces: int = 20  # faces one image may have when every face is predicted (counted before any is read)
    max_explain_seconds: float = 20.0  # explain: exact Shapley, else fewer sampled permutations, else 422
    max_request_media_seconds: float = 600.0  # audio + video of all files of one request, summed from headers
    max_request_pixels: int = 8 * 4096 * 4096  # images of all files of one request, summed from headers

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise AffectFusionError(f"input limit {f.name} must be > 0, got {getattr(self, f.name)}")

    @classmethod
    def parse(cls, items: list[str] | None) -> InputLimits:
        """Limits from ``NAME=VALUE`` strings (CLI options), the defaults for the rest."""
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}  # int or float, as the field is
        for item in items or []:
            name, _, raw = item.partition("=")
            name = name.strip().replace("-", "_")
            if name not in names or not raw:
                raise AffectFusionError(f"--limit expects NAME=VALUE with NAME one of {', '.join(names)}; got {item!r}")
            try:
                values[name] = int(raw) if names[name] == "int" else float(raw)
            except ValueError:
                raise AffectFusionError(f"--limit {name}: expected a number, got {raw!r}") from None
        return cls(**values)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
