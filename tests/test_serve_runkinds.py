"""Run kinds registered in one place: a toy kind, registered here and nowhere else, is served by
``predict`` (library and batch table), the REST API and the dashboard backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from affectfusion.errors import AffectFusionError
from affectfusion.runkinds import (
    RunKind,
    get_run_kind,
    list_run_kinds,
    register_run_kind,
    run_kind_of,
    unregister_run_kind,
)
from affectfusion.serve.api import create_app
from affectfusion.serve.base import Prediction, RunPredictor, check_ids, route_input
from affectfusion.serve.batch import predict_table
from affectfusion.serve.dashboard.backends import load_backend
from affectfusion.serve.predictor import load_predictor


class ShoutPredictor(RunPredictor):
    """Text in; ``loud`` if the text has more capitals than not, else ``calm``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modalities = ["text"]
        self.extractors = {}

    @classmethod
    def load(cls, run_dir: Path, which: str = "best", device: str = "cpu") -> ShoutPredictor:
        return cls(Path(run_dir))

    @property
    def name(self) -> str:
        return "shout"

    @property
    def results_dir(self) -> Path:
        return self.root

    def input_kind(self, modality: str) -> str:
        return "text"

    def feature_dim(self, modality: str) -> int:
        return 1

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "shout",
            "tasks": [{"name": "volume", "type": "classification", "classes": ["calm", "loud"]}],
            "modalities": self.modalities_info(),
            "fusion": None,
            "metrics": self.metrics(),
            "load_seconds": 0.0,
        }

    def predict(
        self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None, explain: bool = False
    ) -> list[Prediction]:
        self.check_explain(explain)
        out = []
        for i, item in zip(check_ids(inputs, ids), inputs, strict=True):
            p = Prediction(id=i)
            try:
                text = route_input(item, self.modalities, self.accepted_inputs)["text"]
            except AffectFusionError as e:
                p.error = str(e)
            else:
                loud = sum(c.isupper() for c in text) / max(1, sum(c.isalpha() for c in text))
                p.tasks["volume"] = {"label": "loud" if loud > 0.5 else "calm", "probabilities": {"loud": loud}}
                p.modalities_used = ["text"]
            out.append(p)
        return out


@pytest.fixture
def shout_run(tmp_path: Path) -> Iterator[Path]:
    run = tmp_path / "shout_run"
    run.mkdir()
    (run / "config.yaml").write_text("kind: shout\nname: shout\n")
    register_run_kind(
        RunKind(
            "shout",
            detect=lambda d: (Path(d) / "config.yaml").read_text().startswith("kind: shout"),
            load_predictor=ShoutPredictor.load,
            dashboard_backend="affectfusion.serve.dashboard.backends:PredictorBackend",
        )
    )
    yield run
    unregister_run_kind("shout")


def test_builtin_kinds_are_registered_lazily() -> None:
    assert {"fusion", "specialists", "vlm"} <= set(list_run_kinds())
    assert isinstance(get_run_kind("vlm").load_predictor, str)  # a "module:attr" string until used
    with pytest.raises(AffectFusionError, match="unknown run kind"):
        get_run_kind("nope")


def test_a_toy_kind_is_served_everywhere(shout_run: Path) -> None:
    assert run_kind_of(shout_run).name == "shout"
    predictor = load_predictor(shout_run)
    assert isinstance(predictor, ShoutPredictor)
    assert predictor.predict_one({"text": "HELLO THERE"}).tasks["volume"]["label"] == "loud"

    pd.DataFrame({"id": ["a", "b"], "text": ["HEY YOU", "hey you"], "volume": ["loud", "calm"]}).to_csv(
        shout_run / "in.csv", index=False
    )
    table = predict_table(predictor, shout_run / "in.csv", progress=False)
    assert list(table["volume"]) == ["loud", "calm"] and list(table["error"]) == ["", ""]

    client = TestClient(create_app(shout_run))
    r = client.post("/predict", data={"text": "QUIET please"})
    assert r.status_code == 200 and r.json()["tasks"]["volume"]["label"] == "calm"
    assert client.get("/info").json()["kind"] == "shout"
    batch = client.post("/predict/batch", json={"items": [{"text": "WOW"}, {"text": " "}]}).json()
    assert batch["predictions"][0]["tasks"]["volume"]["label"] == "loud" and batch["failed"] == 1
    schema = client.get("/openapi.json").json()
    assert "/predict/batch/files" not in schema["paths"]  # a text-only run takes no files

    backend = load_backend(shout_run)
    assert [s.key for s in backend.slots()] == ["text"]
    assert backend.analyse({"text": "LOUD NOISES"}).headline == {"volume": "loud"}
    rows = backend.predict_table(pd.DataFrame({"text": ["a", "BB"]}), shout_run)
    assert list(rows["volume"]) == ["calm", "loud"]


def test_a_folder_of_no_kind_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="not a run directory"):
        run_kind_of(tmp_path)
    (tmp_path / "config.yaml").write_text("name: x\n")
    with pytest.raises(AffectFusionError, match="not a trained run"):
        run_kind_of(tmp_path)
