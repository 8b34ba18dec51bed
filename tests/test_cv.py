"""Cross-validation: fold plans test every sample once and never split a group, a fold column that
would leak a speaker is refused, every fold is an ordinary run, finished folds are not retrained, and
classification, regression, multi-task and specialists configs summarise into cv.json / cv.md, which
compare and the dashboard read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from affectfusion.config import RunConfig
from affectfusion.data.checks import guard_leakage
from affectfusion.data.examples.iemocap import make_iemocap
from affectfusion.data.examples.media import write_wav
from affectfusion.data.fold_plan import Protocol, plan_folds
from affectfusion.data.folds import FoldsAdapter, assign
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.cv import fold_config, run_cv
from affectfusion.rundir import CvPaths, RunPaths
from tests.dashboard_helpers import new_app
from tests.helpers import SHARED_DATA, run_cli, tiny_config

TINY = {"data.options.n_train": 48, "data.options.n_eval": 24, "train.epochs": 2}


def _samples(n_groups: int = 6, per_group: int = 8) -> list[Sample]:
    """Samples whose groups sit in several source splits, with a 'fold' and a 'session' column."""
    out = []
    for g in range(n_groups):
        for i in range(per_group):
            meta = {"fold": str(g // 2), "session": f"S{g % 3}", "split": ["train", "dev", "test"][i % 3]}
            out.append(Sample(f"g{g}-{i}", {}, {"label": "abc"[i % 3]}, group=f"spk{g}", metadata=meta))
    return out


@pytest.mark.parametrize(
    "protocol",
    [
        Protocol(folds="fold", stratify="label"),
        Protocol(group="session", stratify="label"),
        Protocol(group="group", k=3, stratify="label"),
        Protocol(group="group", k=3),
        Protocol(group="group", k=3, consecutive=True),
        Protocol(k=4, stratify="label"),
    ],
    ids=lambda p: p.name,
)
def test_every_sample_tested_once_and_no_group_straddles_a_fold(protocol: Protocol) -> None:
    samples = _samples()
    plans = plan_folds(samples, protocol, "test data")
    tested = []
    for plan in plans:
        options = FoldsAdapter.Options(adapter="synthetic", splits=["train"], **plan.options())
        parts = assign(samples, options, "fold")
        tested += [s.id for s in parts["test"]]
        assert parts["train"] and parts["val"] and parts["test"]
        if protocol.folds or protocol.group:  # the speaker (or the cv group) of a sample moves with it
            speakers = {role: {s.metadata.get(protocol.group, s.group) for s in part} for role, part in parts.items()}
            assert not speakers["train"] & speakers["test"] and not speakers["val"] & speakers["test"]
            assert not speakers["train"] & speakers["val"]
    assert sorted(tested) == sorted(s.id for s in samples)  # each exactly once
    again = plan_folds(_samples(), protocol, "test data")
    assert [(p.test, p.val) for p in again] == [(p.test, p.val) for p in plans]  # deterministic


def test_bad_protocols_are_one_line_errors() -> None:
    samples = _samples()
    for protocol, needle in [
        (Protocol(folds="no_such_column"), "no_such_column"),
        (Protocol(group="group", k=50), "--k 50"),
        (Protocol(group="session", val_fraction=1.5), "--val-fraction"),
    ]:
        with pytest.raises(AffectFusionError, match=needle) as info:
            plan_folds(samples, protocol, "test data")
        assert "\n" not in str(info.value)


def test_consecutive_group_folds_are_fixed_blocks_in_natural_order() -> None:
    """EmoBox-style speaker folds: 18 actors, 6 folds of 3 consecutive actors (10 after 9, not after 1),
    the same blocks whatever the seed; --consecutive without --group and --k is refused."""
    samples = [
        Sample(f"a{a}-{i}", {}, {"label": "ab"[i % 2]}, group=str(a), metadata={"actor": str(a)})
        for a in range(18, 0, -1)
        for i in range(4)
    ]
    for seed in (0, 7):
        protocol = Protocol(group="actor", k=6, consecutive=True, seed=seed, stratify="label")
        plans = plan_folds(samples, protocol, "actors")
        assert [p.test for p in plans] == [[str(a), str(a + 1), str(a + 2)] for a in range(1, 19, 3)]
        assert all(not set(p.val) & set(p.test) for p in plans)
    uneven = plan_folds(samples, Protocol(group="actor", k=4, consecutive=True), "actors")
    assert [len(p.test) for p in uneven] == [5, 5, 4, 4]
    with pytest.raises(AffectFusionError, match="--consecutive"):
        plan_folds(samples, Protocol(k=6, consecutive=True), "actors")


def _ravdess_like(root: Path, actors: int, per_actor: int, fold_of) -> Path:
    """A ravdess-layout labels.csv with a fold column computed per row."""
    rng = np.random.default_rng(0)
    rows = []
    for a in range(1, actors + 1):
        for i in range(per_actor):
            rel = f"train/Actor_{a:02d}/{i:02d}.wav"
            write_wav(root / rel, i % 3, rng, seconds=0.3)
            emotion = ["neutral", "happy", "angry"][i % 3]
            rows.append(
                {
                    "path": rel,
                    "split": "train",
                    "actor": str(a),
                    "emotion": emotion,
                    "intensity": "normal",
                    "fold": fold_of(a, i),
                }
            )
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def _ravdess_cfg(root: Path, tmp_path: Path) -> RunConfig:
    return tiny_config(
        {
            "name": "rav",
            "data": {
                "adapter": "ravdess",
                "root": str(root),
                "train_split": "train",
                "val_split": "train",
                "options": {"modality": "audio", "targets": {"emotion": "emotion"}},
                "extract": {"audio": {"name": "egemaps"}},
                "cache_dir": str(tmp_path / "cache"),
            },
            "tasks": [{"name": "emotion", "type": "classification", "classes": ["neutral", "happy", "angry"]}],
        }
    )


def test_a_fold_column_that_splits_a_speaker_is_refused(tmp_path: Path) -> None:
    """Group leakage by construction is impossible; a user's fold column can still try it: actor 1's
    clips in two folds. cv refuses before training, and each fold's own data check refuses it too."""
    root = _ravdess_like(tmp_path / "data", actors=4, per_actor=4, fold_of=lambda a, i: str((a + (i == 0)) % 2))
    cfg = _ravdess_cfg(root, tmp_path)
    with pytest.raises(AffectFusionError, match="group") as info:
        run_cv(cfg, tmp_path / "cv", Protocol(folds="fold"))
    assert "\n" not in str(info.value) and not (tmp_path / "cv").exists()
    samples = [
        Sample(f"s{i}", {}, {"emotion": "happy"}, group=f"{i % 4 + 1}", metadata={"fold": str(i % 2)})
        for i in range(16)
    ]
    plan = plan_folds(samples, Protocol(folds="fold"), "x")[0]
    with pytest.raises(AffectFusionError, match="leak"):
        guard_leakage(fold_config(cfg, plan, ["train"]))


def _cv(cfg: RunConfig, out: Path, protocol: Protocol) -> dict:
    return run_cv(cfg, out, protocol, workers=1)


@pytest.mark.slow  # two folds trained, tested again, compared and shown: ~25 s on an idle 2-core machine
def test_cv_classification_writes_folds_summary_and_resumes(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg = tiny_config(TINY)
    out = tmp_path / "cv"
    summary = _cv(cfg, out, Protocol(group="group", k=2))
    paths = CvPaths(out)
    assert summary["protocol"]["n_folds"] == 2 and summary["protocol"]["group_column"] == "group"
    for name in ("label.accuracy", "label.balanced_accuracy", "label.macro_f1"):
        m = summary["metrics"][name]
        assert len(m["values"]) == 2 and m["mean"] == pytest.approx(np.mean(m["values"]))
        assert m["ci95"][0] <= m["mean"] <= m["ci95"][1]
    pooled = pd.read_csv(paths.pooled_predictions)
    assert pooled["id"].is_unique and len(pooled) == summary["protocol"]["n_samples"] == 48 + 2 * 24
    cm = np.asarray(summary["pooled"]["label"]["confusion_matrix"])
    assert cm.sum() == len(pooled)
    report = paths.report.read_text()
    assert report.splitlines()[2].startswith("Protocol: group 2-fold by 'group'")
    assert "Validation" in report.splitlines()[3]
    timing = json.loads(paths.summary.read_text())["timings"]
    assert all(t["overhead_s"] >= 0 and t["wall_s"] >= t["epochs_s"] for t in timing)
    # every fold is an ordinary run that `test` reads; its config pins the fold
    fold = paths.fold(0)
    code, _, err = run_cli(["test", str(fold), "--split", "test"], capsys, monkeypatch)
    assert code == 0, err
    saved = yaml.safe_load(RunPaths(fold).config.read_text())
    assert saved["data"]["adapter"] == "folds" and saved["data"]["options"]["test"] == summary["folds"][0]["test"]
    # compare reads cv.json (one row: the mean over folds), the dashboard's Model tab of a fold shows it
    code, _, err = run_cli(["compare", str(out), str(fold), "--out", str(tmp_path / "cmp")], capsys, monkeypatch)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    cv_row = table[table["split"] == "cv (2 folds)"].iloc[0]
    assert cv_row["accuracy"] == pytest.approx(summary["metrics"]["label.accuracy"]["mean"])
    assert cv_row["accuracy_std"] == pytest.approx(summary["metrics"]["label.accuracy"]["std"])
    app = new_app(fold)
    [shown] = [df.value for df in app.dataframe if "ci95_low" in df.value.columns]
    assert shown.set_index("metric").loc["label.macro_f1", "mean"] == pytest.approx(
        summary["metrics"]["label.macro_f1"]["mean"]
    )
    assert any("Cross-validation" in h.value for h in app.subheader)
    # resumable: nothing is retrained
    stamps = [RunPaths(paths.fold(k)).history.stat().st_mtime_ns for k in range(2)]
    again = _cv(cfg, out, Protocol(group="group", k=2))
    assert [RunPaths(paths.fold(k)).history.stat().st_mtime_ns for k in range(2)] == stamps
    assert again["metrics"]["label.accuracy"]["values"] == summary["metrics"]["label.accuracy"]["values"]


def test_cv_regression_and_multitask(tmp_path: Path) -> None:
    cfg = tiny_config(
        {
            **TINY,
            "data.options.task": "regression",
            "data.options.target_name": "phq8",
            "data.options.target_range": [0, 24],
            "data.options.integer_targets": True,
            "tasks": [
                {"name": "phq8", "type": "regression", "loss": "rmse"},
                {
                    "name": "depressed",
                    "type": "classification",
                    "classes": ["no", "yes"],
                    "threshold_of": "phq8",
                    "threshold": 10,
                },
            ],
            "train.early_stopping": {"monitor": "phq8.rmse"},
        }
    )
    summary = _cv(cfg, tmp_path / "cv", Protocol(k=2))
    assert {"phq8.mae", "phq8.rmse", "phq8.ccc", "depressed.accuracy", "depressed.macro_f1"} <= summary[
        "metrics"
    ].keys()
    assert summary["pooled"]["phq8"]["mae"] >= 0 and "confusion_matrix" in summary["pooled"]["depressed"]
    assert "no groups" in summary["protocol"]["name"]


def test_cv_cli_help_and_refusals(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["cv", "--help"], capsys, monkeypatch)
    assert code == 0
    for option in (
        "--folds",
        "--group",
        "--k",
        "--splits",
        "--consecutive",
        "--val-fraction",
        "--workers",
        "--set",
        "--out",
        "--overwrite",
    ):
        assert option in out
    code, _, err = run_cli(["cv", "demo", "--folds", "a", "--group", "b"], capsys, monkeypatch)
    assert code == 2 and "--folds and --group" in err
    code, _, err = run_cli(["cv", "demo", "--group", "b", "--consecutive"], capsys, monkeypatch)
    assert code == 2 and "--consecutive" in err


def test_iemocap_leave_one_session_out_plan(tmp_path: Path) -> None:
    """IEMOCAP's five sessions: ``--group session`` gives five folds, each testing one session."""
    from affectfusion.data import DATASETS
    from affectfusion.data.folds import load_all

    root = make_iemocap(tmp_path / "iemocap")
    adapter = DATASETS.get("iemocap")(DATASETS.get("iemocap").Options())
    samples = load_all(adapter, root, ["train", "dev", "test"], "iemocap")
    assert {s.targets["emotion"] for s in samples} == {"neutral", "happy", "sad", "angry"}
    assert {s.metadata["session"] for s in samples} == {f"Ses0{k}" for k in range(1, 6)}
    plans = plan_folds(samples, Protocol(group="session", stratify="emotion"), "iemocap")
    assert [p.test for p in plans] == [[f"Ses0{k}"] for k in range(1, 6)]
    assert all(f"Ses0{p.index + 1}" not in p.val for p in plans)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [["--folds", "fold"], ["--group", "actor", "--k", "2", "--consecutive"]])
def test_cv_on_real_ravdess_with_a_fold_column(protocol: list[str], tmp_path: Path, capsys, monkeypatch) -> None:
    """The acceptance run, small: 4 real RAVDESS actors, 6 clips each, EmoBox-style folds of 2 actors, from a
    fold column or as consecutive blocks of actors."""
    source = SHARED_DATA / "ravdess_speech_16k"
    if not source.is_dir():
        pytest.skip("../shared/data is absent")
    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    table = table[table["actor"].isin(["1", "2", "3", "4"])].groupby("actor").head(6).copy()
    table["fold"] = ((table["actor"].astype(int) - 1) // 2).astype(str)
    root = tmp_path / "ravdess"
    for rel in table["path"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, root / rel)
    table.to_csv(root / "labels.csv", index=False)
    sets = [
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.epochs=2",
        "train.progress=false",
        "data.extract={audio_func: {name: egemaps}}",
        "model.encoders={audio_func: {name: mean}}",
        "data.options.extra_views=[]",
    ]
    args = ["cv", "ravdess_speech", *protocol, "--splits", "train", "--out", str(tmp_path / "cv")]
    code, out, err = run_cli(args + [f"--set={s}" for s in sets], capsys, monkeypatch)
    assert code == 0, err
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    expected = [["0"], ["1"]] if "--folds" in protocol else [["1", "2"], ["3", "4"]]
    assert [f["test"] for f in summary["folds"]] == expected
    for name in ("emotion.accuracy", "emotion.balanced_accuracy", "emotion.macro_f1"):
        assert len(summary["metrics"][name]["values"]) == 2 and summary["metrics"][name]["std"] is not None
    assert "emotion.accuracy" in out
    # the splits the folds held out (dev, test_small) have no rows here: the folds stay folds, said in a line
    assert "not served as one ensemble" in err and not (tmp_path / "cv" / "ensemble.json").exists()


@pytest.mark.slow  # two folds x (two specialists, an export and a fusion): ~20 s on an idle 2-core machine
def test_cv_of_a_specialists_config_scores_each_folds_fusion_stage(tmp_path: Path) -> None:
    """``kind: specialists``: every fold trains its specialists and fusion; the fusion stage is scored."""
    from affectfusion.recipes.specialists.config import load_specialists_config

    sets = {
        "data.options.n_train": 40,
        "data.options.n_eval": 20,
        "data.options.modalities": {"text": {"dim": 8}, "image": {"dim": 6}},
        "data.options.presence_patterns": None,
        "specialists": {
            m: {"model": {"hidden_dim": 8, "head_hidden": 0}, "train": {"epochs": 1, "progress": False}}
            for m in ("text", "image")
        },
        "fusion.model": {"hidden_dim": 8, "head_hidden": 8, "fusion": {"name": "concat"}},
        "fusion.train": {"epochs": 1, "progress": False},
    }
    cfg = load_specialists_config("emocare_specialists", sets)
    summary = run_cv(cfg, tmp_path / "cv", Protocol(k=2), workers=1)
    assert [f["results_dir"] for f in summary["folds"]] == ["fold0/fusion", "fold1/fusion"]
    assert len(summary["metrics"]["sentiment.macro_f1"]["values"]) == 2
    assert (tmp_path / "cv" / "fold1" / "specialists" / "image" / "report.md").is_file()
    assert summary["pooled"]["sentiment"]["n"] == 40 + 2 * 20


def test_adapters_keep_extra_table_columns_as_metadata(tmp_path: Path) -> None:
    """A fold column may be any extra column of labels.csv or a media table."""
    from affectfusion.data import DATASETS
    from affectfusion.registry import validate_options

    root = _ravdess_like(tmp_path / "rav", actors=2, per_actor=2, fold_of=lambda a, i: f"f{a}")
    cls = DATASETS.get("ravdess")
    samples = cls(validate_options(cls, {"targets": {"emotion": "emotion"}}, "o")).load(root, "train")
    assert [s.metadata["fold"] for s in samples] == ["f1", "f1", "f2", "f2"]
    assert "path" not in samples[0].metadata and "split" not in samples[0].metadata
    (tmp_path / "tab").mkdir()
    pd.DataFrame({"text": ["good", "bad"], "emotion": ["happy", "sad"], "session": ["1", "2"]}).to_csv(
        tmp_path / "tab" / "train.csv", index=False
    )
    cls = DATASETS.get("media_table")
    options = {"inputs": {"text": "text"}, "targets": {"emotion": "emotion"}}
    table = cls(validate_options(cls, options, "o")).load(tmp_path / "tab", "train")
    assert [s.metadata for s in table] == [{"session": "1"}, {"session": "2"}]


def test_worker_pool_reuses_its_workers_and_reports_a_failure(tmp_path: Path) -> None:
    """Four jobs on two spawned workers: every result comes back, at most two processes ran them."""
    from affectfusion.recipes.workers import WorkerPlan, run_jobs
    from tests.helpers import job_pid

    results = dict(run_jobs(job_pid, [1, 2, 3, 4], WorkerPlan(2, 1)))
    assert {job: r[0] for job, r in results.items()} == {1: 1, 2: 4, 3: 9, 4: 16}
    pids = {r[1] for r in results.values()}
    assert len(pids) <= 2 and os.getpid() not in pids
    with pytest.raises(TypeError):
        list(run_jobs(job_pid, [1, "x"], WorkerPlan(2, 1)))
