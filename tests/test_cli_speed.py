"""A command-line prediction loads only what predicting needs, and ``train`` on a finished run answers
before torch loads. What is imported is checked in a fresh interpreter (``sys.modules``), not timed:
the seconds are measured by ``benchmarks/predict_latency.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import affectfusion
from affectfusion.extract import EXTRACTORS
from affectfusion.rundir import RunPaths
from affectfusion.training.resume import all_finished, is_finished
from tests.helpers import call_cli, run_cli, tiny_config

SRC = Path(affectfusion.__file__).resolve().parents[1]  # the package under test, also in the child
# Not needed to predict one input from features: tables, statistics, plots, text models, web stacks, compilers.
HEAVY = ("pandas", "scipy", "sklearn", "matplotlib", "transformers", "streamlit", "fastapi", "torch._dynamo")
PROBE = """
import json, sys
from affectfusion.cli import main
sys.argv = ["affectfusion", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("MODULES " + json.dumps({"code": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def cli_in_fresh_interpreter(args: list[str], heavy: tuple[str, ...]) -> tuple[int, list[str], str]:
    """``affectfusion <args>`` in a new Python: (exit code, which of ``heavy`` it imported, output)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC), "COLUMNS": "200"}
    code = f"HEAVY = {heavy!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    report = [line for line in proc.stdout.splitlines() if line.startswith("MODULES ")]
    assert report, proc.stdout + proc.stderr
    result = json.loads(report[-1].removeprefix("MODULES "))
    return int(result["code"] or 0), result["loaded"], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config file, run) trained with ``affectfusion train``: calibrated, reported, finished."""
    base = tmp_path_factory.mktemp("cli_speed")
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config().to_dict()))
    assert call_cli(["train", str(config), "--out", str(base / "run")]) == 0
    assert RunPaths(base / "run").calibration.is_file(), "the predictor should have a temperature to apply"
    return config, base / "run"


def test_a_prediction_from_features_imports_no_heavy_library(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = cli_run
    np.save(tmp_path / "text.npy", np.ones(8, dtype=np.float32))
    np.save(tmp_path / "audio.npy", np.ones((5, 6), dtype=np.float32))
    args = ["predict", str(run), "--features", f"text={tmp_path / 'text.npy'}", "--features"]
    code, loaded, output = cli_in_fresh_interpreter([*args, f"audio={tmp_path / 'audio.npy'}", "--json"], HEAVY)
    assert code == 0, output
    assert '"calibrated_probabilities"' in output, "the calibrated path ran"
    assert loaded == [], f"a single prediction imported {loaded}"


def test_train_on_a_finished_run_answers_before_torch_loads(cli_run: tuple[Path, Path]) -> None:
    config, run = cli_run
    state = RunPaths(run).last.with_suffix(".json")
    before = {p: p.stat().st_mtime_ns for p in (state, RunPaths(run).report, RunPaths(run).meta)}
    code, loaded, output = cli_in_fresh_interpreter(["train", str(config), "--out", str(run)], ("torch", *HEAVY))
    assert code == 0, output
    assert "already trained" in output and f"run directory: {run}" in output
    assert loaded == [], f"answering 'already trained' imported {loaded}"
    assert {p: p.stat().st_mtime_ns for p in before} == before, "nothing was trained, evaluated or rewritten"


def test_only_a_run_whose_last_step_completed_counts_as_finished(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    run = cli_run[1]
    cfg = tiny_config()
    assert is_finished(run, cfg) and all_finished(cfg, run)
    assert not is_finished(run, tiny_config({"train.lr": 0.5})), "another config: the trainer says so"
    assert is_finished(run, tiny_config({"train.threads": 2})), "a runtime setting is no other config"
    copy = tmp_path / "copy"
    for f in (RunPaths(run).config, RunPaths(run).report, RunPaths(run).last.with_suffix(".json")):
        target = copy / f.relative_to(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    state = RunPaths(copy).last.with_suffix(".json")
    os.utime(state, ns=(RunPaths(copy).report.stat().st_mtime_ns + 10**9,) * 2)
    assert not is_finished(copy, cfg), "stopped after training, before its report: train must finish it"
    state.write_text(json.dumps({**json.loads(state.read_text()), "finished": False}))
    os.utime(RunPaths(copy).report, ns=(state.stat().st_mtime_ns + 10**9,) * 2)
    assert not is_finished(copy, cfg), "an interrupted run resumes"


def test_a_finished_config_with_variants_prints_its_comparison(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "variants.yaml"
    raw = tiny_config({"train.epochs": 1}).to_dict()
    raw["variants"] = {"concat": {"model.fusion.name": "concat"}, "gated": {"model.fusion.name": "gated"}}
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs"
    assert run_cli(["train", str(config), "--out", str(out)], capsys, monkeypatch)[0] == 0
    code, stdout, stderr = run_cli(["train", str(config), "--out", str(out)], capsys, monkeypatch)
    assert code == 0 and "already trained" in stderr
    assert "concat" in stdout and "gated" in stdout, "the comparison table, as after training"


def test_predict_sets_up_only_the_extractors_its_inputs_need(
    trained_media_run: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The media run reads text, audio and images; a text-only prediction must not load the others' models."""

    def refuse(self: object) -> None:
        raise AssertionError(f"{type(self).__name__} was set up for a text-only prediction")

    for name in ("mfcc", "fer_cnn"):
        monkeypatch.setattr(EXTRACTORS.get(name), "setup", refuse)
    code, out, err = run_cli(["predict", str(trained_media_run), "--text", "I feel happy today"], capsys, monkeypatch)
    assert code == 0, err
    assert "modalities used: text" in out
