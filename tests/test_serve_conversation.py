"""``POST /predict/conversation``: a conversation's turns read together, as ``Predictor.predict_conversation``
reads them, with per-turn errors and clear 4xx answers for malformed bodies (issue #11)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from affectfusion.config import validate
from affectfusion.pipeline import load_dataset
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from affectfusion.training.trainer import Trainer
from tests.helpers import conversation_config


@pytest.fixture(scope="module")
def context_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Predictor, list[dict[str, Any]]]:
    """A causal transformer context run with speaker embeddings, and one test conversation as JSON turns."""
    raw = conversation_config("transformer", {"causal": True})
    raw["model"]["context"]["speakers"] = 2
    raw["train"]["epochs"] = 4
    cfg = validate(raw)
    run = tmp_path_factory.mktemp("conversation") / "run"
    Trainer(cfg, run).fit()
    ds = load_dataset(cfg, "test")
    conv = [s for s in ds.samples if s.group == ds.samples[0].group]
    turns = [
        {"id": s.id, "speaker": s.speaker, "features": {m: x.tolist() for m, x in s.features.items()}} for s in conv
    ]
    return Predictor.load(run), turns


@pytest.fixture(scope="module")
def client(context_run: tuple[Predictor, list[dict[str, Any]]]) -> Iterator[TestClient]:
    with TestClient(create_app(context_run[0], max_batch=16)) as c:
        yield c


def probabilities(predictions: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [p["tasks"]["label"]["probabilities"] for p in predictions]


def test_conversation_equals_the_predictor_and_differs_from_a_batch(
    client: TestClient, context_run: tuple[Predictor, list[dict[str, Any]]]
) -> None:
    predictor, turns = context_run
    response = client.post("/predict/conversation", json={"turns": turns})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(turns) and body["failed"] == 0
    assert [p["id"] for p in body["predictions"]] == [t["id"] for t in turns]
    inputs = [{m: np.asarray(x, dtype=np.float32) for m, x in t["features"].items()} for t in turns]
    direct = predictor.predict_conversation(inputs, [t["id"] for t in turns], [t["speaker"] for t in turns])
    for got, want in zip(probabilities(body["predictions"]), direct, strict=True):
        assert got == pytest.approx(want.tasks["label"]["probabilities"], abs=1e-5)
    alone = client.post("/predict/batch", json={"items": [{k: t[k] for k in ("id", "features")} for t in turns]})
    assert alone.status_code == 200
    assert probabilities(alone.json()["predictions"]) != probabilities(body["predictions"])  # context is read


def test_a_causal_run_answers_a_turn_the_same_live_and_in_replay(
    client: TestClient, context_run: tuple[Predictor, list[dict[str, Any]]]
) -> None:
    _, turns = context_run
    full = client.post("/predict/conversation", json={"turns": turns}).json()["predictions"]
    so_far = client.post("/predict/conversation", json={"turns": turns[:2]}).json()["predictions"]
    assert probabilities(so_far)[-1] == pytest.approx(probabilities(full)[1], abs=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"turns": []}, 422, "turns"),
        ({"items": [{"text": "hi"}]}, 422, "turns"),
        ({"turns": [{"text": "hello"}]}, 422, "takes no text"),
        ({"turns": [{"features": {"nope": [1.0]}}]}, 422, "not a features modality"),
        ({"turns": [{"features": {}}] * 17}, 413, "batch limit of 16"),
    ],
)
def test_malformed_conversations_are_clear_4xx(client: TestClient, body: dict, status: int, phrase: str) -> None:
    response = client.post("/predict/conversation", json=body)
    assert response.status_code == status, response.text
    assert phrase in response.json()["detail"]


def test_a_turn_without_input_is_its_own_error(
    client: TestClient, context_run: tuple[Predictor, list[dict[str, Any]]]
) -> None:
    _, turns = context_run
    broken = [turns[0], {"id": "empty", "speaker": turns[1]["speaker"], "features": {}}, *turns[2:]]
    body = client.post("/predict/conversation", json={"turns": broken}).json()
    assert body["failed"] == 1 and body["predictions"][1]["error"]
    assert all(p["tasks"] for k, p in enumerate(body["predictions"]) if k != 1)


def test_conversation_needs_json_and_is_documented(client: TestClient) -> None:
    response = client.post("/predict/conversation", data={"turns": "x"})
    assert response.status_code == 415 and "application/json" in response.json()["detail"]
    schema = client.get("/openapi.json").json()
    assert "/predict/conversation" in schema["paths"]
    turn = schema["components"]["schemas"]["ConversationTurn"]
    assert {"speaker", "features"} <= set(turn["properties"])


@pytest.mark.parametrize("value", [1e20, 3e38])
def test_a_turn_out_of_range_is_its_own_error_and_left_out_of_the_context(
    client: TestClient, context_run: tuple[Predictor, list[dict[str, Any]]], value: float
) -> None:
    """A huge but finite turn gets its own error; every other turn is predicted exactly as in the same
    conversation without it (it reaches no other turn through the context stage)."""
    _, turns = context_run
    bad = {
        **turns[1],
        "id": "bad",
        "features": {m: np.full_like(x, value).tolist() for m, x in turns[1]["features"].items()},
    }
    with_bad = client.post("/predict/conversation", json={"turns": [turns[0], bad, *turns[1:]]})
    without = client.post("/predict/conversation", json={"turns": turns})
    assert with_bad.status_code == 200 and without.status_code == 200, with_bad.text
    body = with_bad.json()
    assert body["failed"] == 1 and "input out of range" in body["predictions"][1]["error"]
    others = [p for k, p in enumerate(body["predictions"]) if k != 1]
    assert [p["id"] for p in others] == [t["id"] for t in turns]
    for got, want in zip(probabilities(others), probabilities(without.json()["predictions"]), strict=True):
        assert got == pytest.approx(want, abs=1e-5)
