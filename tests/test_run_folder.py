"""One writer per run folder, damaged checkpoints and configs as one-line errors with a way out,
and the warning when a validation metric saturates (issues #12 items 5 and 7, #14 item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.report import write_run_report
from affectfusion.evaluation.selection import saturation_warning
from affectfusion.io import read_json, write_json
from affectfusion.recipes.fusion.recipe import warn_if_saturated
from affectfusion.rundir import RunPaths
from affectfusion.runlock import run_lock
from tests.helpers import run_cli, tiny_config

REPO = Path(__file__).resolve().parents[1]


def test_second_writer_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    refused = pytest.raises(AffectFusionError, match=rf"in use by another writer \(train, pid {os.getpid()}")
    with run_lock(tmp_path / "run", "train"), refused, run_lock(tmp_path / "run", "test"):
        pass
    assert not RunPaths(tmp_path / "run").lock.exists()  # released
    with run_lock(tmp_path / "run", "test"):  # and free again
        pass


def test_stale_lock_of_a_killed_writer_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = RunPaths(tmp_path).lock
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "action": "train"}))
    with run_lock(tmp_path, "train"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_two_train_commands_into_one_folder_one_is_refused(tmp_path: Path) -> None:
    """Defect 5: both used to succeed and history.jsonl mixed a 4-epoch and a 6-epoch run."""
    long = {"train.epochs": 200, "train.early_stopping": None, "model.hidden_dim": 64}
    first_cfg = tmp_path / "first.yaml"
    first_cfg.write_text(yaml.safe_dump(tiny_config(long).to_dict()))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_config({"train.epochs": 4, "model.hidden_dim": 32}).to_dict()))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "affectfusion.cli", "train"]
    first = subprocess.Popen([*cmd, str(first_cfg), "--out", str(out)], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (RunPaths(out).history.is_file() and RunPaths(out).history.read_text()):  # first is training
            assert first.poll() is None and time.monotonic() < deadline, "the first training did not start"
            time.sleep(0.1)
        second = subprocess.run([*cmd, str(other), "--out", str(out)], env=env, capture_output=True, text=True)
        still_training = first.poll() is None
    finally:
        first.kill()
        first.wait()
    assert still_training, "the first run ended before the second one tried: the test proves nothing"
    assert second.returncode == 2 and "in use by another writer (train, pid" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert yaml.safe_load(RunPaths(out).config.read_text())["model"]["hidden_dim"] == 64  # untouched


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.helpers import call_cli

    root = tmp_path_factory.mktemp("resume")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config({"train.epochs": 2}).to_dict()))
    assert call_cli(["train", str(config), "--out", str(root / "run")]) == 0
    return config, root / "run"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.write_text(p.read_text()[:10]), "is damaged"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "epoch": "two"})), "epoch missing or not"),
        (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
    ],
    ids=["truncated", "mistyped", "not-an-object"],
)
def test_damaged_last_checkpoint_is_one_line_with_the_way_out(
    trained: tuple[Path, Path], damage, expected: str, capsys, monkeypatch
) -> None:
    config, run = trained
    last = RunPaths(run).last.with_suffix(".json")
    saved = last.read_text()
    try:
        damage(last)
        code, _, err = run_cli(["train", str(config), "--out", str(run)], capsys, monkeypatch)
    finally:
        last.write_text(saved)
    assert code == 2 and expected in err and "--overwrite" in err and "Traceback" not in err


def test_config_that_is_not_utf8_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes(b"name: caf\xe9\n")
    code, _, err = run_cli(["train", str(config)], capsys, monkeypatch)
    assert code == 2 and "is not UTF-8" in err and "0xe9" in err and "Traceback" not in err


def _history(values: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "val": {"macro_f1": v}} for i, v in enumerate(values)]


def test_saturation_warning_only_for_a_ceiling_from_the_start() -> None:
    assert "epoch 1" in saturation_warning(_history([1.0, 1.0, 1.0]), "macro_f1", "dev")
    assert saturation_warning(_history([0.5, 0.7, 1.0, 1.0]), "macro_f1", "dev") is None  # reached late: fine
    assert saturation_warning(_history([0.98, 0.99]), "macro_f1", "dev") is None
    assert saturation_warning([{"epoch": 1, "val": {"mae": 0.0}}], "mae", "dev") is not None
    assert saturation_warning([{"epoch": 1, "val_loss": 0.0}], "loss", "dev") is None  # no ceiling for a loss


def test_saturated_run_says_so_in_meta_and_report(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    from rich.console import Console

    _, run = trained
    paths = RunPaths(run)
    history = paths.history.read_text()
    meta = read_json(paths.meta)
    try:
        paths.history.write_text("".join(json.dumps(r) + "\n" for r in _history([1.0, 1.0])))
        warn_if_saturated(tiny_config({"train.epochs": 2}), run, Console(stderr=True))
        write_run_report(run)
        assert "best possible value" in capsys.readouterr().err
        assert any("cannot tell checkpoints apart" in w for w in read_json(paths.meta)["warnings"])
        assert "**Warning:**" in paths.report.read_text()
    finally:
        paths.history.write_text(history)
        write_json(paths.meta, meta)
