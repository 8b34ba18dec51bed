"""``extract --engine ray``: a local Ray instance (2 CPUs) makes the same features as the local engine, into the
same content-addressed store, and a run killed with SIGKILL resumes where it stopped."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from affectfusion.errors import AffectFusionError
from affectfusion.extract import FeatureStore, Item, LocalEngine, build_extractor
from tests.helpers import run_cli

N_CLIPS = 40
KILLED_CLIPS = 24  # the resume test: a first batch of 16, then 8


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One Ray instance for the module (starting one takes seconds): 2 CPUs, quiet."""
    ray = pytest.importorskip("ray")
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def clips() -> list[Path]:
    from tests.helpers import SHARED_DATA

    folder = SHARED_DATA / "ravdess_speech_16k"
    if not folder.is_dir():
        pytest.skip("../shared/data/ravdess_speech_16k is absent")
    return sorted((folder / "train").rglob("*.wav"))[:N_CLIPS]


@pytest.fixture(scope="module")
def local_features(clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """eGeMAPS of the clips by the default engine (in this process)."""
    store = FeatureStore(tmp_path_factory.mktemp("local_cache"))
    features, report = store.run(egemaps(), items(clips), progress=False, engine=LocalEngine(1))
    assert report.computed == N_CLIPS and not report.failures
    return features


def egemaps() -> Any:
    return build_extractor("egemaps", {}, "test")


def items(clips: list[Path]) -> list[Item]:
    return [Item(c.stem, c, str(c)) for c in clips]


def entries(cache: Path) -> dict[str, Path]:
    return {p.stem: p for p in cache.glob("egemaps/*/items/*/*.npy")}


def test_ray_engine_matches_the_local_engine(
    ray_address: str, clips: list[Path], local_features: dict[str, np.ndarray], tmp_path: Path
) -> None:
    from affectfusion.extract.ray_engine import RayEngine

    engine = RayEngine(actors=2)  # joins the module's instance
    store = FeatureStore(tmp_path)
    features, report = store.run(egemaps(), items(clips), progress=False, engine=engine)
    assert (report.computed, report.cached, report.failures) == (N_CLIPS, 0, [])
    assert features.keys() == local_features.keys()
    for key, value in local_features.items():
        np.testing.assert_array_equal(features[key], value)  # the same extractor code: identical, not close
    assert len(entries(tmp_path)) == N_CLIPS  # one entry per clip, at the store's usual place
    _, again = store.run(egemaps(), items(clips), progress=False, engine=engine)
    assert (again.computed, again.cached) == (0, N_CLIPS)


def small_ravdess(clips: list[Path], root: Path) -> Path:
    """A RAVDESS folder holding only the chosen clips (links), with their rows of labels.csv."""
    source = clips[0].parents[2]
    with (source / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    wanted = {c.relative_to(source).as_posix() for c in clips}
    kept = [r for r in rows if r["path"] in wanted]
    assert len(kept) == len(clips)
    for r in kept:
        (root / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / r["path"]).symlink_to(source / r["path"])
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return root


def ravdess_config(tmp_path: Path, clips: list[Path]) -> Path:
    raw = {
        "name": "ray_extract",
        "data": {
            "adapter": "ravdess",
            "root": str(small_ravdess(clips, tmp_path / "ravdess")),
            "val_split": "train",
            "extract": {"audio": {"name": "egemaps"}},
            "cache_dir": str(tmp_path / "cache"),
        },
        "tasks": [{"name": "emotion", "type": "classification", "classes": ["neutral", "calm", "happy", "sad"]}],
        "model": {"encoders": {"audio": {"name": "mean"}}, "fusion": {"name": "concat"}},
    }
    path = tmp_path / "ray_extract.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_ray_extract_resumes_after_kill9(
    ray_address: str,
    clips: list[Path],
    local_features: dict[str, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL the driver once some features are stored; the rerun computes only the rest, nothing is half-written."""
    clips = clips[:KILLED_CLIPS]
    config = ravdess_config(tmp_path, clips)
    args = ["extract", str(config), "--split", "train", "--engine", "ray", "--address", ray_address]
    args += ["--workers", "1"]  # one actor: batches one after another, so the kill lands between them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "affectfusion.cli", *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not entries(cache) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, killed_err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, killed_err.decode()[-2000:]
    done = len(entries(cache))
    assert 0 < done < len(clips)

    code, _, err = run_cli(args, capsys, monkeypatch)  # the rerun, in this process (it joins the same Ray)
    assert code == 0, err[-2000:]
    report = json.loads(next(cache.glob("egemaps/*/report.json")).read_text())
    assert (report["cached"], report["computed"], report["failures"]) == (done, len(clips) - done, [])
    assert len(entries(cache)) == len(clips)
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")], "a partial file was left behind"
    features, _ = FeatureStore(cache).run(egemaps(), items(clips), progress=False)
    for clip in clips:
        np.testing.assert_array_equal(features[clip.stem], local_features[clip.stem])


def test_address_needs_the_ray_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "c", "data": {"adapter": "synthetic"}}))
    code, _, err = run_cli(["extract", str(config), "--address", "auto"], capsys, monkeypatch)
    assert code != 0 and "--address names a Ray cluster; it needs --engine ray" in err
    assert "Traceback" not in err


def test_missing_ray_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from affectfusion.extract.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(AffectFusionError, match=r"pip install 'affectfusion\[ray\]'"):
        import_ray()


def test_an_address_nobody_answers_is_one_line() -> None:
    """Checked before joining: not Ray retrying the connection for minutes."""
    import socket

    from affectfusion.extract.ray_engine import _check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(AffectFusionError, match=f"--address 127.0.0.1:{port}: no Ray cluster answers there"):
        _check_reachable(f"127.0.0.1:{port}")
    for resolved_by_ray in (None, "auto", "ray://head:10001"):
        _check_reachable(resolved_by_ray)


class FakeCluster:
    """Ray as the engine sees it, with GPUs: records how actors are asked for, starts none."""

    def __init__(self, resources: dict[str, float], fingerprint: str) -> None:
        import ray

        self.exceptions = ray.exceptions
        self.resources = resources
        self.fingerprint = fingerprint
        self.asked: list[dict[str, Any]] = []
        self.devices: list[str | None] = []

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, **options: Any) -> Any:
        self.asked.append(options)
        cluster = self

        class Actor:
            @staticmethod
            def remote(name: str, options_json: str, device: str | None) -> Any:
                cluster.devices.append(device)
                return type("Handle", (), {"fingerprint": type("M", (), {"remote": lambda: cluster.fingerprint})})

        return lambda cls: Actor

    def get(self, refs: list[Any]) -> list[Any]:
        return refs


@pytest.mark.parametrize(
    ("name", "device", "resources", "expected"),
    [
        ("whisper_base", "auto", {"CPU": 16.0, "GPU": 2.0}, (2, 1.0, "cuda")),  # one actor per GPU
        ("whisper_base", "cpu", {"CPU": 16.0, "GPU": 2.0}, (16, 0.0, "cpu")),
        ("whisper_base", "auto", {"CPU": 4.0}, (4, 0.0, "cpu")),  # no GPU in the cluster
        ("egemaps", "auto", {"CPU": 4.0, "GPU": 2.0}, (4, 0.0, "auto")),  # no model to put on a GPU
    ],
)
def test_actors_get_a_gpu_when_their_model_runs_on_one(
    name: str, device: str, resources: dict[str, float], expected: tuple[int, float, str]
) -> None:
    pytest.importorskip("ray")
    from affectfusion.extract.ray_engine import RayEngine

    extractor = build_extractor(name, {}, "test", device=device)  # no model loads: the fake starts no actor
    cluster = FakeCluster(resources, extractor.fingerprint())
    actors = RayEngine()._actors(cluster, extractor, n_batches=100)
    assert (len(actors), cluster.asked[0]["num_gpus"], cluster.devices[0]) == expected
    cluster.fingerprint = "other"
    with pytest.raises(AffectFusionError, match="other package versions"):
        RayEngine()._actors(cluster, extractor, n_batches=100)
