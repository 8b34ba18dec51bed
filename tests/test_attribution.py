"""Truth-known Shapley tests: efficiency, symmetry, a pure-noise modality ranked last."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from affectfusion.analysis.analyze import analyze_run
from affectfusion.analysis.attribution import attribution_by_class, batch_shapley, dataset_shapley, shapley_values
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training.loading import load_model
from affectfusion.training.predict import make_loader
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config


def game(s: frozenset[str]) -> np.ndarray:
    """a and b are interchangeable; c only adds with a (an interaction); d does nothing."""
    value = 2.0 * ("a" in s) + 2.0 * ("b" in s) + 3.0 * ("a" in s and "c" in s)
    return np.array([value, -value])


def test_exact_values_are_efficient_symmetric_and_null() -> None:
    phi = shapley_values(game, ["a", "b", "c", "d"])
    total = sum(phi.values())
    np.testing.assert_allclose(total, game(frozenset("abcd")) - game(frozenset()))
    np.testing.assert_allclose(phi["a"][0], 2.0 + 1.5)
    np.testing.assert_allclose(phi["b"], [2.0, -2.0])
    np.testing.assert_allclose(phi["c"][0], 1.5)
    np.testing.assert_allclose(phi["d"], 0.0)


def test_sampled_values_beyond_six_players_stay_efficient_and_close() -> None:
    weights = {f"m{i}": float(i) for i in range(9)}

    def additive(s: frozenset[str]) -> np.ndarray:
        return np.array([sum(weights[p] for p in s) + 5.0 * ("m1" in s and "m2" in s)])

    phi = shapley_values(additive, list(weights), n_permutations=400, seed=1)
    np.testing.assert_allclose(sum(phi.values()), additive(frozenset(weights)) - additive(frozenset()))
    for p, w in weights.items():
        expected = w + (2.5 if p in ("m1", "m2") else 0.0)
        assert phi[p][0] == pytest.approx(expected, abs=0.5)


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model where text and audio carry the label and 'noise' carries nothing."""
    out = tmp_path_factory.mktemp("attr") / "run"
    cfg = tiny_config(
        {
            "data.options.modalities": {
                "text": {"dim": 8, "informativeness": 1.0},
                "audio": {"dim": 8, "informativeness": 1.0},
                "noise": {"dim": 8, "informativeness": 0.0},
            },
            "data.options.missing_rate": 0.0,
            "data.options.n_train": 300,
            "train.epochs": 12,
            "train.modality_dropout": 0.3,
        }
    )
    Trainer(cfg, out).fit()
    return out


def test_model_shapley_sums_and_ranks_noise_last(noise_run: Path) -> None:
    run = read_run(noise_run)
    model = load_model(run)
    ds = load_dataset(run.config, "dev", modalities=run.modalities)
    task = run.config.tasks[0]
    batch = next(iter(make_loader(ds, model, 32)))
    found = batch_shapley(model, batch, task)
    assert found.method == "exact"
    np.testing.assert_allclose(sum(found.values.values()), found.full - found.none, atol=1e-6)
    phi_all, predicted = dataset_shapley(model, ds, task)
    strength = {m: np.abs(x).mean() for m, x in phi_all.items()}
    assert min(strength, key=strength.get) == "noise", strength
    assert strength["noise"] < 0.5 * min(strength["text"], strength["audio"])
    by_class = attribution_by_class(phi_all, predicted, task.classes)
    assert list(by_class["class"])[-1] == "all" and by_class["n"].iloc[-1] == len(ds)
    assert set(by_class.columns) == {"class", "n", "text", "audio", "noise"}


def test_analyze_aggregates_attribution_per_class(noise_run: Path) -> None:
    summary = analyze_run(noise_run, methods="pca")
    out = Path(summary["out_dir"])
    saved = json.loads((out / "attribution.json").read_text())
    assert saved["exact"] and saved["modalities"] == ["audio", "noise", "text"]
    assert min(saved["mean_abs"], key=saved["mean_abs"].get) == "noise"
    assert (out / "attribution.png").is_file()
    page = (out / "report.html").read_text()
    assert "Modality attribution (Shapley)" in page and 'src="../../analysis/test/attribution.png"' in page
    assert "<h2>Data check</h2>" in page
