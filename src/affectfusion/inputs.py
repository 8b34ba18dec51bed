"""The one table of input kinds: what each kind of input looks like, for every part that reads inputs.

Per kind (``text``, ``audio``, ``image``, ``video``, ``signal``, ``features``): the filename
suffixes and MIME types a file may have, the ``affectfusion predict`` flag, the hint shown in
messages and help, the dashboard's label and an example value. Dataset adapters, ``init``, the
face reader, the REST API, the dashboard, the Predictor, batch tables and ``predict`` all read it;
nothing else lists formats. It imports nothing, so the CLI reads it at start-up for free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

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


# Pillow formats a face image may have (the face reader checks the decoded format against it).
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
# Raw media (features are named by modality): the type of an extractor's ``kind``, and its values.
MediaKind = Literal["text", "audio", "image", "video", "signal"]
INPUT_KINDS: tuple[MediaKind, ...] = get_args(MediaKind)
FILE_KINDS = tuple(k for k, v in INPUTS.items() if v.suffixes)
KIND_HINTS = {k: v.hint for k, v in INPUTS.items()}
SLOT_ORDER = tuple(INPUTS)  # text first, then media, then feature files


def file_types() -> dict[str, list[str]]:
    """Input kind -> accepted filename suffixes (what ``GET /info`` shows)."""
    return {k: list(v.suffixes) for k, v in INPUTS.items() if v.suffixes}
