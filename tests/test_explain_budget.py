"""Explain within a budget: exact Shapley values while 2^M subsets fit, a sampled estimate with its
standard error beyond, a 422 naming the limit when even that would take too long."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from affectfusion.analysis.attribution import ShapleyBudget, exact_shapley, sampled_passes, sampled_shapley
from affectfusion.errors import AffectFusionError
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from affectfusion.serve.input_limits import InputLimits
from affectfusion.training.trainer import Trainer
from tests.helpers import tiny_config

MODALITIES = [f"m{i:02d}" for i in range(12)]


def game(s: frozenset[str]) -> np.ndarray:
    """Additive in 12 players, plus a three-way interaction of m01, m02 and m03 (2.0 to each)."""
    return np.array([sum(int(p[1:]) for p in s) + 6.0 * ({"m01", "m02", "m03"} <= s)])


def test_sampled_values_are_efficient_with_an_honest_error() -> None:
    phi, se = sampled_shapley(game, MODALITIES, n_permutations=64, seed=3)
    np.testing.assert_allclose(sum(phi.values()), game(frozenset(MODALITIES)) - game(frozenset()))
    assert se["m05"][0] == pytest.approx(0.0, abs=1e-9)  # no interaction: every order gives the same
    assert se["m01"][0] > 0
    for p in MODALITIES:
        expected = int(p[1:]) + (2.0 if p in ("m01", "m02", "m03") else 0.0)
        assert abs(phi[p][0] - expected) <= 4 * se[p][0] + 1e-9
    exact = exact_shapley(game, MODALITIES[:6])
    np.testing.assert_allclose(sum(exact.values()), game(frozenset(MODALITIES[:6])) - game(frozenset()))


def test_the_budget_picks_exact_sampled_or_refuses() -> None:
    budget = ShapleyBudget(max_seconds=10.0)
    assert budget.plan(8, 0.001) == 0  # 256 passes: exact
    assert budget.plan(12, 0.001) == 64  # 4096 subsets: sampled, 706 passes
    assert sampled_passes(12, 64) == 706
    assert budget.plan(12, 0.05) == 16  # 64 and 32 permutations are over 10 s, 16 fit (178 passes)
    with pytest.raises(AffectFusionError, match="max_explain_seconds=10"):
        budget.plan(12, 1.0)


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic run with 12 feature modalities."""
    mods = {m: {"dim": 4, "seq_len": 3, "informativeness": 0.5} for m in MODALITIES}
    cfg = tiny_config({"data.options.modalities": mods, "data.options.n_train": 60, "train.epochs": 1})
    out = tmp_path_factory.mktemp("wide") / "run"
    Trainer(cfg, out).fit()
    return out


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def test_twelve_modalities_are_sampled_with_their_error_in_the_api(wide_run: Path) -> None:
    rng = np.random.default_rng(0)
    files = {f"features_{m}": (f"{m}.npy", npy(rng.normal(size=(3, 4)).astype(np.float32))) for m in MODALITIES}
    client = TestClient(create_app(Predictor.load(wide_run)))
    r = client.post("/predict?explain=true", files=files)
    assert r.status_code == 200, r.text
    a = r.json()["tasks"]["label"]["attribution"]
    assert a["method"] == "sampled" and not a["exact"] and a["permutations"] >= 8
    assert set(a["standard_error"]) == set(MODALITIES) and all(v >= 0 for v in a["standard_error"].values())
    assert sum(a["values"].values()) == pytest.approx(a["output"] - a["base"], abs=1e-5)

    slow = TestClient(create_app(Predictor.load(wide_run), limits=InputLimits(max_explain_seconds=1e-6)))
    r = slow.post("/predict?explain=true", files=files)
    assert r.status_code == 422 and "max_explain_seconds" in r.json()["detail"]
    assert slow.post("/predict", files=files).status_code == 200  # without explain: predicted


def test_few_modalities_stay_exact(tmp_path: Path) -> None:
    Trainer(tiny_config(), tmp_path / "run").fit()
    p = Predictor.load(tmp_path / "run").predict_one({"text": np.ones(8, np.float32)}, explain=True)
    a = p.tasks["label"]["attribution"]
    assert a["method"] == "exact" and a["exact"] and "standard_error" not in a
    assert sum(a["values"].values()) == pytest.approx(a["output"] - a["base"], abs=1e-6)
