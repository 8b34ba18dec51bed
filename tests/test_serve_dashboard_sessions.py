"""A dashboard session that ends frees what it held: a served dashboard, browser windows that upload an
image, analyse and close, and Streamlit's own count of the uploaded bytes it still keeps
(``/_stcore/metrics``). Without this, Streamlit keeps a closed session's uploads for good."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.dashboard_helpers import TEXT, Browser


def uploaded_bytes(port: int) -> float:
    """The bytes of uploaded files the Streamlit server holds, over every session it keeps."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return sum(float(x.split()[-1]) for x in lines if x.startswith("cache_memory_bytes") and "UploadedFileManager" in x)


@pytest.mark.slow
def test_a_closed_browser_window_frees_its_session(trained_media_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(image)
    with Browser(trained_media_run, tmp_path) as b:
        b.open()
        home = b.driver.current_window_handle
        for _ in range(2):  # a window of its own: a new browser session each time
            b.driver.switch_to.new_window("window")
            b.open()
            b.css(".st-key-in_text textarea").send_keys(TEXT)
            b.css(".st-key-in_image input[type=file]").send_keys(str(image))
            b.css(".st-key-in_image [data-testid=stFileChipName]")
            b.click("[data-testid=stFormSubmitButton] button")
            b.css(".st-key-prediction [data-testid=stMetricValue]")
            held = time.monotonic() + 30  # the open session holds its upload (Streamlit's count may lag)
            while uploaded_bytes(b.port) <= image.stat().st_size * 0.9:
                assert time.monotonic() < held, "the open session's upload is not counted"
                time.sleep(0.5)
            b.driver.close()  # the user closes the window
            b.driver.switch_to.window(home)
            deadline = time.monotonic() + 30
            while uploaded_bytes(b.port) > 0:
                assert time.monotonic() < deadline, "the closed session's upload is still held"
                time.sleep(0.5)
