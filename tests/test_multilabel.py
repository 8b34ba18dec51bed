"""Multilabel classification (GoEmotions-style): encoding, batches, loss, metrics, threshold tuning
on the validation split, and a tiny task trained end to end through the feature_folder adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from affectfusion.config import ModelConfig, RunConfig, TaskConfig, apply_overrides, validate
from affectfusion.data import ModalitySpec, Sample
from affectfusion.data.tasks import balanced_pos_weight, class_counts, collator_for, encode_targets
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.compare import compare_runs
from affectfusion.evaluation.metrics import multilabel_metrics, task_metrics, tune_thresholds
from affectfusion.evaluation.selection import default_monitor
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import read_run
from affectfusion.training import evaluation as trainer_module  # tune_thresholds is called there
from affectfusion.training.evaluation import evaluate_run
from affectfusion.training.losses import MultiTaskLoss
from affectfusion.training.predict import Predictions, predictions_frame
from affectfusion.training.trainer import Trainer

EMOTIONS = TaskConfig(name="emotions", type="multilabel", classes=["joy", "anger", "neutral"])
TEXT = {"text": ModalitySpec("text", 4, False)}


def samples_with(*targets: Any) -> list[Sample]:
    return [
        Sample(id=f"s{i}", features={"text": np.full((1, 4), i, np.float32)}, targets={"emotions": t})
        for i, t in enumerate(targets)
    ]


# -- config ------------------------------------------------------------------------------------


def test_config_fills_multilabel_defaults_and_rejects_misplaced_options() -> None:
    assert (EMOTIONS.loss_name, EMOTIONS.threshold, EMOTIONS.threshold_tuning) == ("bce", 0.5, "global")
    assert EMOTIONS.pos_weight == "none" and default_monitor(EMOTIONS) == "macro_f1"
    assert TaskConfig.model_validate(EMOTIONS.model_dump()) == EMOTIONS  # the saved config reloads as is
    bad: list[tuple[dict[str, Any], str]] = [
        ({"type": "multilabel"}, "needs 'classes'"),
        ({"type": "multilabel", "classes": ["a", "b"], "loss": "ce"}, "multilabel uses loss 'bce'"),
        ({"type": "multilabel", "classes": ["a", "b"], "pos_weight": [1.0]}, "pos_weight has 1 values"),
        ({"type": "multilabel", "classes": ["a", "b"], "class_weights": "balanced"}, "with pos_weight"),
        ({"type": "multilabel", "classes": ["a", "b"], "threshold": 1.5}, r"probability in \(0, 1\)"),
        ({"type": "classification", "classes": ["a", "b"], "pos_weight": "balanced"}, "for multilabel tasks"),
        ({"type": "classification", "classes": ["a", "b"], "threshold_tuning": "global"}, "for multilabel"),
        ({"type": "classification", "classes": ["a", "b"], "loss": "bce"}, "classification uses loss 'ce'"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            TaskConfig(name="x", **fields)


# -- targets and batches -----------------------------------------------------------------------


def test_encode_accepts_names_indices_multi_hot_and_strings() -> None:
    samples = samples_with(
        ["joy", "anger"],
        ["Neutral"],  # names match case-insensitively, as for single-label tasks
        [0, 2],  # indices
        [1, 0, 1],  # multi-hot: length K, only 0/1
        np.array([0.0, 1.0, 0.0]),
        "joy;neutral",  # a CSV manifest cell
        2,
        [],  # labelled, no class
        None,  # unlabelled
        float("nan"),  # unlabelled (empty numeric cell)
    )
    encode_targets(samples, [EMOTIONS], "test")
    got = [s.targets["emotions"] for s in samples]
    expected = [[1, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]]
    for vector, want in zip(got[:8], expected, strict=True):
        assert vector.dtype == np.float32
        np.testing.assert_array_equal(vector, want)
    assert got[8] is None and got[9] is None


@pytest.mark.parametrize("target", [["joy", "grief"], [0, 5], "joy;grief"])
def test_unknown_label_is_a_one_line_error(target: Any) -> None:
    message = r"sample 's0' has label .* for task 'emotions', which is not in its class list"
    with pytest.raises(AffectFusionError, match=message) as e:
        encode_targets(samples_with(target), [EMOTIONS], "goemotions split 'train'")
    assert "\n" not in str(e.value)


def test_collator_gives_multi_hot_rows_and_a_sample_mask() -> None:
    samples = samples_with(["joy"], None, ["anger", "neutral"], [])
    encode_targets(samples, [EMOTIONS], "test")
    batch = collator_for(TEXT, [EMOTIONS])(samples)
    assert batch.targets["emotions"].dtype == torch.float32
    assert batch.targets["emotions"].tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert batch.target_mask["emotions"].tolist() == [True, False, True, True]
    unlabelled = collator_for(TEXT, [EMOTIONS])(samples[1:2])
    assert unlabelled.targets["emotions"].shape == (1, 3) and not unlabelled.target_mask["emotions"].any()


def test_head_has_k_logits_and_loss_is_bce_with_pos_weight_on_labelled_samples() -> None:
    samples = samples_with(["joy"], None, ["anger", "neutral"], ["joy", "anger"])
    encode_targets(samples, [EMOTIONS], "test")
    counts = class_counts([s for s in samples if s.targets["emotions"] is not None], EMOTIONS)
    assert counts.tolist() == [2, 2, 1]
    pos_weight = balanced_pos_weight(counts, 3)
    assert pos_weight == pytest.approx([0.5, 0.5, 2.0])  # negatives / positives
    assert balanced_pos_weight(np.array([0, 1]), 4) == [1.0, 3.0]  # a class never positive: weight 1

    torch.manual_seed(0)
    model = MultimodalModel(TEXT, [EMOTIONS], ModelConfig(hidden_dim=8, head_hidden=0))
    batch = collator_for(TEXT, [EMOTIONS])(samples)
    out = model(batch)
    assert out.outputs["emotions"].shape == (4, 3)
    w = torch.tensor(pos_weight)
    loss, parts = MultiTaskLoss([EMOTIONS], {"emotions": w}, {})(out, batch)
    keep = batch.target_mask["emotions"]
    expected = F.binary_cross_entropy_with_logits(
        out.outputs["emotions"][keep], batch.targets["emotions"][keep], pos_weight=w
    )
    torch.testing.assert_close(loss, expected)
    assert parts["emotions"] == pytest.approx(float(expected.detach()))
    loss.backward()
    assert all(p.grad is not None for p in model.heads["emotions"].parameters())


# -- metrics and thresholds --------------------------------------------------------------------

# 4 samples x 4 classes; class d is absent from truth and predictions.
ML_TRUE = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
ML_PRED = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_multilabel_metrics_match_hand_computed_values() -> None:
    m = multilabel_metrics(ML_TRUE, ML_PRED, ["a", "b", "c", "d"])
    assert (m["type"], m["n"]) == ("multilabel", 4)
    # Pooled: tp 3, fp 1, fn 2 -> 2*3 / (2*3 + 1 + 2).
    assert m["micro_f1"] == pytest.approx(2 / 3)
    # Per class F1: a 1, b 2/3 (P 1, R 1/2), c 0; d (absent everywhere) is not averaged.
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # Per sample F1: 2/3, 2/3, 2/3, and 1 for the empty sample predicted empty.
    assert m["samples_f1"] == pytest.approx(3 / 4)
    assert m["subset_accuracy"] == pytest.approx(1 / 4)
    assert m["per_class"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert [v["support"] for v in m["per_class"].values()] == [2, 2, 1, 0]
    json.dumps(m, allow_nan=False)
    with pytest.raises(ValueError, match=r"\[n, 4\] multi-hot"):
        multilabel_metrics(ML_TRUE[:, :3], ML_PRED, ["a", "b", "c", "d"])


def test_threshold_tuning_global_per_class_and_none() -> None:
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    proba = np.array([[0.30, 0.1, 0.9], [0.35, 0.2, 0.1], [0.10, 0.8, 0.1], [0.20, 0.6, 0.1]])
    # Column a is separated by thresholds in (0.2, 0.3], column b in (0.6, 0.8]; column c has no
    # positive. Globally, 0.25 and 0.3 tie (a perfect, b one false positive, c one false positive
    # at <= 0.9): the one nearest the default wins.
    np.testing.assert_allclose(tune_thresholds(y[:, :2], proba[:, :2], "global", 0.5), [0.3, 0.3])
    np.testing.assert_allclose(tune_thresholds(y, proba, "per_class", 0.5), [0.3, 0.65, 0.5])
    np.testing.assert_allclose(tune_thresholds(y, proba, "none", 0.4), [0.4, 0.4, 0.4])


def test_predictions_frame_joins_label_names() -> None:
    preds = Predictions(
        ids=["a", "b", "c"],
        groups=[None] * 3,
        sources=[None] * 3,
        y_true={"emotions": np.array([[1, 1, 0], [np.nan] * 3, [0, 0, 0]])},
        pred={"emotions": np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])},
        proba={"emotions": np.array([[0.9, 0.4, 0.1], [0.2, 0.7, 0.6], [0.1, 0.1, 0.1]])},
    )
    df = predictions_frame(preds, [EMOTIONS], ["text"])
    assert df["emotions_true"].tolist() == ["joy;anger", "", ""]
    assert df["emotions_pred"].tolist() == ["joy", "anger;neutral", ""]
    assert df["emotions_prob_neutral"].tolist() == [0.1, 0.6, 0.1]
    assert preds.labelled("emotions").tolist() == [True, False, True]


# -- end to end --------------------------------------------------------------------------------

CLASSES = ["joy", "anger", "sadness", "neutral"]
EMOTIONS_4 = TaskConfig(name="emotions", type="multilabel", classes=CLASSES)
TASK = {"name": "emotions", "type": "multilabel", "classes": CLASSES, "pos_weight": "balanced"}
SPLIT_SIZES = {"train": 320, "dev": 120, "test": 150}


def write_multilabel_folder(root: Path, seed: int = 0) -> None:
    """A feature_folder dataset: JSONL manifest whose target is a list of names, and per-split
    .npz features. Each emotion is on when its latent exceeds 0.6; neutral when none is."""
    rng = np.random.default_rng(seed)
    mix_text, mix_audio = rng.normal(size=(3, 8)), rng.normal(size=(3, 5))
    rows = []
    for split, n in SPLIT_SIZES.items():
        z = rng.normal(size=(n, 3))
        text, audio = {}, {}
        for i in range(n):
            sid = f"{split}{i:04d}"
            labels = [c for c, on in zip(CLASSES[:3], z[i] > 0.6, strict=True) if on] or ["neutral"]
            rows.append({"id": sid, "split": split, "emotions": labels})
            text[sid] = (z[i] @ mix_text + 0.3 * rng.normal(size=8)).astype(np.float32)
            audio[sid] = (z[i] @ mix_audio + rng.normal(size=(3, 5))).astype(np.float32)
        np.savez(root / f"{split}_text.npz", **text)
        np.savez(root / f"{split}_audio.npz", **audio)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def multilabel_config(root: Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    raw: dict[str, Any] = {
        "name": "ml",
        "data": {
            "adapter": "feature_folder",
            "root": str(root),
            "test_split": "test",
            "options": {
                "manifest": "manifest.jsonl",
                "features": {"text": "{split}_text.npz", "audio": "{split}_audio.npz"},
                "targets": {"emotions": "emotions"},
            },
        },
        "tasks": [TASK],
        "model": {"hidden_dim": 16, "head_hidden": 16},
        "train": {"epochs": 15, "batch_size": 32, "lr": 0.01, "progress": False, "early_stopping": None},
    }
    return validate(apply_overrides(raw, overrides or {}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[int]]:
    """A trained run, the metrics fit returned, and the sizes of the data thresholds were tuned on."""
    data = tmp_path_factory.mktemp("goemo_like")
    write_multilabel_folder(data)
    tuned_on: list[int] = []
    original = trainer_module.tune_thresholds

    def spy(y: np.ndarray, proba: np.ndarray, mode: str, default: float) -> np.ndarray:
        tuned_on.append(len(y))
        return original(y, proba, mode, default)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module, "tune_thresholds", spy)
        run = tmp_path_factory.mktemp("runs") / "ml"
        results = Trainer(multilabel_config(data), run).fit()
    return run, results, tuned_on


def test_multilabel_task_trains_and_beats_trivial_baseline(trained: tuple[Path, dict, list[int]]) -> None:
    run, results, _ = trained
    test = results["test"]
    assert test["primary_task"] == "emotions" and test["n"] == SPLIT_SIZES["test"]
    frame = pd.read_csv(run / "eval/test/predictions.csv", keep_default_na=False)
    truth = np.array([[c in t.split(";") for c in CLASSES] for t in frame["emotions_true"]], dtype=int)
    # Trivial baselines: every label for every sample, and the most frequent label set (neutral) for all.
    everything = task_metrics(EMOTIONS_4, truth, np.ones_like(truth))
    neutral = task_metrics(EMOTIONS_4, truth, np.tile([0, 0, 0, 1], (len(truth), 1)))
    assert test["macro_f1"] > max(everything["macro_f1"], neutral["macro_f1"]) + 0.2, test
    assert test["micro_f1"] > 0.7 and test["subset_accuracy"] > neutral["subset_accuracy"] + 0.1, test
    meta = json.loads((run / "meta.json").read_text())
    assert len(meta["class_weights"]["emotions"]) == 4  # balanced pos_weight from the train split
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert {"macro_f1", "micro_f1", "samples_f1"} <= history[-1]["val"].keys()


def test_tuned_threshold_is_saved_from_dev_and_used_on_test(trained: tuple[Path, dict, list[int]]) -> None:
    run, results, tuned_on = trained
    assert tuned_on == [SPLIT_SIZES["dev"]], "thresholds are tuned once, on the validation split only"
    saved = json.loads((run / "thresholds.json").read_text())["emotions"]
    assert (saved["tuning"], saved["split"], saved["classes"]) == ("global", "dev", CLASSES)
    assert len(set(saved["thresholds"])) == 1 and 0.05 <= saved["thresholds"][0] <= 0.95
    assert saved["macro_f1_tuned"] >= saved["macro_f1_default"]
    for split in ("dev", "test"):
        stored = json.loads((run / f"eval/{split}/metrics.json").read_text())
        assert list(stored["tasks"]["emotions"]["thresholds"].values()) == saved["thresholds"]
    frame = pd.read_csv(run / "eval/test/predictions.csv", keep_default_na=False)
    probs = frame[[f"emotions_prob_{c}" for c in CLASSES]].to_numpy()
    decided = [";".join(c for c, on in zip(CLASSES, row, strict=True) if on) for row in probs >= saved["thresholds"]]
    assert frame["emotions_pred"].tolist() == decided
    report = (run / "report.md").read_text()
    assert "Decision threshold `emotions`" in report and "| threshold" in report and "micro_f1" in report
    table = compare_runs([run], run.parent / "cmp")
    assert table.loc[0, "macro_f1"] == pytest.approx(results["test"]["macro_f1"])
    assert {"micro_f1", "samples_f1", "subset_accuracy"} <= set(table.columns)


def test_evaluate_run_reads_the_runs_thresholds(trained: tuple[Path, dict, list[int]], tmp_path: Path) -> None:
    """What `affectfusion test` scores with: change the saved thresholds and the predictions follow."""
    copy = tmp_path / "ml"
    shutil.copytree(trained[0], copy)
    saved = json.loads((copy / "thresholds.json").read_text())["emotions"]
    (copy / "thresholds.json").write_text(json.dumps({"emotions": {**saved, "thresholds": [0.95] * 4}}))
    again = evaluate_run(read_run(copy), "test")
    assert list(again["tasks"]["emotions"]["thresholds"].values()) == [0.95] * 4
    frame = pd.read_csv(copy / "eval/test/predictions.csv", keep_default_na=False)
    probs = frame[[f"emotions_prob_{c}" for c in CLASSES]].to_numpy()
    decided = [";".join(c for c, on in zip(CLASSES, row, strict=True) if on) for row in probs >= 0.95]
    assert frame["emotions_pred"].tolist() == decided
    (copy / "thresholds.json").write_text(json.dumps({"emotions": {**saved, "classes": ["a", "b", "c", "d"]}}))
    with pytest.raises(AffectFusionError, match="other classes than the config's"):
        evaluate_run(read_run(copy), "test")


def test_per_class_tuning_and_unknown_label_in_data(tmp_path: Path) -> None:
    write_multilabel_folder(tmp_path)
    cfg = multilabel_config(tmp_path, {"tasks": [{**TASK, "threshold_tuning": "per_class"}], "train.epochs": 3})
    Trainer(cfg, tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run/thresholds.json").read_text())["emotions"]
    assert saved["tuning"] == "per_class" and len(saved["thresholds"]) == 4

    rows = (tmp_path / "manifest.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    rows[0] = json.dumps({**first, "emotions": ["joy", "grief"]})
    (tmp_path / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(AffectFusionError) as e:
        load_dataset(cfg, "train")
    assert "\n" not in str(e.value)
    assert f"sample {first['id']!r} has label 'grief' for task 'emotions'" in str(e.value)
