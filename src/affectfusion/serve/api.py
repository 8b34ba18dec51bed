"""REST API over a :class:`Predictor` (FastAPI): health, model info, single and batch prediction.

Any run folder :func:`load_predictor` takes is served the same way: a fusion run, a P3 specialists
output folder, or a P4 vision-language run (``kind: vlm``), which takes only ``image`` and adds the
answer it wrote and its parsed fields under ``generated`` in each prediction.

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

- ``GET /health`` -- liveness and the model's name.
- ``GET /info`` -- kind of run, tasks and classes, modalities (input kind, extractor provenance,
  feature dimension), accepted inputs, fusion, metrics per evaluated split, load time and upload
  limits; for a vision-language run also its base model, prompt, LoRA and generation settings.
- ``POST /predict`` -- one input as ``multipart/form-data``: a ``text`` field and file fields
  named by input kind (``audio``, ``image``, ``video``, ``signal``) or by modality, plus
  ``features_<modality>`` (``.npy``) for modalities trained on pre-extracted features; any
  subset of what the model takes. Optional ``id`` field.
- ``POST /predict/batch`` -- many inputs as JSON ``{"items": [{"id", "text", "features"}]}``
  (text and feature arrays only: a JSON batch never names files; a model that takes neither, such
  as a vision-language run, takes its images through ``/predict/batch/files``).
- ``POST /predict/batch/files`` -- many files of one kind as ``multipart/form-data``: a ``kind``
  field and repeated ``files`` fields.

Errors are JSON ``{"detail": "<message naming the field>"}``: 413 for a file or request over the
size limit, 415 for a file type or content type the field does not take, 422 for anything else the
model cannot use (a corrupt image, empty text, no inputs, an unknown field). Bad input never gives
a 500. In a batch, an item whose *content* is unusable gets its reason in its ``error`` field and
the rest is predicted (as in ``affectfusion predict --batch``); a malformed batch is rejected whole.

Uploads: the request body is counted as it streams in and reading stops at ``max_request_mb``
(a declared ``Content-Length`` over it is refused before reading); each file must also be within
``max_upload_mb`` (images also within P4's 50 MB, ``extract.face.MAX_IMAGE_BYTES``). Accepted
files are copied into a fresh temporary directory under server-chosen names
(``<n>_<kind><suffix>``, the suffix taken from an allow-list), which is deleted when the request
ends. The client's filename is only ever shown back in messages and ids, never used as a path.

Concurrency: the Predictor (a torch model plus extractors such as a TFLite interpreter and
openSMILE) is not thread-safe, so every call into it holds one lock (serialised, not
micro-batched). Requests are received, validated and written to disk concurrently; predictions
run one at a time. A batch request is one Predictor call, so batching happens inside a request,
not across requests.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import affectfusion
from affectfusion.errors import AffectFusionError
from affectfusion.extract.face import IMAGE_FORMATS, MAX_IMAGE_BYTES
from affectfusion.serve.predictor import KIND_HINTS, Prediction, RunPredictor, load_predictor

MB = 2**20
# What a client sends when it does not know the type (curl -F for a .wav, many scripts): the
# filename's suffix decides then.
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# Suffix and content type -> suffix, per image format of the P4 allow-list (IMAGE_FORMATS).
_IMAGE_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",)}
_IMAGE_TYPES = {
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "PNG": ("image/png",),
    "BMP": ("image/bmp", "image/x-bmp", "image/x-ms-bmp"),
}


@dataclass(frozen=True)
class UploadType:
    """The files one input kind takes: filename suffixes, and content types with the suffix each implies."""

    suffixes: tuple[str, ...]
    content_types: Mapping[str, str]


UPLOAD_TYPES: dict[str, UploadType] = {
    "image": UploadType(
        tuple(s for f in IMAGE_FORMATS for s in _IMAGE_SUFFIXES[f]),
        {t: _IMAGE_SUFFIXES[f][0] for f in IMAGE_FORMATS for t in _IMAGE_TYPES[f]},
    ),
    "audio": UploadType(
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
    ),
    "video": UploadType(
        (".mp4", ".avi", ".mov", ".mkv", ".webm"),
        {
            "video/mp4": ".mp4",
            "video/x-msvideo": ".avi",
            "video/avi": ".avi",
            "video/quicktime": ".mov",
            "video/x-matroska": ".mkv",
            "video/webm": ".webm",
        },
    ),
    "signal": UploadType((".npz",), {"application/zip": ".npz", "application/x-zip-compressed": ".npz"}),
    "features": UploadType((".npy",), {"application/x-npy": ".npy", "application/npy": ".npy"}),
}
FILE_KINDS = tuple(UPLOAD_TYPES)


class UploadRejected(AffectFusionError):
    """Bad input with the HTTP status that says why: 413 too large, 415 wrong type, 422 unusable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def display_name(filename: str | None) -> str:
    """The client's filename as shown back in messages and ids: last path part, printable, short."""
    if not filename:
        return ""
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:100]


def check_upload(
    label: str, kind: str, filename: str | None, content_type: str | None, size: int, max_bytes: int
) -> str:
    """The suffix to store an upload under, or :class:`UploadRejected` (415 type, 422 empty, 413 size).

    The suffix comes from the allow-list of ``kind``: the client's filename suffix if it is on it,
    else the one its content type implies. A declared content type that contradicts the kind is
    refused even when the suffix fits.
    """
    allowed = UPLOAD_TYPES[kind]
    expected = f"{KIND_HINTS[kind]} ({', '.join(allowed.suffixes)})"
    ctype = (content_type or "").split(";")[0].strip().lower()
    name = display_name(filename)
    suffix = Path(name).suffix.lower() if name else ""
    if suffix and suffix not in allowed.suffixes:
        raise UploadRejected(415, f"{label}: expected {expected}, got a {suffix} file")
    if ctype not in GENERIC_CONTENT_TYPES and ctype not in allowed.content_types:
        raise UploadRejected(415, f"{label}: content type {ctype} is not {expected}")
    if not suffix:
        suffix = allowed.content_types.get(ctype, "")
        if not suffix:
            raise UploadRejected(
                415, f"{label}: cannot tell the file type; send a filename ending in {', '.join(allowed.suffixes)}"
            )
    if size == 0:
        raise UploadRejected(422, f"{label}: the file is empty; expected {KIND_HINTS[kind]}")
    if size > max_bytes:
        raise UploadRejected(
            413, f"{label}: {size / MB:.1f} MB is over the {max_bytes / MB:g} MB limit for {kind} files"
        )
    return suffix


# -- request size limit -----------------------------------------------------------------------------


class BodySizeLimit:
    """ASGI middleware: refuse a body over ``max_bytes`` with 413, without reading past the limit.

    A declared ``Content-Length`` over the limit is answered before any of the body is read; a
    chunked or lying body is counted as it arrives and reading stops at the first chunk past the
    limit (the parser then unwinds with the 413), so a 2 GB upload costs at most the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def message(self) -> str:
        return (
            f"request body is over the {self.max_bytes / MB:g} MB limit; "
            "send fewer or smaller files (see GET /info for the limits)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b""))
        except ValueError:
            declared = None
        if declared is not None and declared > self.max_bytes:
            await JSONResponse({"detail": self.message()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.message())
            return message

        await self.app(scope, limited_receive, send)


# -- response models ------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    detail: str = Field(description="what was wrong, naming the field")


class HealthOut(BaseModel):
    status: str = Field(description="'ok' when the model is loaded and serving")
    model: str = Field(description="the run's config name")
    version: str = Field(description="affectfusion version")


class TaskInfo(BaseModel):
    name: str
    type: str = Field(description="classification, multilabel or regression")
    classes: list[str] | None = None


class ModalityInfo(BaseModel):
    input: str = Field(description="input kind that fills it: text, audio, image, video, signal or features")
    extractor: dict[str, Any] | None = Field(description="extractor name, version, options and package versions")
    dim: int | None = Field(
        description="feature dimension the model expects (null for a vision-language run: it reads the face crop)"
    )


class LimitsOut(BaseModel):
    max_upload_mb: float = Field(description="largest accepted file (images: also the P4 50 MB limit)")
    max_image_mb: float
    max_request_mb: float = Field(description="largest request body (all files and fields together)")
    max_batch: int = Field(description="most items in one batch request")
    file_types: dict[str, list[str]] = Field(description="input kind -> accepted filename suffixes")


class InfoOut(BaseModel):
    name: str
    kind: str = Field(
        description="classifier (a fusion run), specialists (P3: specialists, then fusion) or vlm (P4: "
        "a vision-language model that writes its answer; predictions carry it under `generated`)"
    )
    tasks: list[TaskInfo]
    modalities: dict[str, ModalityInfo]
    inputs: dict[str, list[str]] = Field(description="input kind -> the modalities it fills")
    fields: dict[str, str] = Field(description="POST /predict form field -> input kind")
    fusion: str | None = Field(description="fusion strategy (null for a vision-language run)")
    metrics: dict[str, dict[str, Any]] = Field(description="split -> metrics the run was evaluated with")
    load_seconds: float
    limits: LimitsOut
    vlm: dict[str, Any] | None = Field(
        None,
        description="vision-language run only: base_model_path, dtype, prompt, lora, classes, label_map, "
        "emotion_vector (the 6 emotions of its vector, in order), generation settings",
    )


class TaskOutput(BaseModel):
    label: str | None = Field(None, description="classification: the predicted class")
    labels: list[str] | None = Field(None, description="multilabel: the predicted classes")
    value: float | None = Field(None, description="regression: the predicted value")
    probabilities: dict[str, float] | None = Field(
        None,
        description="class -> probability (a vision-language run: its parsed 6-d emotion vector, emotion -> "
        "intensity in [0, 1], not a distribution)",
    )


class GeneratedOut(BaseModel):
    text: str = Field(description="the answer the model wrote")
    emotions: list[str] = Field(description="emotions named in it, strongest first")
    action_units: list[str] = Field(description="facial action units named in it (AU6, AU12, ...)")
    face_found: bool = Field(description="a face was detected (else the whole image was used)")
    parse_ok: bool = Field(description="every section of the answer was read")
    issues: list[str] = Field(description="what the parser could not read")


class PredictionOut(BaseModel):
    id: str
    tasks: dict[str, TaskOutput] = Field(description="task -> output (empty when error is set)")
    modality_weights: dict[str, float] = Field(description="fusion's weight per modality, where it has them")
    modalities_used: list[str]
    error: str | None = Field(None, description="batch only: why this item could not be predicted")
    generated: GeneratedOut | None = Field(
        None, description="vision-language run only: the generated answer and its parsed fields"
    )


class BatchOut(BaseModel):
    predictions: list[PredictionOut]
    count: int
    failed: int = Field(description="items with an error")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="echoed back; default: the item's position")
    text: str | None = Field(None, description="text input")
    features: dict[str, list[float] | list[list[float]]] | None = Field(
        None, description="modality trained on pre-extracted features -> array [D] or [T, D]"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "a file or the request is over the size limit"},
    415: {"model": ErrorOut, "description": "a file type or content type the field does not take"},
    422: {"model": ErrorOut, "description": "input the model cannot use (corrupt media, empty text, no input)"},
}


# -- the service behind the routes ----------------------------------------------------------------


@dataclass
class _Upload:
    key: str  # what the Predictor is given it under: input kind or modality name
    kind: str
    label: str  # how validation messages name it: field and client filename
    shown: str  # what replaces its temp path in the Predictor's messages
    file: UploadFile
    suffix: str


class _Service:
    """Validation, temporary files and the locked Predictor calls; the routes only parse and respond."""

    def __init__(self, predictor: RunPredictor, max_upload_mb: float, max_request_mb: float, max_batch: int) -> None:
        self.predictor = predictor
        self.lock = threading.Lock()
        self.max_upload = int(max_upload_mb * MB)
        self.max_request = int(max_request_mb * MB)
        self.max_batch = max_batch
        # POST /predict field -> (Predictor key, input kind)
        self.fields: dict[str, tuple[str, str]] = {}
        for kind in predictor.accepted_inputs:
            if kind != "features":
                self.fields[kind] = (kind, kind)
        for m in predictor.modalities:
            kind = predictor.input_kind(m)
            self.fields[f"features_{m}" if kind == "features" else m] = (m, kind)
        self.feature_modalities = predictor.accepted_inputs.get("features", [])
        self._info = self._make_info()

    def max_bytes(self, kind: str) -> int:
        return min(self.max_upload, MAX_IMAGE_BYTES) if kind == "image" else self.max_upload

    def _make_info(self) -> dict[str, Any]:
        info = self.predictor.info()  # every predictor says its kind: classifier, specialists or vlm
        info["inputs"] = self.predictor.accepted_inputs
        info["fields"] = {name: kind for name, (_, kind) in self.fields.items()}
        info["limits"] = {
            "max_upload_mb": self.max_upload / MB,
            "max_image_mb": self.max_bytes("image") / MB,
            "max_request_mb": self.max_request / MB,
            "max_batch": self.max_batch,
            "file_types": {k: list(t.suffixes) for k, t in UPLOAD_TYPES.items()},
        }
        return info

    def info(self) -> dict[str, Any]:
        return self._info

    def takes(self) -> str:
        return ", ".join(f"{name} ({KIND_HINTS[kind]})" for name, (_, kind) in self.fields.items())

    # -- parsing ---------------------------------------------------------------------------------

    def parse_single(self, form: FormData) -> tuple[str, dict[str, Any], list[_Upload]]:
        """The id, text values and checked uploads of one /predict form."""
        item_id = "input"
        values: dict[str, Any] = {}
        uploads: list[_Upload] = []
        seen: set[str] = set()
        for name, value in form.multi_items():
            if name in seen:
                raise UploadRejected(422, f"field {name!r} is given more than once; use /predict/batch for many inputs")
            seen.add(name)
            if name == "id":
                if not isinstance(value, str):
                    raise UploadRejected(422, "id: expected a form field, not a file")
                item_id = value.strip() or item_id
                continue
            if name not in self.fields:
                raise UploadRejected(422, f"unknown field {name!r}; this model takes: {self.takes()} (and id)")
            key, kind = self.fields[name]
            if kind == "text":
                if not isinstance(value, str):
                    raise UploadRejected(422, f"{name}: expected a text form field, not a file")
                if not value.strip():
                    raise UploadRejected(422, f"{name}: empty text; expected {KIND_HINTS['text']}")
                values[key] = value
                continue
            if isinstance(value, str):
                raise UploadRejected(422, f"{name}: expected a file upload ({KIND_HINTS[kind]}), got a text field")
            uploads.append(self._check(name, key, kind, value))
        if not values and not uploads:
            raise UploadRejected(422, f"no input given; this model takes: {self.takes()}")
        return item_id, values, uploads

    def _check(self, label: str, key: str, kind: str, file: UploadFile) -> _Upload:
        name = display_name(file.filename)
        label = f"{label} {name!r}" if name else label
        suffix = check_upload(label, kind, file.filename, file.content_type, _size(file), self.max_bytes(kind))
        return _Upload(key, kind, label, repr(name) if name else f"upload {label}", file, suffix)

    def parse_files(self, kind_field: str, files: list[UploadFile]) -> tuple[list[str], list[_Upload]]:
        """Ids and checked uploads of one /predict/batch/files form."""
        file_fields = [n for n, (_, k) in self.fields.items() if k != "text"]
        if kind_field not in file_fields:
            raise UploadRejected(
                422,
                f"kind: {kind_field!r} is not a file input of this model; "
                f"use one of {', '.join(file_fields) or '(none: this model takes text only)'}",
            )
        self._check_count(len(files))
        key, kind = self.fields[kind_field]
        uploads = [self._check(f"files[{i}]", key, kind, f) for i, f in enumerate(files)]
        ids = [display_name(f.filename) or str(i) for i, f in enumerate(files)]
        return ids, uploads

    def parse_batch(self, body: BatchIn) -> tuple[list[str], list[dict[str, Any]]]:
        """Ids and Predictor inputs of a JSON batch; malformed feature arrays reject the request."""
        self._check_count(len(body.items))
        ids, inputs = [], []
        for i, item in enumerate(body.items):
            ids.append(item.id if item.id is not None else str(i))
            d: dict[str, Any] = {}
            if item.text is not None:
                if "text" not in self.fields:
                    media = any(k not in ("text", "features") for _, k in self.fields.values())
                    files = "; send its files to /predict/batch/files" if media else ""
                    raise UploadRejected(
                        422, f"items[{i}].text: this model takes no text; it takes {self.takes()}{files}"
                    )
                d["text"] = item.text
            for m, values in (item.features or {}).items():
                if m not in self.feature_modalities:
                    named = ", ".join(self.feature_modalities) or "none: this model extracts its own features"
                    raise UploadRejected(422, f"items[{i}].features: {m!r} is not a features modality ({named})")
                try:
                    x = np.asarray(values, dtype=np.float32)
                except ValueError:
                    raise UploadRejected(422, f"items[{i}].features.{m}: rows of different lengths") from None
                dim = self.predictor.feature_dim(m)
                if x.size and x.shape[-1] != dim:
                    raise UploadRejected(
                        422, f"items[{i}].features.{m}: dimension {x.shape[-1]}, the model expects {dim}"
                    )
                d[m] = x
            inputs.append(d)
        return ids, inputs

    def _check_count(self, n: int) -> None:
        if n > self.max_batch:
            raise UploadRejected(413, f"{n} items is over the batch limit of {self.max_batch}; split the batch")
        if n == 0:
            raise UploadRejected(422, "the batch is empty")

    # -- prediction (called in a worker thread) --------------------------------------------------

    def predict(self, ids: list[str], inputs: list[dict[str, Any]], uploads: list[list[_Upload]]) -> list[Prediction]:
        """Write each item's uploads to a fresh temp dir, predict under the lock, delete the files.

        Error messages name the upload the way the client sent it, never the server's temp path.
        """
        with tempfile.TemporaryDirectory(prefix="affectfusion-upload-") as tmp:
            names: dict[str, str] = {}
            n = 0
            for item, item_uploads in zip(inputs, uploads, strict=True):
                for up in item_uploads:
                    path = Path(tmp) / f"{n}_{up.kind}{up.suffix}"
                    n += 1
                    up.file.file.seek(0)
                    with path.open("wb") as out:
                        shutil.copyfileobj(up.file.file, out, MB)
                    item[up.key] = str(path)
                    names[str(path)] = up.shown
            with self.lock:
                predictions = self.predictor.predict(inputs, ids)
        for p in predictions:
            if p.error:
                p.error = _scrub(p.error, names, tmp)
        return predictions


def _size(file: UploadFile) -> int:
    if file.size is not None:
        return file.size
    f = file.file
    pos = f.tell()
    f.seek(0, 2)
    size = f.tell()
    f.seek(pos)
    return size


def _scrub(message: str, names: Mapping[str, str], tmp: str) -> str:
    """Replace server temp paths in a message by the client's names for those uploads."""
    for path, label in sorted(names.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(path, label)
    return message.replace(tmp, "<upload>")


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's error list as one line: ``field: what was wrong`` per error."""
    parts = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            parts.append(f"body: not valid JSON ({detail} at character {err['loc'][-1]})")
            continue
        if "Expected UploadFile" in msg:
            msg = "expected a file upload (a file part with a filename), got a text field"
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
    return "; ".join(parts)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


# -- the app ----------------------------------------------------------------------------------------


def create_app(
    predictor_or_run_dir: RunPredictor | str | Path,
    max_upload_mb: float = 50,
    max_request_mb: float | None = None,
    max_batch: int = 64,
) -> FastAPI:
    """A FastAPI app serving one trained run, a specialists output folder or a vision-language run
    (anything :func:`load_predictor` takes).

    ``max_upload_mb`` bounds each file (images also by the P4 limit), ``max_request_mb`` the whole
    body (default ``4 * max_upload_mb + 1``: a text and up to four files at the limit),
    ``max_batch`` the items of one batch request.
    """
    if max_upload_mb <= 0 or max_batch < 1:
        raise AffectFusionError("max_upload_mb must be > 0 and max_batch >= 1")
    predictor = (
        load_predictor(predictor_or_run_dir) if isinstance(predictor_or_run_dir, str | Path) else predictor_or_run_dir
    )
    max_request_mb = max_request_mb if max_request_mb is not None else 4 * max_upload_mb + 1
    service = _Service(predictor, max_upload_mb, max_request_mb, max_batch)
    name = predictor.name
    app = FastAPI(
        title=f"AffectFusion: {name}",
        version=affectfusion.__version__,
        description=_description(service.takes()),
    )
    app.state.predictor = predictor
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=service.max_request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        path, ctype = request.url.path, _content_type(request)
        if path == "/predict/batch" and ctype != "application/json":
            return JSONResponse({"detail": f"{path} takes application/json; use /predict/batch/files for files"}, 415)
        if path in ("/predict", "/predict/batch/files") and ctype not in FORM_TYPES:
            return JSONResponse({"detail": f"{path} takes multipart/form-data (got {ctype or 'no content type'})"}, 415)
        return JSONResponse({"detail": _validation_message(exc)}, 422)

    @app.exception_handler(AffectFusionError)
    async def _user_error(request: Request, exc: AffectFusionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, getattr(exc, "status", 422))

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health", response_model=HealthOut)
    def health() -> dict[str, str]:
        """Liveness: the model is loaded."""
        return {"status": "ok", "model": name, "version": affectfusion.__version__}

    @app.get("/info", response_model=InfoOut)
    def info() -> dict[str, Any]:
        """Tasks, classes, modalities and their inputs and extractors, metrics, limits."""
        return service.info()

    def form_only(request: Request) -> None:
        empty = not _content_type(request) and request.headers.get("content-length", "0") == "0"
        if empty:
            raise UploadRejected(422, f"no input given; this model takes: {service.takes()}")
        if _content_type(request) not in FORM_TYPES:
            raise UploadRejected(
                415,
                f"{request.url.path} takes multipart/form-data (got {_content_type(request) or 'no content type'}); "
                "for JSON use /predict/batch",
            )

    @app.post(
        "/predict",
        response_model=PredictionOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )
    async def predict(
        request: Request,
        text: Annotated[str | None, Form(description=KIND_HINTS["text"])] = None,
        audio: Annotated[UploadFile | None, File(description=KIND_HINTS["audio"])] = None,
        image: Annotated[UploadFile | None, File(description=KIND_HINTS["image"])] = None,
        video: Annotated[UploadFile | None, File(description=KIND_HINTS["video"])] = None,
        signal: Annotated[UploadFile | None, File(description=KIND_HINTS["signal"])] = None,
        id: Annotated[str | None, Form(description="echoed back as the prediction's id")] = None,
    ) -> dict[str, Any]:
        """Predict one input: any subset of the model's inputs (see GET /info `fields`).

        Modalities trained on pre-extracted features take a `.npy` file in `features_<modality>`.
        An input the model cannot use is a 4xx with the reason.
        """
        form_only(request)
        item_id, values, uploads = service.parse_single(await request.form())
        (prediction,) = await run_in_threadpool(service.predict, [item_id], [values], [uploads])
        if prediction.error:
            raise UploadRejected(422, prediction.error)
        return prediction.to_dict()

    @app.post(
        "/predict/batch",
        response_model=BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )
    async def predict_batch(body: BatchIn) -> dict[str, Any]:
        """Predict many text (and feature-array) inputs in one model call.

        An item the model cannot use (empty text, no input) gets its reason in `error`; the rest
        is predicted.
        """
        ids, inputs = service.parse_batch(body)
        predictions = await run_in_threadpool(service.predict, ids, inputs, [[] for _ in inputs])
        return _batch_out(predictions)

    @app.post(
        "/predict/batch/files",
        response_model=BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )
    async def predict_batch_files(
        request: Request,
        kind: Annotated[str, Form(description="the field the files go to: audio, image, video, signal, ...")],
        files: Annotated[list[UploadFile], File(description="one file per item; its filename is the item's id")],
    ) -> dict[str, Any]:
        """Predict many files of one input kind in one model call.

        A file of the wrong type or size rejects the request; a file whose content cannot be used
        (e.g. a corrupt image) gets its reason in `error` and the rest is predicted.
        """
        form_only(request)
        ids, uploads = service.parse_files(kind, files)
        inputs: list[dict[str, Any]] = [{} for _ in uploads]
        predictions = await run_in_threadpool(service.predict, ids, inputs, [[u] for u in uploads])
        return _batch_out(predictions)

    return app


def _description(takes: str) -> str:
    """The OpenAPI description: this module's guide to endpoints, errors and uploads, and the model's inputs."""
    parts = (__doc__ or "").split("\n\n")[1:]
    return "\n\n".join(p for p in parts if not p.startswith("Concurrency:")) + f"\n\nThis model takes: {takes}."


def _batch_out(predictions: list[Prediction]) -> dict[str, Any]:
    return {
        "predictions": [p.to_dict() for p in predictions],
        "count": len(predictions),
        "failed": sum(p.error is not None for p in predictions),
    }
