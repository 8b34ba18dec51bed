"""What the dashboard tests share: the AppTest script and form helpers, and a served dashboard driven by
headless Chromium (selenium + Debian's chromedriver) that saves screenshots to ``test-artifacts/dashboard``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from affectfusion.serve.dashboard import streamlit_command

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
APP_SCRIPT = """
from pathlib import Path
from affectfusion.serve.dashboard.app import main
main(Path({run!r}))
"""
TEXT = "I feel wonderful and great today, love it"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # Debian: /usr/bin/chromium
CHROMEDRIVER = shutil.which("chromedriver")  # Debian package chromium-driver


def new_app(run_dir: Path) -> AppTest:
    at = AppTest.from_string(APP_SCRIPT.format(run=str(run_dir)), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def submit_analysis(at: AppTest, text: str = "", files: dict[str, tuple[str, bytes]] | None = None) -> AppTest:
    if any(t.key == "in_text" for t in at.text_area):  # a run without text input has no text box
        at.text_area(key="in_text").set_value(text)
    for key, (name, content) in (files or {}).items():
        at.file_uploader(key=f"in_{key}").upload(name, content)
    next(b for b in at.button if b.label == "Analyse").click()
    at.run()
    assert not at.exception, at.exception
    return at


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"streamlit not healthy after {timeout} s:\n{log.read_text()}")


class Browser:
    """``streamlit run`` for a run folder and a headless Chromium on it (``with Browser(...) as b``).

    ``chrome_args`` are added to Chromium's command line (fake media devices, say). On a failure the
    page's screenshot and HTML are saved as ``<failure>.png`` / ``.html`` in :data:`ARTIFACTS`.
    """

    def __init__(
        self, run_dir: Path, tmp_path: Path, chrome_args: Sequence[str] = (), failure: str = "failure"
    ) -> None:
        if not (CHROMIUM and CHROMEDRIVER):
            pytest.skip("needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
        self.webdriver = pytest.importorskip("selenium.webdriver")
        self.run_dir, self.tmp_path, self.chrome_args, self.failure = run_dir, tmp_path, chrome_args, failure
        self.port = free_port()
        self.downloads = tmp_path / "downloads"
        self.driver: Any = None

    def __enter__(self) -> Browser:
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait

        self.downloads.mkdir(exist_ok=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for stale in (f"{self.failure}.png", f"{self.failure}.html"):
            (ARTIFACTS / stale).unlink(missing_ok=True)
        log = self.tmp_path / f"streamlit-{self.port}.log"
        with log.open("w") as log_file:
            self.proc = subprocess.Popen(
                streamlit_command(self.run_dir, port=self.port), stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            wait_healthy(self.proc, self.port, log)
            options = self.webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for arg in (
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,1000",
                *self.chrome_args,
            ):
                options.add_argument(arg)
            options.add_experimental_option(
                "prefs", {"download.default_directory": str(self.downloads), "download.prompt_for_download": False}
            )
            self.driver = self.webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
            self.driver.execute_cdp_cmd(
                "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.wait = WebDriverWait(self.driver, 90)
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        try:
            if self.driver is not None:
                if kind is not None:  # what the page showed when it failed, for the CI log / artifacts
                    self.driver.save_screenshot(str(ARTIFACTS / f"{self.failure}.png"))
                    (ARTIFACTS / f"{self.failure}.html").write_text(self.driver.page_source, encoding="utf-8")
                self.driver.quit()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def open(self) -> None:
        """Load the page and wait until the first script run (which loads the model) has finished."""
        self.driver.get(f"http://127.0.0.1:{self.port}/")
        self.css(".st-key-metrics")  # the first script run has reached the Model tab
        self.wait_idle()

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def click(self, selector: str) -> None:
        """Click once clickable: a disabled button (an upload in flight) would lose the click."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()

    def take_photo(self, key: str, tries: int = 5) -> None:
        """Press "Take Photo" on ``st.camera_input(key=...)`` until the photo shows, as a user would.

        The button is enabled once the camera is granted, but a press is silently lost while the widget's
        ``<video>`` has no frame (``getScreenshot`` returns nothing: at start, and again when the widget
        re-requests the stream after its width settles), so one press is not always a photo; and a press on
        a stream's first, black frame takes a photo without a face.
        """
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        root = f".st-key-{key}"
        for _ in range(tries):
            self.wait.until(  # a frame, and not a blank one (the stream's first frames can be black)
                lambda d: d.execute_script(
                    "const v = document.querySelector(arguments[0]);"
                    " if (!v || v.readyState < 2 || !v.videoHeight) return false;"
                    " const c = document.createElement('canvas'); c.width = c.height = 16;"
                    " const g = c.getContext('2d'); g.drawImage(v, 0, 0, 16, 16);"
                    " const px = g.getImageData(0, 0, 16, 16).data; let sum = 0;"
                    " for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2];"
                    " return sum / (px.length / 4) / 3 > 8;",
                    f"{root} video",
                )
            )
            self.click(f"{root} [data-testid=stCameraInputButton]")
            try:  # the photo taken, shown in place of the live video
                WebDriverWait(self.driver, 5).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"{root} img")))
                return
            except TimeoutException:
                continue
        raise AssertionError(f"{tries} presses of Take Photo on {key!r} gave no photo")

    def screenshot(self, name: str) -> Path:
        height = self.driver.execute_script(
            "return Math.max(...[...document.querySelectorAll('[data-testid=stMain], body')].map(e => e.scrollHeight))"
        )
        self.driver.set_window_size(1400, min(int(height) + 120, 8000))
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1000)
        return path

    def wait_idle(self, polls: int = 3) -> None:
        """Until no script run is in progress for ``polls`` checks in a row (a run shows a status widget)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        idle = [0]

        def check(d: Any) -> bool:
            running = d.find_elements(By.CSS_SELECTOR, "[data-testid=stStatusWidget]")
            idle[0] = 0 if running else idle[0] + 1
            return idle[0] >= polls

        WebDriverWait(self.driver, 90, poll_frequency=0.25).until(check)

    def open_tab(self, name: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        tab = self.wait.until(ec.element_to_be_clickable((By.XPATH, f"//*[@role='tab'][.//p[text()='{name}']]")))
        tab.click()
        self.wait.until(lambda d: tab.get_attribute("aria-selected") == "true")
