"""A 2-process torchrun (DDP, gloo) run trains with the same command and writes the same checkpoint format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectfusion.training.checkpoint import load_tensors
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_process_torchrun_matches_single_process_format(tmp_path: Path) -> None:
    cfg = tiny_config({"train.epochs": 2})
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "affectfusion.cli", "train", str(cfg_path)]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    Trainer(cfg, tmp_path / "single").fit()
    ddp = load_tensors(tmp_path / "ddp/checkpoints/best.safetensors")
    single = load_tensors(tmp_path / "single/checkpoints/best.safetensors")
    assert {k: v.shape for k, v in ddp.items()} == {k: v.shape for k, v in single.items()}
    meta = json.loads((tmp_path / "ddp/meta.json").read_text())
    assert meta["world_size"] == 2
    history = [json.loads(line) for line in (tmp_path / "ddp/history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2], "rank 0 alone writes the history"
    assert (tmp_path / "ddp/eval/test/metrics.json").is_file()


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_process_torchrun_trains_a_lora_text_encoder(tmp_path: Path, tiny_distilbert: Path) -> None:
    """Frozen base weights and adapters under DDP: both ranks train, rank 0 saves adapters only."""
    from tests.fixtures_media import make_media_table, media_config

    raw = media_config(make_media_table(tmp_path / "data"), tmp_path / "cache")
    raw["data"]["extract"] = {"text": {"name": "hf_tokens", "options": {"model_path": str(tiny_distilbert)}}}
    raw["data"]["options"]["inputs"] = {"text": "text"}
    raw["model"]["encoders"] = {"text": {"name": "hf_lora", "options": {"model_path": str(tiny_distilbert)}}}
    raw["train"]["epochs"] = 2
    cfg_path = tmp_path / "lora.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "affectfusion.cli", "train", str(cfg_path)]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = load_tensors(tmp_path / "ddp/checkpoints/best.safetensors")
    text = [k for k in saved if k.startswith("encoders.text.")]
    assert text and all(".lora_" in k or k.startswith("encoders.text.proj.") for k in text)
    assert json.loads((tmp_path / "ddp/meta.json").read_text())["world_size"] == 2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # about 40 s on a busy 2-core machine: two agents, a rendezvous, two trainings
@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_nodes_meet_through_c10d_rendezvous(tmp_path: Path) -> None:
    """Two torchrun agents (``--nnodes 2``, one process each, each in its own working folder) join over c10d as
    two machines would; rank 0 alone writes the one run folder."""
    cfg = tiny_config({"train.epochs": 2})
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for rank in (0, 1):
        node = tmp_path / f"node{rank}"  # each "machine" in its own working folder
        node.mkdir()
        cmd = [torchrun, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1"]
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes"]
        cmd += ["--local-addr", "127.0.0.1", "-m", "affectfusion.cli", "train", str(cfg_path), "--out", "run"]
        nodes.append(subprocess.Popen(cmd, env=env, cwd=node, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n---\n".join(log[-2000:] for log in logs)

    # c10d gives global ranks in the order the agents join: either "machine" may hold rank 0
    written = [node for node in ("node0", "node1") if any((tmp_path / node).iterdir())]
    assert len(written) == 1, "one run folder, written by rank 0 alone"
    run = tmp_path / written[0] / "run"
    assert [p.name for p in (tmp_path / written[0]).iterdir()] == ["run"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["world_size"] == 2
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2], "rank 0 alone writes the history"
    assert (run / "checkpoints/best.safetensors").is_file() and (run / "eval/test/metrics.json").is_file()
