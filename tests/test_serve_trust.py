"""Predictions that say how far to trust them: calibrated probabilities, the conformal prediction set
and each modality's Shapley attribution, from the Predictor, `predict --explain`, the API and the
dashboard (AppTest; the headless-browser test in test_serve_dashboard covers the page as a whole)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from affectfusion.data.examples.media import CLASSES, make_media_table
from affectfusion.recipes.trust import calibrate_run, conformal_run
from affectfusion.rundir import read_run
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from affectfusion.serve.dashboard import streamlit_command
from affectfusion.training.loading import load_model
from tests.dashboard_helpers import APP_SCRIPT, ARTIFACTS, CHROMEDRIVER, CHROMIUM, TEXT, free_port, wait_healthy
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def trusted_run(trained_media_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the media run, calibrated and with conformal sets at 80 % on a held-out `calib` split
    (``data.calibration_split``): the run's 12-row dev split, on which it makes no error, is refused."""
    base = tmp_path_factory.mktemp("trusted")
    run_dir, data = base / "run", base / "data"
    shutil.copytree(trained_media_run, run_dir)
    shutil.copytree(trained_media_run.parent / "data", data)
    make_media_table(data, seed=1, splits={"calib": 45})
    calib = pd.read_csv(data / "calib.csv", keep_default_na=False)
    noisy = calib.index % 4 == 0  # a quarter of the labels disagree with the words: the model errs there
    calib.loc[noisy, "emotion"] = [CLASSES[(CLASSES.index(e) + 1) % 3] for e in calib.loc[noisy, "emotion"]]
    calib.to_csv(data / "calib.csv", index=False)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"].update(root=str(data), calibration_split="calib")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    run = read_run(run_dir)
    model = load_model(run)
    calibrate_run(run, model)
    conformal_run(run, model, 0.2, run.config.data.val_split)
    return run_dir


def check_task_output(out: dict, modalities: list[str], explained: bool) -> None:
    assert sum(out["calibrated_probabilities"].values()) == pytest.approx(1.0) and out["temperature"] > 0
    top = max(out["calibrated_probabilities"], key=out["calibrated_probabilities"].get)
    assert top == out["label"] and out["label"] in out["prediction_set"]["classes"]
    assert out["prediction_set"]["coverage"] == pytest.approx(0.8) and out["prediction_set"]["method"] == "APS"
    if explained:
        a = out["attribution"]
        assert set(a["values"]) == set(modalities)
        assert sum(a["values"].values()) == pytest.approx(a["output"] - a["base"], abs=1e-5)
        assert a["output"] == pytest.approx(out["probabilities"][out["label"]], abs=1e-5)
    else:
        assert "attribution" not in out


def test_predictor_returns_calibrated_probabilities_sets_and_attribution(trusted_run: Path) -> None:
    predictor = Predictor.load(trusted_run)
    plain = predictor.predict_one({"text": TEXT})
    check_task_output(plain.tasks["emotion"], predictor.modalities, explained=False)
    explained = predictor.predict_one({"text": TEXT}, explain=True)
    check_task_output(explained.tasks["emotion"], predictor.modalities, explained=True)
    values = explained.tasks["emotion"]["attribution"]["values"]
    assert all(values[m] == 0.0 for m in predictor.modalities if m not in explained.modalities_used)


def test_api_schema_and_explain(trusted_run: Path) -> None:
    predictor = Predictor.load(trusted_run)
    with TestClient(create_app(predictor)) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["TaskOutput"]["properties"]
        assert {"calibrated_probabilities", "temperature", "prediction_set", "interval", "attribution"} <= set(schema)
        body = client.post("/predict", data={"text": TEXT}, params={"explain": "true"}).json()
        check_task_output(body["tasks"]["emotion"], predictor.modalities, explained=True)
        plain = client.post("/predict", data={"text": TEXT}).json()
        check_task_output(plain["tasks"]["emotion"], predictor.modalities, explained=False)


def test_predict_explain_prints_the_attribution(trusted_run: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["predict", str(trusted_run), "--text", TEXT, "--explain"], capsys, monkeypatch)
    assert code == 0, err
    assert "calibrated (T = " in out and "prediction set (80% coverage, APS)" in out and "attribution (" in out


def test_dashboard_shows_calibrated_probabilities_set_and_attribution(trusted_run: Path) -> None:
    at = AppTest.from_string(APP_SCRIPT.format(run=str(trusted_run)), default_timeout=120)
    at.run()
    at.text_area(key="in_text").set_value(TEXT)
    next(b for b in at.button if b.label == "Analyse").click()
    at.run()
    assert not at.exception, at.exception
    analysis = at.session_state["analysis"]
    assert analysis.error is None and "emotion" in analysis.sets and "emotion" in analysis.attribution
    headers = [h.value for h in at.subheader]
    assert any("(calibrated, T = " in h for h in headers) and "emotion: modality attribution" in headers
    assert any("prediction set" in m.value for m in at.markdown)


def test_dashboard_trust_in_headless_chromium(trusted_run: Path, tmp_path: Path) -> None:
    """The real page: after an analysis it shows the prediction set, the calibrated probabilities and a
    bar per modality (the attribution chart is drawn by Vega in the browser)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    port, log = free_port(), tmp_path / "streamlit.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(streamlit_command(trusted_run, port=port), stdout=log_file, stderr=subprocess.STDOUT)
    driver = None
    try:
        wait_healthy(proc, port, log)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,3000"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        wait = WebDriverWait(driver, 90)

        def css(selector: str) -> Any:
            return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))

        driver.get(f"http://127.0.0.1:{port}/")
        css(".st-key-metrics")
        css(".st-key-in_text textarea").send_keys(TEXT)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=stFormSubmitButton] button"))).click()
        expected = Predictor.load(trusted_run).predict_one({"text": TEXT}, explain=True).tasks["emotion"]
        shown_set = css(".st-key-prediction_set").text
        assert "prediction set" in shown_set and expected["label"] in shown_set and "80% coverage" in shown_set
        css(".st-key-attribution_emotion canvas, .st-key-attribution_emotion svg")
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h3")]
        assert any("(calibrated, T = " in h for h in headers), headers
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "analyse_trust.png"))
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
