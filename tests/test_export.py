"""``affectfusion export``: every fusion strategy in the registry exports to ONNX and onnxruntime gives
the Predictor's numbers on the test split (also with a modality absent), or the export is refused with
its reason, which docs/export.md lists. Tracing costs seconds to a minute per strategy, so one strategy
runs by default and the rest of the registry is marked slow."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import FUSIONS
from tests.helpers import call_cli, run_cli, tiny_config

pytest.importorskip("onnxruntime")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"
DEFAULT_TIER = {"concat"}  # the rest of the registry is traced in the slow tier


def tiny_run(base: Path, fusion: str, **overrides: Any) -> Path:
    """A one-epoch run of the tiny synthetic config (3 modalities, 2 of them sequences, 10% missing)."""
    from affectfusion.training.trainer import Trainer

    cfg = tiny_config(
        {
            "name": f"tiny_{fusion}",
            "model.fusion.name": fusion,
            "model.hidden_dim": 8,
            "model.head_hidden": 8,
            "data.options.n_train": 48,
            "data.options.n_eval": 24,
            "train.epochs": 1,
            **overrides,
        }
    )
    run_dir = base / fusion
    Trainer(cfg, run_dir, console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return run_dir


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_rows(session: Any, sidecar: dict, samples: list[Any], absent: str | None) -> dict[str, np.ndarray]:
    """The graph's outputs (name -> rows) for each sample fed alone (its own length, no padding), with
    ``absent`` marked missing and NaN left in its slot: the graph must ignore it."""
    order = sidecar["modality_order"]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in sidecar["outputs"]}
    for s in samples:
        feed = {}
        for m in order:
            spec = sidecar["modalities"][m]
            x = s.features[m] if m in s.features else np.zeros((2 if spec["sequence"] else 1, spec["dim"]))
            if m not in s.features or m == absent:
                x = np.full_like(x, np.nan)
            feed[spec["input"]] = x[None].astype(np.float32)
            feed[spec["mask_input"]] = np.ones((1, x.shape[0]), dtype=bool)
        feed["present"] = np.array([[m in s.features and m != absent for m in order]])
        for name, value in zip(sidecar["outputs"], session.run(sidecar["outputs"], feed), strict=True):
            rows[name].append(value[0])
    return {name: np.stack(v) for name, v in rows.items()}


def predictor_rows(run_dir: Path, samples: list[Any], absent: str | None) -> dict[str, np.ndarray]:
    """The public Predictor's outputs for the same samples (``absent`` left out of each input), by graph output."""
    from affectfusion.serve.predictor import Predictor

    predictor = Predictor.load(run_dir)
    inputs = [{m: x for m, x in s.features.items() if m != absent} for s in samples]
    preds = predictor.predict(inputs, [s.id for s in samples])
    rows = {}
    for t in predictor.run.config.tasks:
        outs = [p.tasks[t.name] for p in preds]
        if t.type == "regression":
            rows[f"{t.name}_value"] = np.array([o["value"] for o in outs])
            continue
        rows[f"{t.name}_probabilities"] = np.array([[o["probabilities"][c] for c in t.classes] for o in outs])
        if "calibrated_probabilities" in outs[0]:
            calibrated = [[o["calibrated_probabilities"][c] for c in t.classes] for o in outs]
            rows[f"{t.name}_calibrated_probabilities"] = np.array(calibrated)
    return rows


def check_round_trip(run_dir: Path, out: Path) -> float:
    """Compare the export in ``out`` (onnxruntime) with the Predictor on the test split, one sample at a time,
    with every modality and with the first one absent; the largest difference."""
    from affectfusion.pipeline import load_dataset
    from affectfusion.rundir import read_run

    sidecar = json.loads((out / "model.onnx.json").read_text())
    assert sidecar["check"]["max_abs_diff"] <= 1e-4
    session = onnx_session(out / "model.onnx")
    run = read_run(run_dir)
    samples = load_dataset(run.config, "test", modalities=run.modalities).samples
    worst = 0.0
    for absent in (None, sidecar["modality_order"][0]):
        keep = [s for s in samples if any(m != absent for m in s.features)]
        got, expected = onnx_rows(session, sidecar, keep, absent), predictor_rows(run_dir, keep, absent)
        assert set(got) == set(expected)
        for name in got:
            assert np.isfinite(got[name]).all()
            worst = max(worst, float(np.abs(got[name] - expected[name]).max()))
    assert worst <= 1e-4, worst
    return worst


@pytest.fixture(scope="module")
def concat_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A calibrated concat run exported through the CLI once for the module: (run dir, export dir, stdout)."""
    base = tmp_path_factory.mktemp("export")
    run_dir, out = tiny_run(base, "concat"), base / "out"
    # A calibrated run (as `calibrate` writes it): the graph gets the temperature as a second output.
    calibration = {"tasks": {"label": {"type": "classification", "temperature": 1.7, "splits": {}}}}
    (run_dir / "calibration.json").write_text(json.dumps(calibration))
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = call_cli(["export", str(run_dir), "--format", "onnx", "--out", str(out)])
    assert code == 0
    return run_dir, out, stdout.getvalue()


def test_cli_exports_and_checks_against_the_predictor(concat_export: tuple[Path, Path, str]) -> None:
    _, out, stdout = concat_export
    assert "max abs diff" in stdout and "7 modality subsets" in stdout
    diff = float(stdout.split("max abs diff")[1].split()[0])
    assert 0 <= diff <= 1e-4
    sidecar = json.loads((out / "model.onnx.json").read_text())
    assert sidecar["opset"] and sidecar["affectfusion_version"] and sidecar["file"] == "model.onnx"
    assert sidecar["modality_order"] == ["audio", "text", "video"]
    assert sidecar["modalities"]["audio"]["sequence"] and not sidecar["modalities"]["text"]["sequence"]
    assert sidecar["modalities"]["text"]["dim"] == 8
    assert sidecar["tasks"][0]["classes"] == ["a", "b", "c"] and sidecar["tasks"][0]["type"] == "classification"
    assert sidecar["check"]["max_abs_diff"] <= 1e-4 and len(sidecar["check"]["subsets"]) == 7
    assert "folded" in sidecar["normalisation"]["inputs"] and sidecar["temperature"] == {"label": 1.7}
    assert sidecar["outputs"] == ["label_probabilities", "label_calibrated_probabilities"]
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.json"]  # no temporary folder left


@pytest.mark.parametrize(
    "fusion",
    [f if f in DEFAULT_TIER else pytest.param(f, marks=pytest.mark.slow) for f in FUSIONS.names()],
)
def test_every_fusion_strategy_round_trips_or_is_refused(fusion: str, tmp_path: Path, request: Any) -> None:
    from affectfusion.serve.export import export_run
    from affectfusion.serve.onnx_graph import UNSUPPORTED_FUSIONS

    if fusion == "concat":  # exported once for the module, through the CLI
        run_dir, out, _ = request.getfixturevalue("concat_export")
    else:
        run_dir, out = tiny_run(tmp_path, fusion), tmp_path / "out"
        if fusion in UNSUPPORTED_FUSIONS:
            with pytest.raises(AffectFusionError, match="ONNX cannot express"):
                export_run(run_dir, out)
            assert not out.exists()
            return
        export_run(run_dir, out)
    check_round_trip(run_dir, out)


@pytest.mark.slow
def test_sequence_encoders_export_with_any_length(tmp_path: Path) -> None:
    """TCN and transformer encoders: the step count is symbolic, so lengths other than the traced one work."""
    from affectfusion.serve.export import export_run

    encoders = {"audio": {"name": "tcn"}, "video": {"name": "transformer"}}
    run_dir = tiny_run(tmp_path, "weighted", **{"model.encoders": encoders})
    export_run(run_dir, tmp_path / "out")
    check_round_trip(run_dir, tmp_path / "out")


@pytest.mark.slow
def test_an_image_cnn_exports_with_its_mirror_averaging(tmp_path: Path) -> None:
    """``cnn2d`` (each step of the 6-d audio sequence read as a 2 x 3 image, 10% of rows missing) exports and
    scores as the Predictor does."""
    from affectfusion.serve.export import export_run

    encoders = {"audio": {"name": "cnn2d", "options": {"height": 2, "channels": [4]}}}
    run_dir = tiny_run(tmp_path, "concat", **{"model.encoders": encoders})
    export_run(run_dir, tmp_path / "out")
    check_round_trip(run_dir, tmp_path / "out")


@pytest.mark.slow
def test_a_multi_task_run_has_one_output_per_head(tmp_path: Path) -> None:
    """A regression head (values on the targets' 0-24 scale) and a classification head derived from it."""
    from affectfusion.serve.export import export_run

    tasks = [
        {"name": "score", "type": "regression"},
        {"name": "high", "type": "classification", "classes": ["no", "yes"], "threshold_of": "score", "threshold": 12},
    ]
    options = {"data.options.task": "regression", "data.options.target_name": "score"}
    run_dir = tiny_run(tmp_path, "gated", tasks=tasks, **options, **{"data.options.target_range": [0, 24]})
    result = export_run(run_dir, tmp_path / "out")
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["outputs"] == ["score_value", "high_probabilities"]
    assert [t["output"] for t in sidecar["tasks"]] == sidecar["outputs"]
    check_round_trip(run_dir, tmp_path / "out")


@pytest.mark.slow
def test_a_media_run_names_the_extractors_to_feed(trained_media_run: Path, tmp_path: Path) -> None:
    """Text, audio and image through extractors: the sidecar says which (options, fingerprint)."""
    from affectfusion.extract import build_extractor
    from affectfusion.rundir import read_run
    from affectfusion.serve.export import export_run

    result = export_run(trained_media_run, tmp_path / "out")
    assert result.check["max_abs_diff"] <= 1e-4
    sidecar = json.loads(result.sidecar.read_text())
    config = read_run(trained_media_run).config.data.extract
    for m in ("text", "audio", "image"):
        extractor = sidecar["modalities"][m]["extractor"]
        expected = build_extractor(config[m].name, config[m].options, m)
        assert extractor["extractor"] == config[m].name and extractor["fingerprint"] == expected.fingerprint()


@pytest.mark.parametrize("speakers", [0, 2])
def test_the_traceable_no_context_stage_equals_the_general_one(speakers: int) -> None:
    """``none`` skips the scatter into conversations and back (an identity), which made shapes data-dependent."""
    import torch

    from affectfusion.models.context import CONTEXTS
    from affectfusion.models.context.base import ContextStage

    stage = CONTEXTS.get("none")(8, 0.0, speakers, CONTEXTS.get("none").Options()).eval()
    x, index = ContextStage.example_input(8)
    for idx in (index, None):
        assert torch.equal(stage(x, idx), ContextStage.forward(stage, x, idx))


def test_unsupported_strategies_are_listed_with_their_reason_in_the_docs() -> None:
    from affectfusion.serve.onnx_graph import UNSUPPORTED_ENCODERS, UNSUPPORTED_FUSIONS

    docs = DOCS.read_text(encoding="utf-8")
    for name in [*UNSUPPORTED_FUSIONS, *UNSUPPORTED_ENCODERS]:
        assert f"`{name}`" in docs, name
    assert set(UNSUPPORTED_FUSIONS) <= set(FUSIONS.names())
    assert "pip install affectfusion[export]" in docs


def test_the_docs_example_runs_on_an_export(concat_export: tuple[Path, Path, str], capsys: Any) -> None:
    """docs/export.md's onnxruntime example, as written, on a real export."""
    _, out, _ = concat_export
    code = DOCS.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    assert "ort.InferenceSession" in code and len(code.splitlines()) <= 12
    exec(code.replace("deploy/", f"{out}/"), {})
    printed = capsys.readouterr().out
    assert all(f"'{c}'" in printed for c in ("a", "b", "c")), printed


def edited_copy(run_dir: Path, dest: Path, **model: Any) -> Path:
    """A copy of a run whose config says something else about its model (refusals read only the config)."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("export", "out"))
    raw = yaml.safe_load((dest / "config.yaml").read_text())
    raw["model"].update(model)
    (dest / "config.yaml").write_text(yaml.safe_dump(raw))
    return dest


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ({"context": {"name": "gru"}}, "context stage (gru) reads whole conversation windows"),
        ({"encoders": {"audio": {"name": "bilstm"}}}, "encoder 'bilstm' of modality 'audio'"),
    ],
)
def test_networks_onnx_cannot_express_are_refused_with_the_reason(
    concat_export: tuple[Path, Path, str], tmp_path: Path, capsys: Any, monkeypatch: Any, model: dict, reason: str
) -> None:
    run_dir = edited_copy(concat_export[0], tmp_path / "run", **model)
    code, _, stderr = run_cli(["export", str(run_dir), "--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 2 and "ONNX cannot express this run" in stderr and reason in " ".join(stderr.split())
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["vlm", "specialists"])
def test_runs_that_are_not_fusion_networks_are_refused(
    kind: str, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "fusion").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"kind: {kind}\n")
    (run_dir / "fusion" / "meta.json").write_text("{}")
    code, _, stderr = run_cli(["export", str(run_dir)], capsys, monkeypatch)
    assert code == 2 and f"is a {kind} run" in stderr and "only fusion networks export to ONNX" in stderr
    assert "Traceback" not in stderr


def test_other_formats_are_refused(concat_export: tuple[Path, Path, str], capsys: Any, monkeypatch: Any) -> None:
    code, _, stderr = run_cli(["export", str(concat_export[0]), "--format", "tflite"], capsys, monkeypatch)
    assert code == 2 and "expected onnx" in stderr


def test_missing_extra_names_the_install_command(monkeypatch: Any) -> None:
    from affectfusion.serve.export import require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AffectFusionError, match=r"pip install affectfusion\[export\]"):
        require_onnx()


def test_a_graph_that_disagrees_writes_nothing(
    concat_export: tuple[Path, Path, str], tmp_path: Path, monkeypatch: Any
) -> None:
    from affectfusion.serve import export

    def fake_write(predictor: Any, path: Path) -> dict:
        path.write_bytes(b"not a graph")
        return {"inputs": [], "outputs": []}

    monkeypatch.setattr(export, "write_onnx", fake_write)
    monkeypatch.setattr(export, "check_onnx", lambda *a: {"samples": 1, "subsets": {}, "max_abs_diff": 0.5})
    with pytest.raises(AffectFusionError, match=r"differs from the Predictor by 0\.5"):
        export.export_run(concat_export[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_network_the_exporter_cannot_trace_gets_one_line(
    concat_export: tuple[Path, Path, str], tmp_path: Path, monkeypatch: Any
) -> None:
    """A strategy added later that torch.onnx cannot trace: the exporter's first line, nothing written."""
    import torch

    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Unsupported: aten::some_op has no ONNX translation\n  long trace ...")

    monkeypatch.setattr(torch.onnx, "export", fails)
    from affectfusion.serve.export import export_run

    with pytest.raises(AffectFusionError) as caught:
        export_run(concat_export[0], tmp_path / "out")
    message = str(caught.value)
    assert "ONNX cannot express this run's network (fusion 'concat')" in message and "aten::some_op" in message
    assert "\n" not in message and not (tmp_path / "out").exists()
