"""``affectfusion tune``: the search space, trials selected on validation only, best.yaml, seeds, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from affectfusion.config import load_config, validate
from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths, TunePaths, read_metrics
from tests.helpers import run_cli, tiny_config

optuna = pytest.importorskip("optuna")

SPACE = {
    "train.lr": {"log_uniform": [0.002, 0.05]},
    "model.hidden_dim": {"int": [8, 24]},
    "model.fusion.name": {"choice": ["concat", "gated"]},
}


def _tiny_raw(epochs: int = 3) -> dict[str, Any]:
    raw = tiny_config({"train.epochs": epochs}).to_dict()
    raw["search"] = SPACE
    return raw


def _write_config(folder: Path, epochs: int = 3) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny_raw(epochs)))
    return path


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"train.lrr": {"uniform": [0.1, 0.2]}}, "'train.lrr'"),
        ({"train.lr": {"gaussian": [0, 1]}}, "unknown distribution 'gaussian'"),
        ({"model.dropout": {"uniform": [0.0, 1.0]}}, "'model.dropout' = 1.0"),
        ({"model.hidden_dim": {"int": [1.5, 3]}}, "search.model.hidden_dim: int bounds must be integers"),
        ({"train.lr": {"log_uniform": [0, 1]}}, "low must be positive"),
        ({"train.lr": {"uniform": [0.2, 0.1]}}, "must be below high"),
        ({"model.fusion.name": {"choice": ["concat"]}}, "two or more"),
        ({"train.lr": {"uniform": [0.1, 0.2], "int": [1, 2]}}, "one-key mapping"),
    ],
)
def test_bad_search_spaces_name_the_key(search: dict, expected: str) -> None:
    raw = tiny_config().to_dict()
    raw["search"] = search
    with pytest.raises(AffectFusionError) as e:
        validate(raw, "tiny.yaml")
    assert expected in str(e.value) and "Value error" not in str(e.value)


def test_shipped_mosi_config_has_a_valid_space_that_round_trips() -> None:
    cfg = load_config("mosi")
    assert {"train.lr", "model.fusion.name"} <= set(cfg.search)
    saved = cfg.to_dict()["search"]
    assert saved["train.lr"] == {"log_uniform": [0.0001, 0.01]}
    assert validate(cfg.to_dict()).search == cfg.search


def test_trial_configs_never_see_the_test_split() -> None:
    from affectfusion.recipes.tune.space import best_config, decoded, suggest, trial_config

    raw = _tiny_raw()
    raw["search"]["model.modalities"] = {"choice": [["text"], ["text", "audio"]]}
    raw["data"]["root"] = "data/tiny"  # a shipped config's root: relative to the working directory
    cfg = validate(raw)
    trial = optuna.create_study().ask()
    values = suggest(trial, cfg.search)
    assert values["model.modalities"] in (["text"], ["text", "audio"])
    assert decoded(trial.params, cfg.search) == values
    tcfg = trial_config(cfg, values, 3)
    assert tcfg.data.test_split is None and tcfg.search is None and tcfg.name == "tiny_trial3"
    assert tcfg.train.lr == values["train.lr"]
    bcfg = best_config(cfg, values)
    assert bcfg.data.test_split == "test" and bcfg.search is None
    assert bcfg.data.root == str(Path.cwd() / "data" / "tiny")  # best.yaml is read from another folder


def test_tune_selects_on_validation_and_best_yaml_trains_to_the_same_value(tmp_path: Path) -> None:
    from affectfusion.evaluation.metrics import metric_value
    from affectfusion.recipes.fusion.recipe import train_config
    from affectfusion.recipes.tune import TuneOptions, tune

    cfg = validate(_tiny_raw(epochs=2))
    out = tmp_path / "tune"
    summary = tune(cfg, out, TuneOptions(trials=3, sampler="random"))
    paths = TunePaths(out)
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 3
    for trial in summary["trials"]:
        run = RunPaths(Path(trial["run_dir"]))
        assert read_metrics(run.root, "dev") and not run.eval_dir("test").exists()  # selection never sees test
        assert not list(run.checkpoints.glob("last*"))  # trials are kept small
    best = summary["best"]
    values = [t["value"] for t in summary["trials"] if t["state"] == "complete"]
    assert best["value"] == max(values)
    assert paths.report.is_file() and paths.history_plot.is_file() and paths.summary.is_file()
    report = paths.report.read_text()
    assert "## Trials" in report and f"Best trial: {best['number']}" in report

    tuned = load_config(paths.best_config)  # a plain config: `affectfusion train best.yaml`
    assert tuned.search is None and tuned.data.test_split == "test"
    train_config(tuned, tmp_path / "again")
    again = metric_value(read_metrics(tmp_path / "again", "dev"), "macro_f1")
    assert again == pytest.approx(best["value"], abs=1e-6)

    resumed = tune(cfg, out, TuneOptions(trials=3, sampler="random"))  # nothing left to run
    assert [t["number"] for t in resumed["trials"]] == [t["number"] for t in summary["trials"]]


@pytest.fixture
def tuned(tmp_path: Path) -> Path:
    from affectfusion.recipes.tune import TuneOptions, tune

    out = tmp_path / "tune"
    tune(validate(_tiny_raw(epochs=1)), out, TuneOptions(trials=2, sampler="random"))
    return out


def test_compare_and_the_dashboard_read_a_tune_folder(tuned: Path, capsys, monkeypatch) -> None:
    from affectfusion.serve.dashboard.extras import run_reports

    code, out, _ = run_cli(["compare", str(tuned)], capsys, monkeypatch)
    assert code == 0 and "best: trial" in out and "trial0" in out and "trial1" in out
    assert (tuned / "trials" / "comparison" / "comparison.md").is_file()
    reports = dict(run_reports(TunePaths(tuned).trial(0)))
    assert reports[f"Tune report of {tuned.name} (Markdown)"] == TunePaths(tuned).report


def test_a_resumed_study_must_be_the_same_config(tmp_path: Path) -> None:
    from affectfusion.recipes.tune import TuneOptions, tune

    cfg = validate(_tiny_raw(epochs=1))
    tune(cfg, tmp_path, TuneOptions(trials=1))
    other = _tiny_raw(epochs=1)
    other["search"]["train.lr"] = {"log_uniform": [0.001, 0.01]}
    with pytest.raises(AffectFusionError, match="different config or search space"):
        tune(validate(other), tmp_path, TuneOptions(trials=2))


def test_tune_refuses_configs_without_a_space(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["tune", "demo", "--trials", "2"], capsys, monkeypatch)
    assert code == 2 and "no search: space" in err and "Traceback" not in err


def test_tune_help_shows_the_options(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["tune", "--help"], capsys, monkeypatch)
    assert code == 0
    for option in ("--trials", "--timeout", "--jobs", "--sampler", "--seed", "--storage", "--seeds", "--prune"):
        assert option in out
    for option in ("--set", "--out", "--overwrite", "--tracking-uri"):
        assert option in out


def _states(storage: str) -> list[str]:
    try:
        study = optuna.load_study(study_name="tiny", storage=storage)
    except KeyError:
        return []
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow
def test_resume_after_kill_loses_and_repeats_no_trial(tmp_path: Path) -> None:
    """kill -9 in the middle of a trial; the same command again finishes with exactly --trials trials."""
    from affectfusion.recipes.tune import TuneOptions, tune

    config, out = _write_config(tmp_path, epochs=30), tmp_path / "tune"  # trials long enough to be caught
    storage = f"sqlite:///{TunePaths(out).storage}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "affectfusion.cli", "tune", str(config), "--out", str(out), "--trials", "6"]
    log = tmp_path / "tune.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([*args, "--no-prune"], env=env, stderr=stderr, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            states = _states(storage) if TunePaths(out).storage.exists() else []
            if states.count("COMPLETE") >= 2 and "RUNNING" in states:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no trial was running after two completed ones: {states}; {log.read_text()[-2000:]}")
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its figure helper, as kill -9 would leave it
    finally:
        proc.wait()
    before = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    done_before = {t.number: t.params for t in before if t.state.name == "COMPLETE"}
    killed = [t.number for t in before if t.state.name == "RUNNING"]
    assert len(killed) == 1

    summary = tune(load_config(config), out, TuneOptions(trials=6, prune=False))
    after = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    states = [t.state.name for t in after]
    assert states.count("COMPLETE") + states.count("PRUNED") == 6  # none lost, none extra
    assert {t.number: t.params for t in after if t.number in done_before} == done_before  # not re-run
    assert states[killed[0]] == "FAIL"
    retry = [t for t in after if t.user_attrs.get("retry_of") == killed[0]]
    assert len(retry) == 1 and retry[0].params == before[killed[0]].params and retry[0].state.name == "COMPLETE"
    assert not TunePaths(out).trial(killed[0]).exists()
    drawn = [tuple(sorted(t.params.items())) for t in after if t.state.name == "COMPLETE"]
    assert len(set(drawn)) == len(drawn) == 6  # the resumed sampler does not replay the first draws
    assert summary["retried"] == 1 and "re-run after a kill" in TunePaths(out).report.read_text()


@pytest.mark.slow
def test_parallel_workers_pruning_seeds_and_mlflow_parent(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from affectfusion.recipes.tune import TuneOptions, tune

    (tmp_path / "ml").mkdir()
    uri = f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    raw = _tiny_raw(epochs=4)
    raw["train"].update({"track": ["mlflow"], "tracking_uri": uri})
    out = tmp_path / "tune"
    summary = tune(validate(raw), out, TuneOptions(trials=8, jobs=2, seeds=2))
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 8
    drawn = [tuple(sorted(t["params"].items())) for t in summary["trials"]]
    assert len(set(drawn)) == len(drawn)  # two workers do not draw the same values
    assert len([t for t in summary["trials"] if t["worker_start_seconds"] is not None]) == 2
    for trial in summary["trials"]:
        if trial["state"] == "pruned":
            assert not RunPaths(Path(trial["run_dir"])).checkpoints.exists()
    seeds = summary["seeds"]
    assert seeds["split"] == "test" and seeds["seeds"] == [1, 2]
    acc = seeds["metrics"]["accuracy"]
    assert acc["n"] == 2 and acc["std"] >= 0 and min(acc["values"]) <= acc["mean"] <= max(acc["values"])
    assert "± " in TunePaths(out).report.read_text()

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("affectfusion.kind") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8 + 2  # every trial and every seed of the best


def test_two_folders_share_one_study_through_storage(tmp_path: Path) -> None:
    """--storage: a second process (here: a second folder) continues the same study, not a new one."""
    from affectfusion.recipes.tune import TuneOptions, tune

    cfg = validate(_tiny_raw(epochs=1))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    tune(cfg, tmp_path / "a", TuneOptions(trials=1, storage=storage))
    summary = tune(cfg, tmp_path / "b", TuneOptions(trials=2, storage=storage))
    assert [t["number"] for t in summary["trials"]] == [0, 1]
    assert Path(summary["trials"][1]["run_dir"]).parent.parent == tmp_path / "b"
    assert not TunePaths(tmp_path / "a").storage.exists()  # the shared study is not in either folder
