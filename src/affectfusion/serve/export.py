"""``affectfusion export``: a fusion run's trained network as ONNX, with a JSON sidecar, checked.

Why the dynamo exporter (``torch.onnx.export(..., dynamo=True)`` with ``dynamic_shapes``): it
traces the model with *symbolic* batch and step sizes, so every reshape inside attention and every
sinusoid length stays a function of the input shape. The legacy TorchScript exporter
(``dynamo=False``) records Python ints from the example batch into ``nn.MultiheadAttention``'s
reshapes: its graph of the ``transformer`` fusion fails at run time on any other batch size. The
price is export time (4-40 s of CPU for the tiny test runs, attention strategies the most), paid once.

Decisions, recorded in the sidecar (``docs/export.md``):

- input standardisation is folded into the graph (raw extractor features go in);
- regression outputs are on the user's scale (the target scaler is folded in);
- a calibrated run (a temperature the Predictor applies) gets a second output per classification
  task, ``<task>_calibrated_probabilities``; the uncalibrated ``<task>_probabilities`` stay, as the
  Predictor serves both;
- multilabel decision thresholds are not in the graph (they are data, tuned on the dev split): the
  sidecar lists them.

The export is written to a temporary folder, checked with onnxruntime against the Predictor on the
run's test split (every modality subset), and only moved into place when it agrees to ``tolerance``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import affectfusion
from affectfusion.data.types import MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.extract import Extractor, build_extractor
from affectfusion.io import write_json
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun, read_run
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.onnx_check import compare
from affectfusion.serve.onnx_graph import PRESENT, ExportGraph, input_names, mask_name, output_names, refusal
from affectfusion.serve.predictor import Predictor

OPSET = 18
TOLERANCE = 1e-4
MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.onnx.json"
INSTALL_HINT = "pip install affectfusion[export]"


@dataclass
class ExportResult:
    model: Path
    sidecar: Path
    check: dict[str, Any]  # split, samples, subsets, max_abs_diff
    export_seconds: float
    check_seconds: float


def require_onnx() -> Any:
    """onnxruntime (and the exporter's onnx / onnxscript), or a one-line error naming the extra."""
    try:
        import onnx  # noqa: F401  (the exporter writes with it)
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter translates with it)
    except ImportError as e:
        raise AffectFusionError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({e.name} is missing): {INSTALL_HINT}"
        ) from None
    return onnxruntime


def export_run(
    run_dir: Path,
    out: Path | None = None,
    fmt: str = "onnx",
    data: Path | None = None,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export ``run_dir``'s best checkpoint to ``out`` (default ``<run>/export``) and check it."""
    if fmt != "onnx":
        raise AffectFusionError(f"--format {fmt!r} is not supported; expected onnx")
    kind = run_kind_of(run_dir)
    if kind.name != "fusion":
        raise AffectFusionError(
            f"{run_dir} is a {kind.name} run ({kind.description}): only fusion networks export to ONNX"
        )
    run = read_run(run_dir)
    reason = refusal(run)
    if reason:
        raise AffectFusionError(f"{run_dir}: ONNX cannot express this run: {reason}")
    ort = require_onnx()
    predictor = Predictor(run)
    split = run.config.data.test_split or run.config.data.val_split
    ds = load_dataset(run.config, split, root=data, modalities=run.modalities)
    out = Path(out) if out is not None else run.paths.export
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        start = time.perf_counter()
        names = write_onnx(predictor, tmp / MODEL_FILE)
        export_seconds = time.perf_counter() - start
        start = time.perf_counter()
        check = {"split": split, "tolerance": tolerance, **check_onnx(ort, tmp / MODEL_FILE, predictor, ds)}
        check_seconds = time.perf_counter() - start
        if not check["max_abs_diff"] <= tolerance:
            raise AffectFusionError(
                f"{run_dir}: the ONNX graph differs from the Predictor by {check['max_abs_diff']:.3g} on split "
                f"{split!r} (tolerance {tolerance:g}); nothing was written"
            )
        write_json(tmp / SIDECAR_FILE, describe(predictor, names, check, export_seconds))
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == SIDECAR_FILE):  # the sidecar last
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
    return ExportResult(out / MODEL_FILE, out / SIDECAR_FILE, check, export_seconds, check_seconds)


def write_onnx(predictor: Predictor, path: Path) -> dict[str, list[str]]:
    """Trace the predictor's network into ``path``; its input and output names."""
    run = predictor.run
    graph = ExportGraph(predictor.model, run.scalers, predictor.trust.temperatures)
    specs = {m: (s.dim, s.sequence) for m, s in run.modalities.items()}
    names = {"inputs": input_names(graph.modalities), "outputs": output_names(run, predictor.trust.temperatures)}
    # "torchvision is not installed", "skipping constant folding for op Split": nothing the user can act on
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                graph.example_inputs(specs),
                dynamo=True,
                dynamic_shapes=graph.dynamic_shapes(specs),
                input_names=names["inputs"],
                output_names=names["outputs"],
                opset_version=OPSET,
                verbose=False,
            )
            if program is None:  # dynamo=True returns the program; None would mean the exporter changed
                raise AffectFusionError(f"torch.onnx.export wrote no ONNX program for {path}")
            program.save(str(path))
    except AffectFusionError:
        raise
    except Exception as e:  # the exporter's own errors are long; the first line names the operator
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fusion = run.config.model.fusion.name
        raise AffectFusionError(
            f"{run.paths.root}: ONNX cannot express this run's network (fusion {fusion!r}): {first}"
        ) from None
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return names


def check_onnx(ort: Any, path: Path, predictor: Predictor, ds: MultimodalDataset) -> dict[str, Any]:
    """Run the saved graph with onnxruntime on ``ds``; compare with the Predictor (see onnx_check)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}

    def run_graph(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, {k: v for k, v in feed.items() if k in wanted})

    return compare(run_graph, predictor, ds)


def describe(
    predictor: Predictor, names: dict[str, list[str]], check: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """The sidecar: what to feed the graph, what comes out, and where it came from."""
    run = predictor.run
    temperatures = predictor.trust.temperatures
    modalities = {}
    for m, spec in run.modalities.items():
        steps = "steps" if spec.sequence else 1
        modalities[m] = {
            "dim": spec.dim,
            "sequence": spec.sequence,
            "input": m,
            "input_shape": ["batch", steps, spec.dim],
            "mask_input": mask_name(m),
            **extractor_entry(run, m, predictor.extractors.get(m)),
        }
    tasks = []
    for t in run.config.tasks:
        entry: dict[str, Any] = {"name": t.name, "type": t.type, "classes": t.classes}
        if t.type == "regression":
            entry["output"] = f"{t.name}_value"
        else:
            entry["output"] = f"{t.name}_probabilities"
        if t.name in temperatures and t.type == "classification":
            entry["calibrated_output"] = f"{t.name}_calibrated_probabilities"
        if t.type == "multilabel":
            entry["thresholds"] = dict(
                zip(t.classes or [], map(float, predictor.model.thresholds[t.name]), strict=True)
            )
        tasks.append(entry)
    return {
        "format": "onnx",
        "file": MODEL_FILE,
        "opset": OPSET,
        "affectfusion_version": affectfusion.__version__,
        "torch_version": torch.__version__,
        "exporter": "torch.onnx.export(dynamo=True)",
        "run": {"name": run.config.name, "path": str(run.paths.root), "checkpoint": "best"},
        "fusion": run.config.model.fusion.name,
        "modality_order": list(run.modalities),
        "inputs": names["inputs"],
        "outputs": names["outputs"],
        "present_input": {
            "name": PRESENT,
            "shape": ["batch", len(run.modalities)],
            "dtype": "bool",
            "columns": list(run.modalities),
            "meaning": "True where the sample has the modality; any non-empty subset per row",
        },
        "mask_inputs": "bool [batch, steps], True for real time steps (features are padded to the longest)",
        "modalities": modalities,
        "tasks": tasks,
        "normalisation": {
            "inputs": "folded into the graph: per-feature standardisation fitted on the training split; feed "
            "features exactly as the extractor (or your feature files) give them",
            "targets": "folded into the graph: regression values are on the training targets' scale",
        },
        "temperature": {t: temperatures[t] for t in temperatures} or None,
        "check": check,
        "export_seconds": round(seconds, 2),
    }


def extractor_entry(run: LoadedRun, modality: str, serving: Extractor | None) -> dict[str, Any]:
    """The extractor whose features the graph was trained on (name, options, package versions, fingerprint),
    and the one the Predictor runs on uploads where that differs (one that finds the face in a photo first)."""
    component = run.config.data.extract.get(modality)
    if component is None or serving is None:
        return {"features": "pre-extracted features, as the run was trained on", "extractor": None}
    where = f"{run.paths.config}: data.extract.{modality}.options"
    trained = build_extractor(component.name, component.options, where, "cpu")
    entry: dict[str, Any] = {"features": "extractor", "extractor": describe_extractor(trained)}
    if serving.fingerprint() != trained.fingerprint():
        entry["serving_extractor"] = describe_extractor(serving)
    return entry


def describe_extractor(extractor: Extractor) -> dict[str, Any]:
    return {**extractor.describe(), "fingerprint": extractor.fingerprint()}
