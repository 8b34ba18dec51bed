"""``check-data``, ``calibrate`` and the trust options of ``test`` (``--conformal``, ``--by``,
``--label-map``): how far a result or a prediction can be trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from affectfusion.cli.common import SetOption, console, err_console, print_frame
from affectfusion.config import load_config, parse_set_options


def check_data_command(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    set_: SetOption = None,
    split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to check (default: the config's train, val and test splits)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the full report as JSON here")] = None,
) -> None:
    """Check a dataset's splits: group overlap, exact and near duplicates across splits, class
    imbalance, label shift and missing modalities. Exits with code 1 if the splits leak."""
    from affectfusion.data.checks import check_data, check_markdown  # hashes media: numpy, soundfile
    from affectfusion.io import write_json

    cfg = load_config(config, parse_set_options(set_))
    report = check_data(cfg, split)
    console.print(check_markdown(report), highlight=False, markup=False)
    if out is not None:
        write_json(out, report)
        err_console.print(f"wrote {out}")
    if report["leaking"]:
        raise typer.Exit(1)


def calibrate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or a folder of variant runs)")],
) -> None:
    """Fit temperature scaling on the calibration split (data.calibration_split, else the validation
    split; never the test split); stores it in the run (the Predictor, API and dashboard apply it) and
    reports ECE, MCE, Brier before and after. A split too small (< 30 samples), saturated (no error) or
    giving a temperature at its search bound is refused: no temperature is stored, and the command exits 1."""
    from affectfusion.evaluation.report import write_run_report  # torch, matplotlib: only when calibrating
    from affectfusion.recipes.trust import calibrate_run
    from affectfusion.rundir import read_run, run_dirs
    from affectfusion.runlock import run_lock
    from affectfusion.training.loading import load_model

    rows, refused = [], []
    for rd in run_dirs(run_dir):
        run = read_run(rd)
        with run_lock(rd, "calibrate"):
            result = calibrate_run(run, load_model(run))
            write_run_report(rd)
        for task, entry in result["tasks"].items():
            temp = entry.get("temperature")
            if entry.get("refused"):
                refused.append(f"{rd.name} {task}: not calibrated: {entry['refused']}")
            for split, scores in entry["splits"].items():
                after = scores.get("after", {})
                rows.append(
                    [rd.name, task, "refused" if entry.get("refused") else "n/a" if temp is None else f"{temp:.3f}"]
                    + [split, str(scores["n"])]
                    + [
                        f"{scores['before'][k]:.4f}" + (f" -> {after[k]:.4f}" if k in after else "")
                        for k in ("ece", "brier")
                    ]
                )
        err_console.print(f"wrote {run.paths.calibration}")
    print_frame(
        "calibration (before -> after temperature scaling)", ["run", "task", "T", "split", "n", "ECE", "Brier"], rows
    )
    if refused:
        for line in refused:
            err_console.print(f"[yellow]refused:[/] {escape(line)}", highlight=False)
        raise typer.Exit(1)


def trust_tests(run: Any, split: str, data: Path | None, conformal: float | None, by: str | None) -> bool:
    """``test --conformal`` / ``--by`` for one run (after its metrics were written); False when conformal
    prediction was asked for and refused for a task (each refusal is printed with its reason)."""
    from affectfusion.recipes.trust import conformal_run, subgroups_run  # torch: only when --conformal or --by is given
    from affectfusion.training.loading import load_model

    model = load_model(run)
    ok = True
    if conformal is not None:
        result = conformal_run(run, model, conformal, split, root=data)
        rows = [
            [t, s["method"], str(s["n"]), f"{s['coverage']:.3f}", f"{s.get('mean_set_size', s.get('mean_width')):.3f}"]
            for t, s in result["tasks"].items()
        ]
        rows += [[t, "refused", "", "", ""] for t in result["refused"]]
        print_frame(
            f"{run.paths.root.name}: conformal, target coverage {1 - conformal:.0%} (calibrated on "
            f"{result['calibrated_on']})",
            ["task", "method", "n", "coverage", "set size / width"],
            rows,
        )
        for t, reason in result["refused"].items():
            err_console.print(f"[yellow]refused:[/] {escape(f'{run.paths.root.name} {t}: no conformal set: {reason}')}")
        ok = not result["refused"]
    if by:
        columns = [c.strip() for c in by.split(",") if c.strip()]
        _, gaps = subgroups_run(run, model, split, columns, root=data)
        rows = [
            [
                task,
                column,
                metric,
                f"{g['best_group']} {g['best']:.3f}",
                f"{g['worst_group']} {g['worst']:.3f}",
                f"{g['gap']:.3f}",
            ]
            for task, per_column in gaps.items()
            for column, per_metric in per_column.items()
            for metric, g in per_metric.items()
        ]
        print_frame(
            f"{run.paths.root.name}: worst-group gaps ({run.paths.subgroups(split)})",
            ["task", "by", "metric", "best", "worst", "gap"],
            rows,
        )
    return ok


def cross_corpus_test(run: Any, data: Path, split: str, label_map: str, adapter: str | None) -> None:
    """``test --data OTHER --label-map MAP``: score the run on another corpus through a label map."""
    from affectfusion.data.label_maps import load_label_map  # yaml maps and torch: only for cross-corpus tests
    from affectfusion.recipes.cross_corpus import cross_corpus_eval

    out = run.paths.cross_corpus(f"{Path(data).resolve().name}_{split}")
    r = cross_corpus_eval(run, data, load_label_map(label_map), split, adapter, out)
    m = r["metrics"]
    print_frame(
        f"{run.paths.root.name} on {data} ({split}) through {r['label_map']}",
        ["scored", "accuracy", "macro F1", "run classes unmapped", "corpus labels unmapped"],
        [
            [
                f"{r['n_scored']} / {r['n_samples']}",
                f"{m['accuracy']:.3f}" if m.get("accuracy") is not None else "n/a",
                f"{m['macro_f1']:.3f}" if m.get("macro_f1") is not None else "n/a",
                ", ".join(r["unmapped_run_classes"]) or "none",
                ", ".join(f"{k} ({v})" for k, v in r["unmapped_data_labels"].items()) or "none",
            ]
        ],
    )
    err_console.print(f"wrote {out}")
