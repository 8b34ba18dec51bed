"""eeg_bands: band power peaks where the rhythm is, DE matches the Gaussian closed form, shapes, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.extract import EXTRACTORS, ExtractionError, FeatureStore, Item, build_extractor
from affectfusion.extract.signal import EEGBandsExtractor  # importing registers eeg_bands

FS = 250.0
BANDS = ["theta", "alpha", "beta", "gamma"]


def bands(**options) -> EEGBandsExtractor:
    return build_extractor("eeg_bands", options, "test")


def sine(freq: float, seconds: float = 8.0, channels: int = 3) -> Signal:
    t = np.arange(int(seconds * FS)) / FS
    return Signal(np.stack([np.sin(2 * np.pi * freq * t + c) for c in range(channels)]), FS)


def test_registered_as_signal_extractor() -> None:
    assert "eeg_bands" in EXTRACTORS
    assert EXTRACTORS.get("eeg_bands").kind == "signal"


def test_10hz_sine_has_its_power_in_alpha() -> None:
    out = bands(features=["power"]).extract(sine(10.0)).reshape(3, 4)  # [channels, bands]
    assert (out.argmax(axis=1) == BANDS.index("alpha")).all()
    # A unit sine carries power 1/2; log_power is the natural log.
    np.testing.assert_allclose(out[:, 1], np.log(0.5), atol=0.02)
    linear = bands(features=["power"], log_power=False).extract(sine(10.0)).reshape(3, 4)
    np.testing.assert_allclose(linear[:, 1], 0.5, rtol=0.02)
    assert (linear[:, [0, 2, 3]] < 0.01).all()


def test_de_of_band_passed_gaussian_noise_matches_closed_form() -> None:
    """White noise of variance s^2 band-passed by |H|^2 (zero-phase) has variance s^2 * mean(|H|^4) over
    [0, fs/2]; a Gaussian of variance v has differential entropy 0.5 * log(2 pi e v)."""
    rng = np.random.default_rng(0)
    sd = 3.0
    x = rng.normal(0.0, sd, size=(16, int(FS * 120)))
    ex = bands(features=["de"])
    de = ex.extract(Signal(x, FS)).reshape(16, 4)
    for b, (low, high) in enumerate(ex.options.bands.values()):
        sos = sps.butter(ex.options.filter_order, [low, high], btype="bandpass", fs=FS, output="sos")
        _, h = sps.sosfreqz(sos, worN=1 << 16, fs=FS)
        expected = 0.5 * np.log(2 * np.pi * np.e * sd**2 * np.mean(np.abs(h) ** 4))
        assert de[:, b].mean() == pytest.approx(expected, abs=0.03), BANDS[b]


def test_vector_layout_is_channel_band_feature() -> None:
    x = sine(10.0, channels=2)
    both = bands().extract(x)
    assert both.shape == (2 * 4 * 2,)
    power = bands(features=["power"]).extract(x)
    de = bands(features=["de"]).extract(x)
    np.testing.assert_allclose(both.reshape(2, 4, 2)[..., 0].ravel(), power, rtol=1e-6)
    np.testing.assert_allclose(both.reshape(2, 4, 2)[..., 1].ravel(), de, rtol=1e-6)
    swapped = bands(features=["de", "power"]).extract(x).reshape(2, 4, 2)
    np.testing.assert_allclose(swapped[..., 0].ravel(), de, rtol=1e-6)


def test_windowed_output_is_a_sequence() -> None:
    x = sine(10.0, seconds=10.0, channels=5)
    out = bands(window_seconds=2.0, step_seconds=1.0).extract(x)
    assert out.shape == (9, 5 * 4 * 2)  # windows start at 0, 1, ..., 8 s
    assert bands(window_seconds=2.0).extract(x).shape == (5, 40)  # step defaults to the window
    assert np.isfinite(out).all()
    custom = bands(bands={"slow": [1, 4], "fast": [4, 40]}, window_seconds=2.0).extract(x)
    assert custom.shape == (5, 5 * 2 * 2)


@pytest.mark.parametrize(
    ("item", "options", "message"),
    [
        (Signal(np.full((2, 1000), np.nan), FS), {}, "NaN"),
        (sine(10.0, seconds=1.5), {"window_seconds": 2.0}, "shorter than one 2.0 s window"),
        (sine(10.0, seconds=0.5), {}, "shorter than one 1.0 s Welch segment"),
        (Signal(np.zeros(1000), FS), {}, "[channels, time]"),
        (sine(10.0), {"bands": {"high": [40, 200]}}, "Nyquist"),
        (sine(10.0), {"bands": {"narrow": [10.1, 10.4]}, "features": ["power"]}, "no frequency bin"),
        (Path("eeg.edf"), {}, "expects an in-memory Signal"),
    ],
)
def test_bad_input_raises_extraction_error(item, options: dict, message: str) -> None:
    with pytest.raises(ExtractionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bands(**options).extract(item)


@pytest.mark.parametrize(
    "options",
    [{"bands": {"alpha": [13, 8]}}, {"features": ["power", "power"]}, {"step_seconds": 1.0}, {"features": []}],
)
def test_bad_options_are_config_errors(options: dict) -> None:
    with pytest.raises(AffectFusionError):
        bands(**options)


def test_feature_store_caches_signals_and_reports_failures(tmp_path: Path) -> None:
    ex = bands(window_seconds=1.0)
    items = [Item("a", sine(10.0)), Item("b", sine(20.0)), Item("bad", Signal(np.full((3, 2000), np.nan), FS))]
    store = FeatureStore(tmp_path)
    features, report = store.run(ex, items, progress=False)
    assert sorted(features) == ["a", "b"] and features["a"].shape == (8, 24)
    assert report.computed == 2 and [f["id"] for f in report.failures] == ["bad"]
    again, report2 = store.run(ex, items[:2], progress=False)
    assert report2.cached == 2 and report2.computed == 0
    np.testing.assert_array_equal(again["b"], features["b"])
