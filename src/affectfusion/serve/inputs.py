"""The one table of input kinds, and the limits on the work one input may cause.

Per kind (``text``, ``audio``, ``image``, ``video``, ``signal``, ``features``): the filename
suffixes and MIME types an upload may have, the ``affectfusion predict`` flag, the hint shown in
messages and help, the dashboard's label and an example value. The REST API, the dashboard, the
Predictor, batch tables and ``predict`` all read it; nothing else lists formats.

:class:`InputLimits` bounds the *decoded* work of one input (a 237 KB FLAC can hold 10 minutes of
8-channel audio, a 160 KB PNG 13000x13000 pixels): :mod:`affectfusion.serve.decode` checks them
from the file's header before anything is decoded in full, the same way in ``predict``, the API
(413 naming the limit) and the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from affectfusion.errors import AffectFusionError

MB = 2**20
# What a client sends when it does not know the type (curl -F for a .wav, many scripts): the
# filename's suffix decides then.
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class InputKind:
    """Everything the serving surfaces say about one kind of input."""

    name: str
    suffixes: tuple[str, ...]  # accepted filename suffixes (empty: not a file)
    content_types: Mapping[str, str]  # accepted MIME type -> the suffix it implies
    cli_flag: str | None  # `affectfusion predict` option
    hint: str  # what one value looks like, for messages and help
    label: str  # the dashboard's widget label
    example: str  # an example value for usage snippets

    @property
    def file_types(self) -> tuple[str, ...]:
        """Suffixes without the dot (upload widgets)."""
        return tuple(s.lstrip(".") for s in self.suffixes)


# Pillow formats a face image may have: the same list as extract/face.py's IMAGE_FORMATS (which the
# face reader enforces); kept here too so that this table imports nothing (the CLI reads it at start-up).
IMAGE_FORMATS = ("JPEG", "PNG", "BMP")
_IMAGE_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",)}
_IMAGE_TYPES = {
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "PNG": ("image/png",),
    "BMP": ("image/bmp", "image/x-bmp", "image/x-ms-bmp"),
}

INPUTS: dict[str, InputKind] = {
    "text": InputKind(
        "text", (), {}, "--text", "a non-empty string", "Text (transcript, post, utterance)", "I feel great today"
    ),
    "image": InputKind(
        "image",
        tuple(s for f in IMAGE_FORMATS for s in _IMAGE_SUFFIXES[f]),
        {t: _IMAGE_SUFFIXES[f][0] for f in IMAGE_FORMATS for t in _IMAGE_TYPES[f]},
        "--image",
        "a JPG/PNG/BMP file",
        "Face image (JPG/PNG/BMP)",
        "face.jpg",
    ),
    "audio": InputKind(
        "audio",
        (".wav", ".flac", ".ogg", ".mp3"),
        {
            "audio/wav": ".wav",
            "audio/x-wav": ".wav",
            "audio/wave": ".wav",
            "audio/vnd.wave": ".wav",
            "audio/flac": ".flac",
            "audio/x-flac": ".flac",
            "audio/ogg": ".ogg",
            "application/ogg": ".ogg",
            "audio/mpeg": ".mp3",
            "audio/mp3": ".mp3",
        },
        "--audio",
        "a WAV/FLAC/OGG/MP3 file",
        "Audio (WAV/FLAC/OGG/MP3)",
        "clip.wav",
    ),
    "video": InputKind(
        "video",
        (".mp4", ".avi", ".mov", ".mkv", ".webm"),
        {
            "video/mp4": ".mp4",
            "video/x-msvideo": ".avi",
            "video/avi": ".avi",
            "video/quicktime": ".mov",
            "video/x-matroska": ".mkv",
            "video/webm": ".webm",
        },
        "--video",
        "an MP4/AVI/MOV/MKV/WEBM file",
        "Video (MP4/AVI/MOV/MKV/WEBM)",
        "clip.mp4",
    ),
    "signal": InputKind(
        "signal",
        (".npz",),
        {"application/zip": ".npz", "application/x-zip-compressed": ".npz"},
        "--eeg",
        "a .npz file with arrays 'data' [channels, time] and 'sfreq'",
        "EEG (.npz with 'data' [channels, time] and 'sfreq')",
        "eeg.npz",
    ),
    "features": InputKind(
        "features",
        (".npy",),
        {"application/x-npy": ".npy", "application/npy": ".npy"},
        "--features",
        "a .npy file or array of shape [D] or [T, D]",
        "pre-extracted features (.npy)",
        "features.npy",
    ),
}
INPUT_KINDS = ("text", "audio", "image", "video", "signal")  # raw media (features are named by modality)
FILE_KINDS = tuple(k for k, v in INPUTS.items() if v.suffixes)
KIND_HINTS = {k: v.hint for k, v in INPUTS.items()}
SLOT_ORDER = tuple(INPUTS)  # text first, then media, then feature files


class InputRejected(AffectFusionError):
    """Bad input with the HTTP status that says why: 413 over a limit, 415 wrong type, 422 unusable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InputLimits:
    """Bounds on the work one input may cause, each with a default (``--limit NAME=VALUE`` in the CLI)."""

    max_text_chars: int = 20_000
    max_audio_seconds: float = 120.0
    max_audio_channels: int = 2
    max_audio_rate: int = 192_000
    max_image_pixels: int = 4096 * 4096  # decoded RGB: 48 MB; Pillow's own bomb limit is ~179 MP
    max_video_seconds: float = 120.0
    max_video_frames: int = 7_200
    max_feature_values: int = 4_000_000  # one .npy / JSON array: 16 MB of float32
    max_json_mb: float = 2.0  # the body of POST /predict/batch: parsed while holding the GIL, so kept small

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise AffectFusionError(f"input limit {f.name} must be > 0, got {getattr(self, f.name)}")

    @classmethod
    def parse(cls, items: list[str] | None) -> InputLimits:
        """Limits from ``NAME=VALUE`` strings (CLI options), the defaults for the rest."""
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
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


def file_types() -> dict[str, list[str]]:
    """Input kind -> accepted filename suffixes (what ``GET /info`` shows)."""
    return {k: list(v.suffixes) for k, v in INPUTS.items() if v.suffixes}
