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
