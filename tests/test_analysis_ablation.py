"""Modality ablation and robustness curves on synthetic data whose truth is known.

Text carries the label fully, audio partly, video not at all (informativeness 0): the ablation
must rank video's effect lowest in both modes, and hiding text must cost the most.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from affectfusion.analysis.ablation import modality_effects, modality_subsets
from affectfusion.cli.analysis import ablate_command, robustness_command
from affectfusion.errors import AffectFusionError
from tests.helpers import tiny_config

# Enough data and epochs that the tiny model learns the signal (macro F1 ~0.65 on 200 test
# samples), and modality dropout so that masking a modality at test time is a case it has seen.
TRUTH = {
    "data.options.modalities.audio.informativeness": 0.8,
    "data.options.modalities.video.informativeness": 0.0,
    "data.options.n_train": 300,
    "data.options.n_eval": 200,
    "train.epochs": 5,
    "train.modality_dropout": 0.3,
}
SUBSETS = {"text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video"}
SEEDS = {"retrain": "0", "mask": "0,1"}  # two seeds in the cheap mode, for the spread columns
FILES = ["ablation.csv", "ablation.json", "ablation.md", "ablation.png", "ablation_effect.png", "report.html"]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "truth.yaml"
    path.write_text(yaml.safe_dump(tiny_config(TRUTH).to_dict(), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def ablations(config_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both modes once for the module (7 + 2 tiny trainings); tests read their output folders."""
    root = tmp_path_factory.mktemp("ablation")
    for mode, seeds in SEEDS.items():
        ablate_command(str(config_path), mode, seeds, None, root / mode)
    return {mode: root / mode for mode in SEEDS}


@pytest.mark.parametrize("mode", ["retrain", "mask"])
def test_every_subset_is_scored_with_files(ablations: dict[str, Path], mode: str) -> None:
    out = ablations[mode]
    for name in FILES:
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "ablation.csv")
    assert set(table["subset"]) == SUBSETS and (table["mode"] == mode).all()
    assert table["macro_f1_mean"].is_monotonic_decreasing  # sorted, best first
    assert table["macro_f1_mean"].between(0, 1).all() and table["macro_f1_seed0"].notna().all()
    assert table["macro_f1_std"].notna().all() == (mode == "mask")  # a spread needs two seeds
    data = json.loads((out / "ablation.json").read_text())
    assert data["main_metric"] == "macro_f1" and data["modalities"] == ["text", "audio", "video"]
    assert {s["subset"] for s in data["subsets"]} == SUBSETS
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "text+audio+video" in html
    runs = [out / s / "seed0" for s in SUBSETS] if mode == "retrain" else [out / "full" / f"seed{k}" for k in (0, 1)]
    assert all((r / "checkpoints" / "best.safetensors").is_file() for r in runs)


@pytest.mark.parametrize("mode", ["retrain", "mask"])
def test_pure_noise_modality_has_smallest_effect(ablations: dict[str, Path], mode: str) -> None:
    effects = {
        e["modality"]: e["macro_f1_effect_mean"]
        for e in json.loads((ablations[mode] / "ablation.json").read_text())["effects"]
    }
    assert min(effects, key=effects.get) == "video", effects
    assert max(effects, key=effects.get) == "text", effects
    assert abs(effects["video"]) < 0.05 < effects["audio"], effects


def test_rerun_reuses_finished_runs(ablations: dict[str, Path], config_path: Path) -> None:
    checkpoint = ablations["mask"] / "full" / "seed0" / "checkpoints" / "best.safetensors"
    before = checkpoint.stat().st_mtime_ns
    ablate_command(str(config_path), "mask", SEEDS["mask"], None, ablations["mask"])
    assert checkpoint.stat().st_mtime_ns == before


def test_missing_and_noise_degrade_an_informative_modality(ablations: dict[str, Path]) -> None:
    run = ablations["mask"] / "full" / "seed0"
    robustness_command(run, ["text"], "0,1,3", "0,0.5,1", None, 2)
    out = run / "analysis" / "robustness_test"
    for name in ["robustness.csv", "robustness.json", "robustness_noise.png", "robustness_missing.png", "report.html"]:
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "robustness.csv")
    assert set(table["modality"]) == {"text"}
    for kind, levels in (("missing", [0, 0.5, 1]), ("noise", [0, 1, 3])):
        curve = table[table["perturbation"] == kind].set_index("level")["macro_f1_mean"]
        assert list(curve.index) == levels
        assert all(b <= a + 0.02 for a, b in zip(curve, curve.iloc[1:], strict=False)), curve
        assert curve.iloc[-1] < curve.iloc[0] - 0.1, curve
    deterministic = table[(table["level"] == 0) | ((table["perturbation"] == "missing") & (table["level"] == 1))]
    assert (deterministic["repeats"] == 1).all() and (deterministic["macro_f1_std"] == 0).all()


def test_effects_are_paired_differences() -> None:
    """Additive truth: a contributes 0.3, b 0.1, c nothing, so the effects are exactly that."""
    contribution = {"a": 0.3, "b": 0.1, "c": 0.0}
    subsets = modality_subsets(["a", "b", "c"])
    assert len(subsets) == 7 and subsets[0] == ("a",) and subsets[-1] == ("a", "b", "c")
    values = {s: {"m": [0.2 + sum(contribution[x] for x in s) + d for d in (0.0, 0.02)]} for s in subsets}
    effects = modality_effects(values, ["a", "b", "c"], ["m"]).set_index("modality")
    for m, c in contribution.items():
        assert effects.loc[m, "m_effect_mean"] == pytest.approx(c)
        assert effects.loc[m, "m_effect_std"] == pytest.approx(0.0, abs=1e-12)
        assert effects.loc[m, "n_pairs"] == 3
    single = modality_effects({("a",): {"m": [0.5]}}, ["a"], ["m"])
    assert math.isnan(single.loc[0, "m_effect_mean"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "drop"}, "--mode must be one of retrain, mask"),
        ({"seeds": "1,x"}, "--seeds expects comma-separated"),
        ({"seeds": "1.5"}, "--seeds expects comma-separated non-negative integers"),
        ({"set_": ["model.modalities=[text,eeg]"]}, "unknown modality eeg; the data has: text, audio, video"),
    ],
)
def test_ablate_bad_input(config_path: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"config": str(config_path), "mode": "retrain", "seeds": "0", "set_": None, "out": tmp_path} | kwargs
    with pytest.raises(AffectFusionError, match=message.replace("[", r"\[")):
        ablate_command(**args)
    assert not any(tmp_path.iterdir())  # rejected before anything was trained


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modality": ["eeg"]}, "unknown modality eeg; the run has: audio, text, video"),
        ({"noise": "0,a"}, "--noise expects comma-separated numbers"),
        ({"noise": ""}, "--noise expects comma-separated numbers"),
        ({"missing": "0,1.5"}, "missing-rate levels must be between 0 and 1, got 1.5"),
        ({"noise": "-1"}, "noise levels must be finite and >= 0, got -1"),
        ({"repeats": 0}, "repeats must be at least 1"),
    ],
)
def test_robustness_bad_input(ablations: dict[str, Path], kwargs: dict, message: str) -> None:
    args = {
        "run_dir": ablations["mask"] / "full" / "seed0",
        "modality": None,
        "noise": "0,1",
        "missing": "0,1",
        "split": None,
        "repeats": 1,
    } | kwargs
    with pytest.raises(AffectFusionError, match=message):
        robustness_command(**args)


def test_robustness_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(AffectFusionError, match="is not a run directory"):
        robustness_command(tmp_path, None, "0", "0", None, 1)


@pytest.mark.shared_data
def test_mosi_mask_ablation_ranks_text_first(shared_data: Path, tmp_path: Path) -> None:
    """Real data (CMU-MOSI, label-informed features): text dominates, audio adds nothing."""
    root = shared_data / "cmu_mosi_unimodal"
    ablate_command("mosi", "mask", "0", ["train.epochs=3", f"data.root={root}"], tmp_path)
    effects = {
        e["modality"]: e["macro_f1_effect_mean"]
        for e in json.loads((tmp_path / "ablation.json").read_text())["effects"]
    }
    assert max(effects, key=effects.get) == "text" and effects["text"] > effects["audio"] + 0.1, effects
