"""A run folder stays consistent through a crash or a full disk: history and checkpoints agree after a
rerun, a full disk is one line, an unfinished run is not served, and a damaged checkpoint is named."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import affectfusion.io as io_module
import affectfusion.training.trainer as trainer_module
from affectfusion.errors import AffectFusionError
from affectfusion.io import read_jsonl
from affectfusion.rundir import read_run
from affectfusion.training.checkpoint import load_checkpoint, load_tensors, save_tensors
from affectfusion.training.loading import load_model
from affectfusion.training.trainer import Trainer
from tests.helpers import run_cli, tiny_config


def epochs(run_dir: Path) -> list[int]:
    return [r["epoch"] for r in read_jsonl(run_dir / "history.jsonl")]


def write_config(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(overrides).to_dict()), encoding="utf-8")
    return path


# -- history and checkpoint after a crash in between -----------------------------------------------


def test_kill_between_first_history_line_and_first_checkpoint_does_not_repeat_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history line of epoch 1 is written, then the process dies before ``last.json``."""
    original = trainer_module.save_checkpoint

    def die_at_last(stem: Path, *args: Any, **kwargs: Any) -> None:
        if stem.name == "last":
            raise KeyboardInterrupt  # kill -9 stand-in: nothing after this line runs
        original(stem, *args, **kwargs)

    cfg = tiny_config()
    monkeypatch.setattr(trainer_module, "save_checkpoint", die_at_last)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "run").fit()
    assert epochs(tmp_path / "run") == [1] and not (tmp_path / "run/checkpoints/last.json").exists()
    monkeypatch.setattr(trainer_module, "save_checkpoint", original)
    Trainer(cfg, tmp_path / "run").fit()
    assert epochs(tmp_path / "run") == [1, 2, 3]


def test_resume_trims_history_lines_beyond_the_checkpoint(tmp_path: Path) -> None:
    """A history ahead of ``last.json`` (killed after the line of epoch 3, before its checkpoint)."""
    cfg = tiny_config({"train.epochs": 3})
    run = tmp_path / "run"
    Trainer(cfg, run).fit()
    last = json.loads((run / "checkpoints/last.json").read_text())
    last.update(epoch=2, finished=False)
    (run / "checkpoints/last.json").write_text(json.dumps(last))
    Trainer(cfg, run).fit()
    assert epochs(run) == [1, 2, 3]


# -- a full disk -----------------------------------------------------------------------------------


class FullDiskAfter:
    """``os`` for affectfusion.io whose ``fsync`` fails with ENOSPC from the ``n``-th call on, as a disk
    that fills up while a run is written."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def fsync(self, fd: int) -> None:
        self.calls += 1
        if self.calls >= self.n:
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fsync(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def no_temp_files(run: Path) -> bool:
    """No temp file stays (the figure helper, a process of its own, may still be finishing a plot)."""
    for _ in range(100):
        if not list(run.rglob("*.tmp")):
            return True
        time.sleep(0.1)
    return False


# The n-th synced file of a 3-epoch run: from the first (meta.json) through epoch 1's history line and
# checkpoints, epochs 2 and 3, to the evaluation after the last epoch; three in the default suite.
FILL_LEVELS = [pytest.param(n, marks=[] if n in (4, 6, 11) else pytest.mark.slow) for n in (1, 4, 6, 8, 11, 16, 22)]


@pytest.mark.parametrize("fill", FILL_LEVELS)
def test_full_disk_is_one_error_and_a_rerun_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fill: int
) -> None:
    cfg = tiny_config()
    run = tmp_path / "run"
    monkeypatch.setattr(io_module, "os", FullDiskAfter(fill))
    with pytest.raises(AffectFusionError, match=r"no space left on the device to write /") as info:
        Trainer(cfg, run).fit()
    assert "\n" not in str(info.value)
    monkeypatch.setattr(io_module, "os", os)
    assert no_temp_files(run), "nothing half-written"
    if (run / "history.jsonl").exists():
        rows = epochs(run)  # every line whole (a torn line would be dropped or be an error)
        assert rows == list(range(1, len(rows) + 1))
        assert len((run / "history.jsonl").read_text().splitlines()) == len(rows)
    last = run / "checkpoints/last.json"
    if not (last.is_file() and json.loads(last.read_text())["finished"]):
        with pytest.raises(AffectFusionError, match=r"completed|not a run directory"):
            load_model(read_run(run))
    Trainer(cfg, run).fit()
    assert epochs(run) == [1, 2, 3]
    load_model(read_run(run))  # served once the run is finished


def test_full_disk_in_the_cli_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    monkeypatch.setattr(io_module, "os", FullDiskAfter(6))
    code, _, err = run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 2
    assert "Traceback" not in err and "no space left on the device to write" in err
    assert str(tmp_path / "run") in err.replace("\n", "")


def test_full_disk_met_by_a_library_writer_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(tmp_path / "tiny.yaml")

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x"))

    monkeypatch.setattr(trainer_module.Trainer, "_prepare_data", full)
    code, _, err = run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and "no space left on the device" in err


def test_append_leaves_no_torn_line_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.jsonl"
    io_module.append_jsonl(path, {"epoch": 1})
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    class HalfWrite(FullDiskAfter):
        write = staticmethod(half_then_full)

    monkeypatch.setattr(io_module, "os", HalfWrite(10**9))
    with pytest.raises(AffectFusionError, match="no space left"):
        io_module.append_jsonl(path, {"epoch": 2, "pad": "x" * 100})
    monkeypatch.setattr(io_module, "os", os)
    io_module.append_jsonl(path, {"epoch": 2})
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]


# -- an unfinished run is not served --------------------------------------------------------------


def interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run killed during epoch 2: a best checkpoint of epoch 1, training unfinished."""
    original = trainer_module.train_epoch
    calls = {"n": 0}

    def stop_in_second(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", stop_in_second)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(), tmp_path / "run").fit()
    monkeypatch.setattr(trainer_module, "train_epoch", original)
    assert (tmp_path / "run/checkpoints/best.json").is_file()
    return tmp_path / "run"


def test_predict_refuses_an_unfinished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    run = interrupted_run(tmp_path, monkeypatch)
    code, _, err = run_cli(["predict", str(run), "--features", "text=x.npy"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert "training stopped after epoch 1 of 3" in err and "affectfusion train" in err


def test_api_and_predictor_refuse_a_run_without_a_completed_best_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from affectfusion.serve import load_predictor
    from affectfusion.serve.api import create_app

    run = interrupted_run(tmp_path, monkeypatch)
    with pytest.raises(AffectFusionError, match="not a completed one"):
        create_app(run)
    for f in (run / "checkpoints").glob("best.*"):
        f.unlink()
    with pytest.raises(AffectFusionError, match="no completed best checkpoint"):
        load_predictor(run)


# -- damaged checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(tiny_config(), run).fit()
    return run


def damaged_copy(trained: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def test_checkpoint_with_tensors_of_other_shapes_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    run = damaged_copy(trained, tmp_path)
    path = run / "checkpoints/best.safetensors"
    tensors = load_tensors(path)
    name = next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])
    save_tensors(path, tensors)
    with pytest.raises(AffectFusionError, match=r"does not match the model.*another shape") as info:
        load_model(read_run(run))
    assert name in str(info.value)


def test_checkpoint_with_nan_weights_says_so(trained: Path, tmp_path: Path) -> None:
    run = damaged_copy(trained, tmp_path)
    path = run / "checkpoints/best.safetensors"
    tensors = load_tensors(path)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name][0] = float("nan")
    save_tensors(path, tensors)
    with pytest.raises(AffectFusionError, match=r"non-finite weights \(NaN or infinity\)"):
        load_model(read_run(run))


def test_last_checkpoint_without_best_value_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    run = damaged_copy(trained, tmp_path)
    path = run / "checkpoints/last.json"
    info = json.loads(path.read_text())
    del info["best_value"]
    info["finished"] = False
    path.write_text(json.dumps(info))
    with pytest.raises(AffectFusionError, match=r"damaged \(best_value missing or not a number\)"):
        Trainer(tiny_config(), run).fit()
    model = trainer_module.build_model_for(tiny_config(), read_run(run).modalities)
    optimizer = torch.optim.AdamW(model.parameters())
    info["best_value"] = None  # no finite value yet: resumable
    path.write_text(json.dumps(info))
    assert load_checkpoint(run / "checkpoints/last", model, optimizer)["best_value"] is None


# -- files a killed writer left -------------------------------------------------------------------


def test_training_start_removes_stale_temp_files(tmp_path: Path) -> None:
    cfg = tiny_config()
    run = tmp_path / "run"
    Trainer(cfg, run).fit()
    stale = [run / ".meta.json.abc123.tmp", run / "checkpoints" / ".last.safetensors.x1.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    lock_attempt = run / ".lock.99999.tmp"  # another writer's lock attempt: run_lock's business
    lock_attempt.write_text("{}")
    Trainer(cfg, run).fit(overwrite=True)
    assert not any(p.exists() for p in stale)
    assert lock_attempt.exists()
