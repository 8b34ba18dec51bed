"""Quiet by default (issue #14 item 6): MediaPipe/TFLite start-up lines never reach stderr unless verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOISE = ("GetPrototype", "XNNPACK", "absl::InitializeLog", "inference_feedback_manager")
SCRIPT = """
from pathlib import Path
import numpy as np
from PIL import Image
from affectfusion.extract import build_extractor
path = Path(__import__("sys").argv[1])
Image.fromarray((np.random.default_rng(0).random((96, 96, 3)) * 255).astype("uint8")).save(path)
for name, options in [("fer_cnn", {"detector": "mediapipe"}), ("face_mesh", {})]:
    extractor = build_extractor(name, options, "test")
    print(name, extractor.extract_batch([path]))
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_face_models_load_without_native_noise(tmp_path: Path, verbose: bool) -> None:
    pytest.importorskip("mediapipe")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("AFFECTFUSION_VERBOSE", None)
    if verbose:
        env["AFFECTFUSION_VERBOSE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "x.png")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "fer_cnn" in done.stdout and "face_mesh" in done.stdout
    noisy = [n for n in NOISE if n in done.stderr]
    if verbose:
        assert noisy, "with --verbose the libraries' own lines are shown"
    else:
        assert not noisy, done.stderr


def test_extraction_prints_one_line_per_extractor_and_no_report_path_when_nothing_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    from affectfusion.config import validate
    from affectfusion.data import build_adapter
    from affectfusion.pipeline import extract_features
    from tests.fixtures_media import media_table_config

    pd.DataFrame({"id": ["a", "b"], "text": ["I love it", "I hate it"], "emotion": ["happy", "sad"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    raw = media_table_config(
        "quiet",
        tmp_path,
        tmp_path / "cache",
        {"text": "text"},
        {"text": {"name": "lexicon"}},
        ["happy", "sad"],
        {"fusion": {"name": "concat"}},
        {"progress": True},
    )
    cfg = validate(raw)
    samples = build_adapter(cfg.data).load(tmp_path, "train")
    capsys.readouterr()
    extract_features(cfg, samples, "train")
    err = capsys.readouterr().err
    assert "failures.csv" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        "train: lexicon: 2 items, 0 cached, 2 computed, 0 failed"
    ]


def test_batches_of_read_only_arrays_raise_no_torch_warning() -> None:
    import warnings

    import numpy as np

    from affectfusion.data.types import Collator, ModalitySpec, Sample

    frames = np.ones((3, 4), dtype=np.float32)
    frames.setflags(write=False)  # as cached, memory-mapped or shared features are
    collate = Collator({"audio": ModalitySpec("audio", 4, sequence=True)}, {"y": "classification"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = collate([Sample("a", {"audio": frames}, {"y": 0})])
    assert batch.features["audio"].shape == (1, 3, 4) and float(batch.features["audio"].sum()) == 12.0
