"""The work behind the API's routes: checking uploads, parsing batches, predicting under the lock.

Routes only receive and answer. Everything that costs CPU or memory runs here, in a worker thread
(never on the event loop): JSON batch bodies are parsed here, uploads are written to a fresh
temporary directory under server-chosen names (``<n>_<kind><suffix>``, suffix from the allow-list
of :mod:`affectfusion.serve.input_limits`) and checked against the decoded-work limits from their
headers (:mod:`affectfusion.serve.decode`) with at most ``max_decodes`` at a time, *before* the
model lock is taken; then the Predictor runs under that lock. The client's filename is only ever
shown back in messages and ids, never used as a path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import starlette.datastructures
from fastapi import UploadFile
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from affectfusion.errors import ECHO_CHARS, echo
from affectfusion.extract.face import MAX_IMAGE_BYTES
from affectfusion.inputs import GENERIC_CONTENT_TYPES, INPUTS, KIND_HINTS, MB
from affectfusion.serve.api.limits import Gate
from affectfusion.serve.api.schemas import BatchIn, BatchItem, ConversationIn
from affectfusion.serve.api.uploads import UPLOAD_PREFIX
from affectfusion.serve.base import Prediction, RunPredictor
from affectfusion.serve.decode import add_work, as_features, check_file, check_text
from affectfusion.serve.input_limits import InputLimits, InputRejected, Work

BATCH = "/predict/batch"
Body = TypeVar("Body", bound=BaseModel)


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
    """The suffix to store an upload under, or :class:`InputRejected` (415 type, 422 empty, 413 size).

    The suffix comes from the allow-list of ``kind``: the client's filename suffix if it is on it,
    else the one its content type implies. A declared content type that contradicts the kind is
    refused even when the suffix fits.
    """
    allowed = INPUTS[kind]
    expected = f"{KIND_HINTS[kind]} ({', '.join(allowed.suffixes)})"
    ctype = (content_type or "").split(";")[0].strip().lower()
    name = display_name(filename)
    suffix = Path(name).suffix.lower() if name else ""
    if suffix and suffix not in allowed.suffixes:
        raise InputRejected(415, f"{label}: expected {expected}, got a {suffix} file")
    if ctype not in GENERIC_CONTENT_TYPES and ctype not in allowed.content_types:
        raise InputRejected(415, f"{label}: content type {ctype} is not {expected}")
    if not suffix:
        suffix = allowed.content_types.get(ctype, "")
        if not suffix:
            raise InputRejected(
                415, f"{label}: cannot tell the file type; send a filename ending in {', '.join(allowed.suffixes)}"
            )
    if size == 0:
        raise InputRejected(422, f"{label}: the file is empty; expected {KIND_HINTS[kind]}")
    if size > max_bytes:
        raise InputRejected(
            413, f"{label}: {size / MB:.1f} MB is over the {max_bytes / MB:g} MB limit for {kind} files"
        )
    return suffix


ALL_FACES = "all_faces"  # /predict flag (form field or query): one prediction per face in the image


def validation_message(errors: list[Any]) -> str:
    """Pydantic's / FastAPI's error list as one line: ``field: what was wrong`` per error."""
    parts = []
    for err in errors:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            at = f" at character {err['loc'][-1]}" if err.get("loc") else ""
            parts.append(f"body: not valid JSON ({detail}{at})")
            continue
        if "Expected UploadFile" in msg:
            msg = "expected a file upload (a file part with a filename), got a text field"
        loc = [str(p) if len(str(p)) <= ECHO_CHARS else echo(str(p)) for p in err.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
    return "; ".join(parts)


@dataclass
class Upload:
    key: str  # what the Predictor is given it under: input kind or modality name
    kind: str
    label: str  # how validation messages name it: field and client filename
    shown: str  # what replaces its temp path in the Predictor's messages
    file: starlette.datastructures.UploadFile  # form fields hold starlette's; FastAPI's subclasses it
    suffix: str


class Service:
    """Validation, temporary files and the gated Predictor calls; the routes only parse and respond."""

    def __init__(
        self,
        predictor: RunPredictor,
        max_upload_mb: float,
        max_request_mb: float,
        max_batch: int,
        gate: Gate,
    ) -> None:
        self.predictor = predictor
        self.limits: InputLimits = predictor.limits
        self.gate = gate
        self.max_upload = int(max_upload_mb * MB)
        self.max_request = int(max_request_mb * MB)
        self.max_json = int(self.limits.max_json_mb * MB)
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

    def max_bytes(self, kind: str) -> int:
        return min(self.max_upload, MAX_IMAGE_BYTES) if kind == "image" else self.max_upload

    def takes(self) -> str:
        return ", ".join(f"{name} ({KIND_HINTS[kind]})" for name, (_, kind) in self.fields.items())

    @property
    def takes_text(self) -> bool:
        return any(kind == "text" for _, kind in self.fields.values())

    # -- parsing (cheap checks, on the event loop) ------------------------------------------------

    def parse_single(self, form: FormData) -> tuple[str, dict[str, Any], list[Upload]]:
        """The id, text values and checked uploads of one /predict form."""
        item_id = "input"
        values: dict[str, Any] = {}
        uploads: list[Upload] = []
        seen: set[str] = set()
        for name, value in form.multi_items():
            if name in seen:
                raise InputRejected(
                    422, f"field {echo(name)} is given more than once; use /predict/batch for many inputs"
                )
            seen.add(name)
            if name == ALL_FACES:  # read by the route (a flag, no input)
                continue
            if name == "id":
                if not isinstance(value, str):
                    raise InputRejected(422, "id: expected a form field, not a file")
                item_id = value.strip() or item_id
                continue
            if name not in self.fields:
                raise InputRejected(422, f"unknown field {echo(name)}; this model takes: {self.takes()} (and id)")
            key, kind = self.fields[name]
            if kind == "text":
                if not isinstance(value, str):
                    raise InputRejected(422, f"{name}: expected a text form field, not a file")
                if not value.strip():
                    raise InputRejected(422, f"{name}: empty text; expected {KIND_HINTS['text']}")
                check_text(value, self.limits, name)
                values[key] = value
                continue
            if isinstance(value, str):
                raise InputRejected(422, f"{name}: expected a file upload ({KIND_HINTS[kind]}), got a text field")
            uploads.append(self._check(name, key, kind, value))
        if not values and not uploads:
            raise InputRejected(422, f"no input given; this model takes: {self.takes()}")
        return item_id, values, uploads

    def _check(self, label: str, key: str, kind: str, file: starlette.datastructures.UploadFile) -> Upload:
        name = display_name(file.filename)
        label = f"{label} {name!r}" if name else label
        suffix = check_upload(label, kind, file.filename, file.content_type, _size(file), self.max_bytes(kind))
        return Upload(key, kind, label, repr(name) if name else f"upload {label}", file, suffix)

    def parse_files(self, kind_field: str, files: list[UploadFile]) -> tuple[list[str], list[Upload]]:
        """Ids and checked uploads of one /predict/batch/files form."""
        file_fields = [n for n, (_, k) in self.fields.items() if k != "text"]
        if kind_field not in file_fields:
            raise InputRejected(
                422,
                f"kind: {echo(kind_field)} is not a file input of this model; "
                f"use one of {', '.join(file_fields) or '(none: this model takes text only)'}",
            )
        self._check_count(len(files))
        key, kind = self.fields[kind_field]
        uploads = [self._check(f"files[{i}]", key, kind, f) for i, f in enumerate(files)]
        ids = [display_name(f.filename) or str(i) for i, f in enumerate(files)]
        return ids, uploads

    # -- parsing a JSON batch (in a worker thread: a big body must not stall the event loop) -------

    def parse_batch(self, body: bytes) -> tuple[list[str], list[dict[str, Any]]]:
        """Ids and Predictor inputs of a JSON batch body; a malformed batch is rejected whole."""
        with self.gate.decoding():
            batch = _parse_json(BatchIn, body)
            return self._batch_inputs(batch.items, "items")

    def parse_conversation(self, body: bytes) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
        """Ids, Predictor inputs and speakers of a JSON conversation body (its turns in order)."""
        if not self.predictor.supports_conversation:
            raise InputRejected(422, f"a {self.predictor.info()['kind']} run reads no conversations; use {BATCH}")
        with self.gate.decoding():
            conversation = _parse_json(ConversationIn, body)
            ids, inputs = self._batch_inputs(conversation.turns, "turns")
            return ids, inputs, [turn.speaker for turn in conversation.turns]

    def _batch_inputs(self, items: Sequence[BatchItem], field: str) -> tuple[list[str], list[dict[str, Any]]]:
        self._check_count(len(items))
        ids, inputs = [], []
        for i, item in enumerate(items):
            ids.append(item.id if item.id is not None else str(i))
            d: dict[str, Any] = {}
            if item.text is not None:
                if not self.takes_text:
                    media = any(k not in ("text", "features") for _, k in self.fields.values())
                    files = "; send its files to /predict/batch/files" if media else ""
                    raise InputRejected(
                        422, f"{field}[{i}].text: this model takes no text; it takes {self.takes()}{files}"
                    )
                check_text(item.text, self.limits, f"{field}[{i}].text")
                d["text"] = item.text
            for m, values in (item.features or {}).items():
                label = f"{field}[{i}].features.{m}"
                if m not in self.feature_modalities:
                    named = ", ".join(self.feature_modalities) or "none: this model extracts its own features"
                    raise InputRejected(422, f"{field}[{i}].features: {echo(m)} is not a features modality ({named})")
                try:
                    x = as_features(values, self.limits, label)
                except ValueError:
                    raise InputRejected(422, f"{label}: rows of different lengths") from None
                dim = self.predictor.feature_dim(m)
                if x.shape[-1] != dim:
                    raise InputRejected(422, f"{label}: dimension {x.shape[-1]}, the model expects {dim}")
                d[m] = x
            inputs.append(d)
        return ids, inputs

    def _check_count(self, n: int) -> None:
        if n > self.max_batch:
            raise InputRejected(413, f"{n} items is over the batch limit of {self.max_batch}; split the batch")
        if n == 0:
            raise InputRejected(422, "the batch is empty")

    # -- prediction (in a worker thread) -----------------------------------------------------------

    def predict_conversation(
        self, ids: list[str], inputs: list[dict[str, Any]], speakers: list[str | None]
    ) -> list[Prediction]:
        """One conversation's utterances read together (a run with a context stage uses the other turns)."""
        with self.gate.predicting():
            return self.predictor.predict_conversation(inputs, ids, speakers)

    def predict(
        self,
        ids: list[str],
        inputs: list[dict[str, Any]],
        uploads: list[list[Upload]],
        explain: bool = False,
        all_faces: bool = False,
    ) -> list[Prediction]:
        """Write each item's uploads to a fresh temp dir, check their headers, predict under the lock.

        A file over a decoded-work limit rejects a single request (413 naming the limit); in a batch
        it is that item's error; all files together over ``max_request_*`` reject the request. Items
        with files are predicted one per turn of the model lock. Messages name an upload as the client
        sent it, never by its temp path. ``all_faces`` (one item): a prediction per face in its image.
        """
        single = len(inputs) == 1
        refused: dict[int, str] = {}
        total = Work()
        with tempfile.TemporaryDirectory(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-") as tmp:
            names: dict[str, str] = {}
            n = 0
            for k, (item, item_uploads) in enumerate(zip(inputs, uploads, strict=True)):
                for up in item_uploads:
                    path = Path(tmp) / f"{n}_{up.kind}{up.suffix}"
                    n += 1
                    up.file.file.seek(0)
                    with path.open("wb") as out:
                        shutil.copyfileobj(up.file.file, out, MB)
                    item[up.key] = str(path)
                    names[str(path)] = up.shown
                    try:
                        with self.gate.decoding():
                            work = check_file(up.kind, path, self.limits, up.label)
                    except InputRejected as e:
                        message = _scrub(str(e), names, tmp)
                        if single:
                            raise InputRejected(e.status, message) from None
                        refused[k] = message
                        continue
                    total = add_work(total, work, self.limits)
            todo = [k for k in range(len(inputs)) if k not in refused]
            predictions = [Prediction(id=ids[k], error=refused.get(k)) for k in range(len(inputs))]
            if explain and todo and not self.predictor.supports_explain:
                raise InputRejected(422, "explain needs a fusion run (modality attribution)")
            if todo and all_faces:
                with self.gate.predicting():
                    predictions = self.predictor.predict_faces(inputs[todo[0]], ids[todo[0]], explain)
            elif todo:
                # Files are decoded one item per turn of the model lock, so other requests interleave.
                for group in [[k] for k in todo] if any(uploads) else [todo]:
                    group_inputs, group_ids = [inputs[k] for k in group], [ids[k] for k in group]
                    with self.gate.predicting():
                        done = self.predictor.predict(group_inputs, group_ids, explain)
                    for k, p in zip(group, done, strict=True):
                        predictions[k] = p
        for p in predictions:
            if p.error:
                p.error = _scrub(p.error, names, tmp)
        return predictions


def _parse_json(model: type[Body], body: bytes) -> Body:
    """``body`` validated as ``model`` in one pass of pydantic-core (the GIL is held for less time than
    json.loads + validation); anything malformed is a 422 naming the field."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected(422, "body: not valid JSON (it must be UTF-8 text)") from None
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise InputRejected(422, validation_message(e.errors())) from None


def _size(file: starlette.datastructures.UploadFile) -> int:
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
