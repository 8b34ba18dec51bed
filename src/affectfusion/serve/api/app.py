"""REST API over a :class:`RunPredictor` (FastAPI): health, model info, single and batch prediction.

Any run folder :func:`load_predictor` takes is served the same way: a fusion run, a P3 specialists
output folder, a P4 vision-language run (``kind: vlm``: takes only ``image`` and adds the answer it
wrote and its parsed fields under ``generated``), or a registered plugin kind.

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``, served offline):

- ``GET /health`` -- liveness and the model's name.
- ``GET /info`` -- kind of run, tasks and classes, modalities (input kind, extractor provenance,
  feature dimension), accepted inputs, fusion, metrics per evaluated split, load time and limits.
- ``POST /predict`` -- one input as ``multipart/form-data``: one field per input the model takes
  (``text``, files named by input kind or modality, ``features_<modality>`` ``.npy`` files for
  modalities trained on pre-extracted features); any subset. Optional ``id`` field.
- ``POST /predict/batch`` -- many inputs as JSON ``{"items": [{"id", "text", "features"}]}`` (text
  and feature arrays only: a JSON batch never names files).
- ``POST /predict/batch/files`` -- many files of one kind as ``multipart/form-data``: a ``kind``
  field and repeated ``files`` fields.
- ``POST /predict/conversation`` -- one conversation as JSON ``{"turns": [{"id", "speaker", "text",
  "features"}]}``, its utterances in order: a run with a context stage reads each with the others
  (a causal one: with the earlier ones), and speaker embeddings use ``speaker`` (fusion runs only).

Errors are JSON ``{"detail": "<message naming the field>"}``: 413 for a file, request or decoded
input over a limit (the message names the limit), 415 for a file type or content type the field
does not take, 422 for anything else the model cannot use (a corrupt image, empty text, an array
of strings, an output that is not finite), 408 for a client that stopped sending or sent its request
too slowly, 429 for a client address with too many connections open (``serve api``), 503 with
``Retry-After`` when the queue is full or the model stays busy too long. Bad input never gives a
500. In a batch, an item whose *content* is unusable gets its reason in its ``error`` field and the
rest is predicted; a malformed batch is rejected whole.

Limits: the body is counted as it streams in and reading stops at ``max_request_mb`` (JSON batch
bodies: ``max_json_mb``); each file must be within ``max_upload_mb``; and each input within the
decoded-work limits of :class:`~affectfusion.serve.input_limits.InputLimits` (audio seconds and channels,
image pixels, video seconds and frames, text characters, feature values), checked from headers.

Concurrency: the Predictor is not thread-safe, so every call into it holds one lock. Parsing JSON,
writing uploads and checking headers run in worker threads outside the lock (at most
``max_decodes`` at once), so ``/health`` and small requests are answered while a big one is read.
"""

import inspect
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import affectfusion
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import KIND_HINTS, file_types
from affectfusion.serve.api.docs import markdown, markdown_descriptions
from affectfusion.serve.api.limits import Gate, RequestLimits
from affectfusion.serve.api.schemas import (
    ERROR_RESPONSES,
    BatchOut,
    HealthOut,
    InfoOut,
    PredictionOut,
    batch_model,
    conversation_model,
)
from affectfusion.serve.api.service import ALL_FACES, Service, validation_message
from affectfusion.serve.api.uploads import remove_stale_uploads
from affectfusion.serve.base import Prediction, RunPredictor
from affectfusion.serve.input_limits import InputLimits, InputRejected
from affectfusion.serve.predictor import load_predictor

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
BATCH_PATH = "/predict/batch"
CONVERSATION_PATH = "/predict/conversation"
JSON_PATHS = (BATCH_PATH, CONVERSATION_PATH)


def json_body(schema: str) -> dict[str, Any]:
    """OpenAPI for a route that reads its JSON body itself (to bound it before parsing): the named schema."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def create_app(
    predictor_or_run_dir: RunPredictor | str | Path,
    max_upload_mb: float = 50,
    max_request_mb: float | None = None,
    max_batch: int = 64,
    limits: InputLimits | None = None,
    max_pending: int = 64,
    max_decodes: int = 2,
    request_timeout_s: float = 60.0,
    idle_timeout_s: float = 30.0,
    read_timeout_s: float = 120.0,
) -> FastAPI:
    """A FastAPI app serving one run (anything :func:`load_predictor` takes).

    ``max_upload_mb`` bounds each file (images also by the P4 limit), ``max_request_mb`` the whole
    body (default ``4 * max_upload_mb + 1``), ``max_batch`` the items of one batch request, ``limits``
    the decoded work per input (default: the predictor's). At most ``max_pending`` prediction
    requests are admitted, ``max_decodes`` uploads are checked at once, a request waits at most
    ``request_timeout_s`` for the model, and a client silent for ``idle_timeout_s``, or whose request
    (headers and body) is not in within ``read_timeout_s``, is cut off.
    """
    if max_upload_mb <= 0 or max_batch < 1 or max_pending < 1 or max_decodes < 1:
        raise AffectFusionError("max_upload_mb must be > 0; max_batch, max_pending and max_decodes >= 1")
    if request_timeout_s <= 0 or idle_timeout_s <= 0 or read_timeout_s <= 0:
        raise AffectFusionError("request_timeout_s, idle_timeout_s and read_timeout_s must be > 0")
    remove_stale_uploads()  # left by a server killed mid-request
    predictor = (
        load_predictor(predictor_or_run_dir) if isinstance(predictor_or_run_dir, str | Path) else predictor_or_run_dir
    )
    if limits is not None:
        predictor.limits = limits
    max_request_mb = max_request_mb if max_request_mb is not None else 4 * max_upload_mb + 1
    service = Service(predictor, max_upload_mb, max_request_mb, max_batch, Gate(max_decodes, request_timeout_s))
    info = _info(service, max_pending, request_timeout_s, idle_timeout_s, read_timeout_s)
    name = predictor.name
    app = FastAPIOffline(title=f"AffectFusion: {name}", version=affectfusion.__version__)
    app.state.predictor = predictor
    app.state.service = service
    app.add_middleware(
        RequestLimits,
        max_bytes=service.max_request,
        path_max_bytes={path: min(service.max_json, service.max_request) for path in JSON_PATHS},
        idle_timeout_s=idle_timeout_s,
        max_pending=max_pending,
        read_timeout_s=read_timeout_s,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        path, ctype = request.url.path, _content_type(request)
        if path in ("/predict", "/predict/batch/files") and ctype not in FORM_TYPES:
            return JSONResponse({"detail": f"{path} takes multipart/form-data (got {ctype or 'no content type'})"}, 415)
        return JSONResponse({"detail": validation_message(list(exc.errors()))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # the body could not be parsed at all (broken multipart framing)
            ctype = _content_type(request) or "no content type"
            return JSONResponse({"detail": f"body: not a readable {ctype} body ({exc.detail})"}, 422)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(AffectFusionError)
    async def _user_error(request: Request, exc: AffectFusionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, getattr(exc, "status", 422), headers=getattr(exc, "headers", None))

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health", response_model=HealthOut)
    def health() -> dict[str, str]:
        """Liveness: the model is loaded."""
        return {"status": "ok", "model": name, "version": affectfusion.__version__}

    @app.get("/info", response_model=InfoOut)
    def get_info() -> dict[str, Any]:
        """Tasks, classes, modalities and their inputs and extractors, metrics, limits."""
        return info

    def form_only(request: Request) -> None:
        empty = not _content_type(request) and request.headers.get("content-length", "0") == "0"
        if empty:
            raise InputRejected(422, f"no input given; this model takes: {service.takes()}")
        if _content_type(request) not in FORM_TYPES:
            raise InputRejected(
                415,
                f"{request.url.path} takes multipart/form-data (got {_content_type(request) or 'no content type'}); "
                "for JSON use /predict/batch",
            )

    async def predict(request: Request, **_: Any) -> dict[str, Any]:
        form_only(request)
        form = await request.form()
        item_id, values, uploads = service.parse_single(form)
        explain = _flag(request.query_params.get("explain"))  # Shapley per modality
        all_faces = _flag(request.query_params.get(ALL_FACES) or form.get(ALL_FACES))
        predictions = await run_in_threadpool(service.predict, [item_id], [values], [uploads], explain, all_faces)
        if all(p.error for p in predictions):
            raise InputRejected(422, predictions[0].error or "")
        return _batch_out(predictions) if all_faces else predictions[0].to_dict()

    predict.__doc__ = (
        "Predict one input: any subset of the model's inputs (see GET /info `fields`).\n\n"
        f"This model takes: {service.takes()}. An input the model cannot use is a 4xx with the reason "
        "(an image without a face under the run's `no_face: error`: 422). "
        "`?explain=true` adds each modality's Shapley attribution (a fusion run). `all_faces=true` (query or "
        "form field) predicts every face in the image (at most `max_faces`): the answer is then a batch, one "
        "prediction per face with its index and box under `faces`."
    )
    predict.__signature__ = _form_signature(service)  # type: ignore[attr-defined]  # FastAPI reads the form from it
    app.post(
        "/predict",
        response_model=PredictionOut | BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )(predict)

    @app.post(
        BATCH_PATH,
        response_model=BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        openapi_extra=json_body("BatchIn"),
    )
    async def predict_batch(request: Request) -> dict[str, Any]:
        """Predict many text (and feature-array) inputs in one model call.

        An item the model cannot use (empty text, no input, a non-finite output) gets its reason in
        `error`; the rest is predicted.
        """
        if _content_type(request) != "application/json":
            raise InputRejected(415, f"{BATCH_PATH} takes application/json; use /predict/batch/files for files")
        ids, inputs = await run_in_threadpool(service.parse_batch, await request.body())
        predictions = await run_in_threadpool(service.predict, ids, inputs, [[] for _ in inputs])
        return _batch_out(predictions)

    reads_conversations = bool(getattr(predictor, "reads_conversations", False))  # a run with a context stage

    @app.post(
        CONVERSATION_PATH,
        response_model=BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        include_in_schema=reads_conversations,
        openapi_extra=json_body("ConversationIn"),
    )
    async def predict_conversation(request: Request) -> dict[str, Any]:
        """Predict every utterance of one conversation, its turns in order (text and feature arrays).

        A run with a context stage reads each utterance with the conversation's other turns (a causal
        one: the earlier turns only) and, with speaker embeddings, who said it. A turn the model cannot
        use gets its reason in `error` and is left out of the others' context.
        """
        if not reads_conversations:
            raise InputRejected(
                404, f"{name} has no context stage (model.context): predict utterances with /predict or {BATCH_PATH}"
            )
        if _content_type(request) != "application/json":
            raise InputRejected(415, f"{CONVERSATION_PATH} takes application/json")
        ids, inputs, speakers = await run_in_threadpool(service.parse_conversation, await request.body())
        predictions = await run_in_threadpool(service.predict_conversation, ids, inputs, speakers)
        return _batch_out(predictions)

    file_fields = [n for n, (_, k) in service.fields.items() if k != "text"]

    @app.post(
        "/predict/batch/files",
        response_model=BatchOut,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        include_in_schema=bool(file_fields),
    )
    async def predict_batch_files(
        request: Request,
        kind: Annotated[str, Form(description="the field the files go to", json_schema_extra={"enum": file_fields})],
        files: Annotated[list[UploadFile], File(description="one file per item; its filename is the item's id")],
    ) -> dict[str, Any]:
        """Predict many files of one input kind in one model call.

        A file of the wrong type or size rejects the request; a file whose content cannot be used
        (e.g. a corrupt image, or one over a decoded-work limit) gets its reason in `error` and the
        rest is predicted.
        """
        form_only(request)
        ids, uploads = service.parse_files(kind, files)
        inputs: list[dict[str, Any]] = [{} for _ in uploads]
        predictions = await run_in_threadpool(service.predict, ids, inputs, [[u] for u in uploads])
        return _batch_out(predictions)

    item_fields = (
        service.takes_text,
        {m: predictor.feature_dim(m) for m in service.feature_modalities},
        predictor.limits,
        max_batch,
    )
    json_bodies = [batch_model(*item_fields)] + ([conversation_model(*item_fields)] if reads_conversations else [])

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus this run's JSON body models (the routes parse their bodies themselves)."""
        if app.openapi_schema is None:
            description = _description(service.takes(), reads_conversations)
            schema = get_openapi(title=app.title, version=app.version, description=description, routes=app.routes)
            for body in json_bodies:
                models = body.model_json_schema(ref_template="#/components/schemas/{model}")
                schema["components"]["schemas"].update(models.pop("$defs", {}))
                schema["components"]["schemas"][body.__name__] = models
            app.openapi_schema = markdown_descriptions(schema)  # /docs renders markdown, not reST
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
    return app


def _form_signature(service: Service) -> inspect.Signature:
    """``/predict``'s parameters: exactly this run's form fields, so its OpenAPI form is the truth."""
    params = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    for name, (key, kind) in service.fields.items():
        what = KIND_HINTS[kind] + (f" for {key}" if key != kind else "")
        annotation: Any = (
            Annotated[
                str | None, Form(description=what, json_schema_extra={"maxLength": service.limits.max_text_chars})
            ]
            if kind == "text"
            else Annotated[UploadFile | None, File(description=what)]
        )
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    id_field = Annotated[str | None, Form(description="echoed back as the prediction's id")]
    params.append(inspect.Parameter("id", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=id_field))
    if any(hasattr(ex, "extract_each_face") for ex in service.predictor.extractors.values()):
        faces_field = Annotated[bool | None, Form(description="true: one prediction per face in the image")]
        params.append(
            inspect.Parameter(ALL_FACES, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=faces_field)
        )
    return inspect.Signature(params)


def _info(
    service: Service, max_pending: int, request_timeout_s: float, idle_timeout_s: float, read_timeout_s: float
) -> dict[str, Any]:
    predictor = service.predictor
    info = predictor.info()  # every predictor says its run kind: fusion, specialists, vlm, ...
    info["inputs"] = predictor.accepted_inputs
    info["fields"] = {name: kind for name, (_, kind) in service.fields.items()}
    info["limits"] = {
        "max_upload_mb": service.max_upload / 2**20,
        "max_image_mb": service.max_bytes("image") / 2**20,
        "max_request_mb": service.max_request / 2**20,
        "max_batch": service.max_batch,
        "file_types": file_types(),
        "inputs": predictor.limits.to_dict(),
        "max_pending": max_pending,
        "request_timeout_s": request_timeout_s,
        "idle_timeout_s": idle_timeout_s,
        "read_timeout_s": read_timeout_s,
    }
    return info


def _flag(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _description(takes: str, conversations: bool) -> str:
    """The OpenAPI description: this module's guide to endpoints (the conversation one for a run that reads
    conversations), errors and limits, and the model's inputs."""
    parts = (__doc__ or "").split("\n\n")[1:]
    text = markdown("\n\n".join(p for p in parts if not p.startswith("Concurrency:")))
    lines = [line for line in text.splitlines() if conversations or CONVERSATION_PATH not in line]
    return "\n".join(lines) + f"\n\nThis model takes: {takes}."


def _batch_out(predictions: list[Prediction]) -> dict[str, Any]:
    return {
        "predictions": [p.to_dict() for p in predictions],
        "count": len(predictions),
        "failed": sum(p.error is not None for p in predictions),
    }
