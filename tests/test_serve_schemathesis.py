"""Schemathesis over the OpenAPI document of a served run: every operation, generated inputs (valid
and invalid per the schema), all checks -- no 5xx, responses as documented, bad input refused.

Run with ``pytest -m slow tests/test_serve_schemathesis.py``. The cases are drawn per operation and
generation mode with Hypothesis directly (schemathesis' pytest plugin does not support pytest 9).
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip: schemathesis brings it)
from schemathesis import GenerationMode  # noqa: E402

from affectfusion.serve import Predictor  # noqa: E402
from affectfusion.serve.api import create_app  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("run", ["trained_features_run", "trained_media_run"])
def test_api_conforms_to_its_schema(request: pytest.FixtureRequest, run: str, mode: GenerationMode) -> None:
    """Over a features run (``.npy`` uploads, JSON arrays) and a media run (text, audio, image)."""
    run_dir: Path = request.getfixturevalue(run)
    app = create_app(Predictor.load(run_dir), max_upload_mb=1, max_batch=8)
    # Schema-valid requests may still be refused for what a schema cannot describe: the bytes of an
    # uploaded file (a "binary" field) are not a readable image/.npy; those answers are documented 4xx.
    # A schema-violating one may be refused with 413 (e.g. text over maxLength: the limit is named).
    rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "413", "415", "422"]},
                "negative_data_rejection": {"expected-statuses": rejected},
            }
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/health", "/info", "/predict", "/predict/batch"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # /health and /info take no input: there is nothing invalid to send them

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        check()
