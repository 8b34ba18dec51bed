"""What a tune leaves to read: ``tune.json``, ``tune.md`` and two plots (matplotlib).

The optimisation history shows every finished trial's validation value and the best so far; the
parameter importances come from Optuna's fANOVA evaluator (scikit-learn, offline), or from its
mean-decrease-in-impurity evaluator where fANOVA cannot fit (for instance when every trial ties).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import optuna
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from affectfusion.evaluation.plots import new_figure, save_figure
from affectfusion.evaluation.report import markdown_table
from affectfusion.io import write_json, write_text
from affectfusion.recipes.tune.study import RETRY_OF
from affectfusion.rundir import TunePaths

_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in _STATES:
            continue
        rows.append(
            {
                "number": t.number,
                "state": _STATES[t.state],
                "value": t.value,
                "params": t.params,
                "epochs": t.user_attrs.get("epochs"),
                "seconds": t.user_attrs.get("seconds"),
                "train_seconds": t.user_attrs.get("train_seconds"),
                "worker_start_seconds": t.user_attrs.get("worker_start_seconds"),
                RETRY_OF: t.user_attrs.get(RETRY_OF),
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    return rows


def overhead(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds a trial costs besides its epochs (building data and model, evaluation, report), and a
    worker's start-up (imports), paid once per worker."""
    timed = [r for r in rows if r["seconds"] is not None and r["train_seconds"] is not None]
    starts = [r["worker_start_seconds"] for r in rows if r["worker_start_seconds"] is not None]
    return {
        "trial_seconds_mean": statistics.fmean(r["seconds"] for r in timed) if timed else None,
        "epoch_seconds_mean": statistics.fmean(r["train_seconds"] for r in timed) if timed else None,
        "overhead_seconds_mean": statistics.fmean(r["seconds"] - r["train_seconds"] for r in timed) if timed else None,
        "worker_start_seconds": starts,
    }


def importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Parameter importances over the completed trials, and the evaluator that gave them."""
    evaluators = [
        ("fANOVA", optuna.importance.FanovaImportanceEvaluator(seed=0)),
        ("mean decrease in impurity", optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)),
    ]
    for name, evaluator in evaluators:
        try:
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
            continue
        if found and all(math.isfinite(v) for v in found.values()):
            return dict(found), name
    return {}, "none (too few completed trials, or no parameter changed the value)"


def plot_history(rows: list[dict[str, Any]], minimize: bool, monitor: str, path: Path) -> Path:
    fig, (ax,) = new_figure(6.0, 3.6)
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    ax.scatter([r["number"] for r in done], [r["value"] for r in done], s=18, label="complete")
    pruned = [r["number"] for r in rows if r["state"] == "pruned"]
    if pruned:
        for x in pruned:
            ax.axvline(x, color="0.85", lw=0.8, zorder=0)
        ax.plot([], [], color="0.85", label="pruned")
    best, xs, ys = None, [], []
    for r in done:
        if best is None or (r["value"] < best if minimize else r["value"] > best):
            best = r["value"]
        xs.append(r["number"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"validation {monitor}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_importances(found: dict[str, float], evaluator: str, path: Path) -> Path:
    fig, (ax,) = new_figure(6.0, 0.5 + 0.4 * max(1, len(found)))
    names = list(found)[::-1]
    ax.barh(names, [found[n] for n in names])
    ax.set_xlabel(f"importance ({evaluator})")
    return save_figure(fig, path)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(summary: dict[str, Any]) -> str:
    s, best, seeds = summary, summary.get("best"), summary.get("seeds")
    counts = s["counts"]
    lines = [
        f"# tune: {s['config']}",
        "",
        f"Selection: **{s['monitor']} on the validation split `{s['val_split']}`** ({s['direction']}), never on a "
        f"test split. Sampler {s['sampler']} (seed {s['seed']}), pruner {s['pruner']}, study `{s['study_name']}` "
        f"in `{s['storage']}`.",
        "",
        f"Trials: {counts['complete'] + counts['pruned']} of {s['trials_requested']} finished "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed"
        + (f"; {s['retried']} re-run after a kill" if s["retried"] else "")
        + ").",
        "",
    ]
    if best:
        lines += [f"## Best trial: {best['number']} ({s['monitor']} = {best['value']:.4f})", ""]
        lines += [markdown_table(["key", "value"], [[k, _fmt(v)] for k, v in best["params"].items()]), ""]
        lines += [f"Config: `best.yaml` (`affectfusion train {s['best_config']}` trains it again).", ""]
        if best["ties"] > 1:
            lines += [
                f"**Warning:** {best['ties']} trials tie at the best value: the validation split cannot tell them "
                "apart, so the choice among them is arbitrary (the first is taken).",
                "",
            ]
    if seeds:
        lines += [f"## Best config over {len(seeds['seeds'])} seeds ({seeds['split']})", ""]
        rows = [
            [m, f"{v['mean']:.4f} ± {v['std'] or 0:.4f}", ", ".join(_fmt(x) for x in v["values"])]
            for m, v in seeds["metrics"].items()
            if v["mean"] is not None
        ]
        lines += [markdown_table(["metric", "mean ± std", "per seed"], rows), ""]
    keys = list(s["search"])
    table = [
        [str(r["number"]), r["state"], _fmt(r["value"]), _fmt(r["epochs"]), _fmt(r["seconds"])]
        + [_fmt(r["params"].get(k)) for k in keys]
        for r in s["trials"]
    ]
    lines += ["## Trials", "", "A pruned trial's value is the one it had when it was stopped.", ""]
    lines += [markdown_table(["trial", "state", "value", "epochs", "seconds", *keys], table), ""]
    lines += ["## Plots", "", "![optimisation history](plots/optimisation_history.png)", ""]
    if s["importances"]:
        lines += [f"![parameter importances ({s['importance_evaluator']})](plots/param_importances.png)", ""]
    cost = s["overhead"]
    if cost["trial_seconds_mean"] is not None:
        lines += [
            "## Cost",
            "",
            f"A trial took {cost['trial_seconds_mean']:.1f} s on average, {cost['epoch_seconds_mean']:.1f} s of it "
            f"in epochs: {cost['overhead_seconds_mean']:.1f} s per trial for data, model, evaluation and report."
            + (
                f" Starting a worker process took {statistics.fmean(cost['worker_start_seconds']):.1f} s, once per "
                "worker."
                if cost["worker_start_seconds"]
                else ""
            ),
            "",
        ]
    return "\n".join(lines)


def write_report(study: optuna.Study, summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Plots, ``tune.json`` and ``tune.md`` from the study and the summary's settings."""
    paths = TunePaths(out)
    rows = trial_rows(study)
    summary["trials"] = rows
    summary["counts"] = {name: sum(r["state"] == name for r in rows) for name in _STATES.values()}
    summary["retried"] = sum(r[RETRY_OF] is not None for r in rows)
    summary["overhead"] = overhead(rows)
    found, evaluator = importances(study) if summary["counts"]["complete"] > 1 else ({}, "none")
    summary["importances"], summary["importance_evaluator"] = found, evaluator
    plot_history(rows, summary["direction"] == "minimize", summary["monitor"], paths.history_plot)
    if found:
        plot_importances(found, evaluator, paths.importance_plot)
    write_json(paths.summary, summary)
    write_text(paths.report, markdown(summary))
    return summary
