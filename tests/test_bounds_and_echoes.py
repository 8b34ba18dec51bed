"""Inputs a user or client controls stay bounded in what they cost and in what is echoed back: config
nesting and model sizes, error messages that quote a value, the API schema against its parser, and
upload folders a killed server left."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from affectfusion.config import load_config, load_raw
from affectfusion.errors import AffectFusionError, echo
from affectfusion.serve.api import create_app
from affectfusion.serve.api.uploads import UPLOAD_PREFIX, remove_stale_uploads
from tests.helpers import run_cli, tiny_config

BIG = "x" * 1_000_000


# -- config files ------------------------------------------------------------------------------------


def config_text(**model: Any) -> str:
    raw = tiny_config().to_dict()
    raw["model"].update(model)
    return yaml.safe_dump(raw)


@pytest.mark.parametrize("nesting", ["[" * 50_000 + "]" * 50_000, "".join("  " * i + "k:\n" for i in range(2_000))])
def test_deeply_nested_yaml_is_one_clear_error(tmp_path: Path, nesting: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(f"name: deep\ndescription: {nesting}\n" if nesting.startswith("[") else f"name: deep\n{nesting}")
    with pytest.raises(AffectFusionError, match=r"deep.yaml is nested more than 32 levels deep \(line \d+"):
        load_raw(path)


def test_shipped_and_ordinary_nesting_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(config_text())
    assert load_raw(path)["name"] == "tiny"


@pytest.mark.parametrize("key", ["hidden_dim", "head_hidden"])
def test_absurd_model_width_is_refused_before_any_allocation(tmp_path: Path, key: str) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text(config_text(**{key: 10_000_000}))
    with pytest.raises(AffectFusionError, match=rf"model.{key}: Input should be less than or equal to 8192"):
        load_config(path)


def test_cli_names_the_size_and_nesting_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text(config_text())
    out = str(tmp_path / "run")
    code, _, err = run_cli(["train", str(path), "--out", out, "--set", "model.hidden_dim=1e7"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and "model.hidden_dim" in err
    path.write_text("name: deep\ndescription: " + "[" * 10_000 + "]" * 10_000 + "\n")
    code, _, err = run_cli(["train", str(path), "--out", out], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and "nested more than 32 levels" in err


@pytest.mark.parametrize(
    ("name", "options"),
    [("transformer", {"layers": 1_000_000}), ("transformer", {"heads": 100_000}), ("transformer", {"max_len": 10**9})],
)
def test_absurd_encoder_sizes_are_refused(name: str, options: dict[str, Any]) -> None:
    from affectfusion.data.types import ModalitySpec
    from affectfusion.training.loading import build_model_for

    cfg = tiny_config({"model.encoder": {"name": name, "options": options}})
    with pytest.raises(AffectFusionError, match="less than or equal to"):
        build_model_for(cfg, {"audio": ModalitySpec("audio", 6, True)})


# -- echoes ------------------------------------------------------------------------------------------


def test_echo_cuts_long_values() -> None:
    assert echo("short") == "'short'"
    cut = echo(BIG)
    assert len(cut) == 80 and cut.endswith("...") and cut.startswith("'xxx")


@pytest.fixture(scope="module")
def client(trained_features_run: Path) -> TestClient:
    return TestClient(create_app(trained_features_run))


@pytest.mark.parametrize(
    ("path", "request_args"),
    [
        ("/predict", {"data": {BIG: "1"}}),  # an unknown form field
        ("/predict/batch", {"json": {"items": [{"id": BIG, "features": {BIG: [1.0]}}]}}),  # an unknown modality
        ("/predict/batch", {"json": {"items": [{"features": {BIG: "not a list"}}]}}),  # in a validation error
        ("/predict/batch/files", {"data": {"kind": BIG}, "files": {"files": ("a.npy", b"x")}}),
    ],
)
def test_a_megabyte_value_is_not_echoed_back(client: TestClient, path: str, request_args: dict[str, Any]) -> None:
    response = client.post(path, **request_args)
    assert response.status_code == 422
    assert len(response.text) < 2_000 and "..." in response.json()["detail"]


# -- the batch schema and its parser ---------------------------------------------------------------


def test_batch_schema_and_parser_agree_on_null_and_arrays(client: TestClient) -> None:
    """Every body the OpenAPI document accepts is parsed, and every body it refuses is a 422."""
    jsonschema = pytest.importorskip("jsonschema")
    document = client.get("/openapi.json").json()
    ref = document["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = {**ref, "components": document["components"]}
    dims = {m: info["dim"] for m, info in client.get("/info").json()["modalities"].items()}
    m, dim = next(iter(dims.items()))
    bodies = [
        {"items": [{"features": {m: None}}]},
        {"items": [{"features": None}]},
        {"items": [{"id": None, "features": {m: [0.5] * dim}}]},
        {"items": [{"features": {m: [[0.5] * dim, [0.1] * dim]}}]},
        {"items": [{"features": {m: []}}]},
        {"items": [{"features": {m: [None] * dim}}]},
    ]
    for body in bodies:
        valid = jsonschema.Draft202012Validator(schema).is_valid(body)
        response = client.post("/predict/batch", json=body)
        assert (response.status_code == 200) == valid, (body, response.text)


# -- upload folders a killed server left -------------------------------------------------------------


def test_server_start_removes_upload_folders_of_dead_servers(tmp_path: Path, trained_features_run: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"{UPLOAD_PREFIX}{dead_pid}-abc"
    live = tmp_path / f"{UPLOAD_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{UPLOAD_PREFIX}oldstyle"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "0_audio.wav").write_bytes(b"half an upload")
    assert remove_stale_uploads(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    stale.mkdir()
    real_tmp = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        create_app(trained_features_run)
    finally:
        tempfile.tempdir = real_tmp
    assert not stale.exists()


def test_a_batch_may_repeat_an_id(client: TestClient) -> None:
    """The schema cannot say "ids unique", so the parser must not need it: each item is answered."""
    dims = {m: info["dim"] for m, info in client.get("/info").json()["modalities"].items()}
    m, dim = next(iter(dims.items()))
    item = {"id": "", "features": {m: [0.5] * dim}}
    offered = client.get("/openapi.json").json()["paths"]  # conversations: only for runs with a context stage
    routes = [(p, k) for p, k in (("/predict/batch", "items"), ("/predict/conversation", "turns")) if p in offered]
    for path, key in routes:
        response = client.post(path, json={key: [item, {**item, "features": {m: [0.1] * dim}}]})
        assert response.status_code == 200, response.text
        assert [p["id"] for p in response.json()["predictions"]] == ["", ""]


@pytest.mark.parametrize("value", [True, "0.5"])
def test_batch_features_take_json_numbers_only(client: TestClient, value: Any) -> None:
    """The schema says number; booleans and numeric strings are refused as it says, not coerced."""
    dims = {m: info["dim"] for m, info in client.get("/info").json()["modalities"].items()}
    m, dim = next(iter(dims.items()))
    response = client.post("/predict/batch", json={"items": [{"features": {m: [value] * dim}}]})
    assert response.status_code == 422 and "valid number" in response.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("run", ["trained_features_run", "trained_face_context_run"])
def test_json_routes_accept_every_request_their_schema_allows(request: pytest.FixtureRequest, run: str) -> None:
    """Stricter than test_serve_schemathesis for the JSON routes: nothing a file's bytes could explain, so a
    schema-valid body is answered (2xx; 413 only for a decoded limit) and a schema-violating one refused."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    from affectfusion.serve import Predictor

    predictor = Predictor.load(request.getfixturevalue(run))
    app = create_app(predictor, max_upload_mb=1, max_batch=8)
    rejected = ["400", "413", "415", "422"]
    checks = {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "413"]},
        "negative_data_rejection": {"expected-statuses": rejected},
    }
    config = schemathesis.config.SchemathesisConfig.from_dict({"checks": checks})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    operations = [
        r.ok() for r in schema.get_all_operations() if r.ok().path in ("/predict/batch", "/predict/conversation")
    ]
    assert len(operations) == (2 if predictor.reads_conversations else 1)  # conversations: context runs only
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: Any) -> None:
                case.call_and_validate()

            check()
