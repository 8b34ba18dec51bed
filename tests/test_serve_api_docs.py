"""``/docs`` as an API user reads it: markdown without Sphinx roles or accidental numbered lists, and the
conversation endpoint only for a run that reads conversations (a context stage)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from affectfusion.config import validate
from affectfusion.serve.api import create_app
from affectfusion.serve.api.docs import markdown
from affectfusion.training.trainer import Trainer
from tests.helpers import conversation_config

ROLE = re.compile(r":(func|class|meth|mod|attr|data|obj|exc):`")
NUMBERED = re.compile(r"^\s*\d+\.(\s|$)")  # what a markdown renderer turns into a numbered list


def descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from descriptions(value)


@pytest.fixture(scope="module")
def context_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = conversation_config("gru")
    raw["train"]["epochs"] = 1
    run = tmp_path_factory.mktemp("docs_context") / "run"
    Trainer(validate(raw), run, console=Console(stderr=True, quiet=True)).fit()
    return run


def openapi(run: Path) -> dict[str, Any]:
    with TestClient(create_app(run)) as client:
        return client.get("/openapi.json").json()


def test_reST_becomes_markdown() -> None:
    text = (
        "Served by :func:`load_predictor`, limited by\n:class:`~affectfusion.serve.input_limits.InputLimits`: never a\n"
        "500. Fields ``id``\n  and ``text``.\n\n- one\n  item\n- two"
    )
    assert markdown(text) == (
        "Served by `load_predictor`, limited by `InputLimits`: never a 500. Fields `id` and `text`."
        "\n\n- one item\n- two"
    )


@pytest.mark.parametrize("which", ["features", "context"])
def test_descriptions_have_no_roles_and_no_wrapped_numbers(
    which: str, trained_features_run: Path, context_run: Path
) -> None:
    schema = openapi(trained_features_run if which == "features" else context_run)
    assert not ROLE.search(json.dumps(schema)), "a Sphinx role reached the OpenAPI document"
    texts = list(descriptions(schema))
    assert texts and any("never gives a 500" in t for t in texts)
    for text in texts:
        bad = [line for line in text.splitlines() if NUMBERED.match(line)]
        assert not bad, f"renders as a numbered list: {bad}"


def test_the_conversation_route_is_offered_only_with_a_context_stage(
    trained_features_run: Path, context_run: Path
) -> None:
    plain = openapi(trained_features_run)
    assert "/predict/conversation" not in plain["paths"]
    assert "/predict/conversation" not in plain["info"]["description"]
    assert "ConversationIn" not in plain["components"]["schemas"]
    with TestClient(create_app(trained_features_run)) as client:
        response = client.post("/predict/conversation", json={"turns": [{"features": {}}]})
    assert response.status_code == 404 and "no context stage" in response.json()["detail"]

    context = openapi(context_run)
    assert "/predict/conversation" in context["paths"]
    assert "/predict/conversation" in context["info"]["description"]
