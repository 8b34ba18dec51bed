"""The API's models: responses, the request bodies as parsed, and the request models generated per served run.

The OpenAPI document of a served run lists exactly the inputs that run takes: the ``/predict``
form has one field per input it reads (``text``, ``audio``, ... or ``features_<modality>``), and
``/predict/batch`` items take ``text`` only if the model reads text and ``features`` only with the
model's feature modalities, each an array of its dimension. A client generated from it works.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    create_model,
    model_serializer,
)

from affectfusion.inputs import KIND_HINTS
from affectfusion.serve.input_limits import InputLimits
from affectfusion.serve.trust_view import TrustFields

FLOAT32_MAX = 3.4028234e38


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
    inputs: dict[str, float] = Field(
        description="decoded work one input may cause (413 naming the limit when over): max_text_chars, "
        "max_audio_seconds, max_audio_channels, max_audio_rate, max_image_pixels, max_video_seconds, "
        "max_video_frames, max_video_pixels (one frame), max_video_megapixels (all frames), max_feature_values, "
        "max_json_mb, max_faces, max_request_media_seconds and max_request_pixels (all files of one request), "
        "max_explain_seconds (the estimated time of one explanation: exact, else sampled Shapley values with "
        "their standard error, else 422)"
    )
    max_pending: int = Field(description="requests queued or running before new ones get 503 + Retry-After")
    request_timeout_s: float = Field(description="longest a request waits for the model before a 503")
    idle_timeout_s: float = Field(description="a client that sends nothing for this long is cut off (408)")
    read_timeout_s: float = Field(
        description="a request whose headers and body are not all in this long after its first byte is cut off (408)"
    )


class InfoOut(BaseModel):
    name: str
    kind: str = Field(
        description="the run kind: fusion, specialists (P3: specialists, then fusion) or vlm (P4: "
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


class TaskOutput(TrustFields):  # + calibrated probabilities, prediction set, attribution
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


class FaceOut(BaseModel):
    """What the face step found; every key is sent, null included (``used`` null: no face was read)."""

    found: bool = Field(description="a face was detected")
    count: int = Field(description="how many faces were detected")
    used: int | None = Field(None, description="index (largest first) of the face the model read")
    box: list[int] | None = Field(None, description="that face's [x, y, w, h] in pixels of the uploaded image")
    policy: str = Field(description="the run's no_face policy: error, whole_frame or missing_modality")
    detector: str = Field(description="the detector that ran (none: the image is taken to be a face crop)")
    region: str | None = Field(None, description="what the model read: face (the cropped face) or whole_frame")

    @model_serializer(mode="wrap")
    def _with_nulls(self, _: SerializerFunctionWrapHandler) -> Any:
        # the routes drop null fields (response_model_exclude_none); a face report keeps them
        return {k: getattr(self, k) for k in type(self).model_fields}


class PredictionOut(BaseModel):
    id: str
    tasks: dict[str, TaskOutput] = Field(description="task -> output (empty when error is set)")
    modality_weights: dict[str, float] = Field(description="fusion's weight per modality, where it has them")
    modalities_used: list[str]
    error: str | None = Field(None, description="batch only: why this item could not be predicted")
    generated: GeneratedOut | None = Field(
        None, description="vision-language run only: the generated answer and its parsed fields"
    )
    faces: dict[str, FaceOut] | None = Field(
        None, description="face-reading modality -> what the face step found in its image (only when one was read)"
    )


class BatchOut(BaseModel):
    predictions: list[PredictionOut]
    count: int
    failed: int = Field(description="items with an error")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": ErrorOut, "description": "the client sent nothing for longer than the idle timeout"},
    413: {"model": ErrorOut, "description": "a file, the request or the decoded input is over a limit (named)"},
    415: {"model": ErrorOut, "description": "a file type or content type the field does not take"},
    422: {"model": ErrorOut, "description": "input the model cannot use (corrupt media, empty text, no input)"},
    503: {
        "model": ErrorOut,
        "description": "the server is busy (queue full or waited too long): retry after Retry-After",
    },
}


# -- request bodies as parsed (one model for every run; the per-run models below are what the docs show) --


class BatchItem(BaseModel):
    """A JSON batch item as parsed (the schema shown per run is :func:`batch_model`)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    text: str | None = None
    # strict: a JSON number only, as the schema says (lax parsing would take true and "1" as numbers)
    features: dict[str, list[StrictFloat] | list[list[StrictFloat]]] | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1)


class ConversationTurn(BatchItem):
    """One utterance of a conversation: a batch item and, optionally, who said it."""

    speaker: str | None = None


class ConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: list[ConversationTurn] = Field(min_length=1)


def _item_fields(takes_text: bool, feature_dims: dict[str, int], limits: InputLimits) -> dict[str, Any]:
    """A JSON item's fields for one run: exactly the text and feature fields it takes (JSON has no files)."""
    number = Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)
    fields: dict[str, Any] = {"id": (str | None, Field(None, description="echoed back; default: the item's position"))}
    if takes_text:
        fields["text"] = (
            str | None,
            Field(None, description=KIND_HINTS["text"], json_schema_extra={"maxLength": limits.max_text_chars}),
        )
    if feature_dims:
        per_modality: dict[str, Any] = {}
        for m, dim in feature_dims.items():
            vector = list[Annotated[float, number]]
            schema: dict[str, Any] = {"minItems": dim, "maxItems": dim}
            rows = max(1, limits.max_feature_values // max(dim, 1))
            per_modality[m] = (
                Annotated[vector, Field(json_schema_extra=schema)]
                | Annotated[
                    list[Annotated[vector, Field(json_schema_extra=schema)]], Field(min_length=1, max_length=rows)
                ],  # not null: a modality without features is left out (what the parser takes)
                Field(
                    None,
                    description=f"{m}: features [{dim}] or [T, {dim}]; leave the key out when absent",
                    json_schema_extra=_no_default,
                ),
            )
        features = create_model("BatchFeatures", __config__=ConfigDict(extra="forbid"), **per_modality)
        fields["features"] = (features | None, Field(None, description="modality -> feature array [D] or [T, D]"))
    return fields


def _no_default(schema: dict[str, Any]) -> None:
    """An optional field that may not be null documents no ``default: null`` either."""
    schema.pop("default", None)


def batch_model(takes_text: bool, feature_dims: dict[str, int], limits: InputLimits, max_batch: int) -> type[BaseModel]:
    """``BatchIn`` for one run: ``items``, each with exactly the text and feature fields it takes."""
    item = create_model(
        "BatchItem", __config__=ConfigDict(extra="forbid"), **_item_fields(takes_text, feature_dims, limits)
    )
    return create_model(
        "BatchIn",
        __config__=ConfigDict(extra="forbid"),
        items=(list[item], Field(min_length=1, max_length=max_batch)),
    )


def conversation_model(
    takes_text: bool, feature_dims: dict[str, int], limits: InputLimits, max_batch: int
) -> type[BaseModel]:
    """``ConversationIn`` for one run: its ``turns`` in order, each a batch item with an optional speaker."""
    speaker: tuple[Any, Any] = (
        str | None,
        Field(None, description="who said it (a run with speaker embeddings uses it)"),
    )
    turn = create_model(
        "ConversationTurn",
        __config__=ConfigDict(extra="forbid"),
        **_item_fields(takes_text, feature_dims, limits),
        speaker=speaker,
    )
    return create_model(
        "ConversationIn",
        __config__=ConfigDict(extra="forbid"),
        turns=(list[turn], Field(min_length=1, max_length=max_batch)),
    )
