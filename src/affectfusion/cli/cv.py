"""``cv``: cross-validation of a config over the pooled splits of its data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from affectfusion.cli.common import SetOption, console, err_console, print_frame
from affectfusion.config import load_config, parse_set_options
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    from affectfusion.config import RunConfig
    from affectfusion.recipes.specialists.config import SpecialistsConfig


def cv(
    config: Annotated[str, typer.Argument(help="YAML config file, or the name of a shipped config")],
    folds: Annotated[
        str | None,
        typer.Option(
            help="Predefined folds: a metadata column (e.g. of labels.csv) whose every value is one test fold"
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Leave-one-group-out over this column (speaker, session; 'group' = the adapter's groups)"),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(help="With --group: group k-fold (stratified where possible); alone: k-fold (default 5)", min=2),
    ] = None,
    consecutive: Annotated[
        bool,
        typer.Option(
            help="With --group and --k: fixed folds of consecutive groups in natural order (EmoBox's speaker folds)"
        ),
    ] = False,
    splits: Annotated[
        str | None, typer.Option(help="Splits pooled into the folds, e.g. train,dev (default: the config's splits)")
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option(help="Share of each fold's training groups held out for early stopping and calibration"),
    ] = 0.2,
    workers: Annotated[
        int | None, typer.Option(help="Folds trained side by side (default: as many as the CPU budget allows)", min=1)
    ] = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<config name>_cv)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain every fold instead of keeping finished ones")] = False,
    allow_leakage: Annotated[
        bool, typer.Option(help="Train even if a fold's data check finds leaking parts (recorded in each fold)")
    ] = False,
) -> None:
    """Cross-validate: one ordinary run per fold in <out>/fold<k>/, then cv.json and cv.md with per-fold
    metrics, mean ± std and a 95% interval, and the pooled predictions.

    Every sample is tested once; no group straddles a fold's train, validation and test parts. Without
    --folds or --group the adapter's groups (speakers) are used, and a plain k-fold only when the data
    has none. Re-running the command resumes: a finished fold is not retrained.
    """
    # deferred: torch, scikit-learn and the trainer load only when cross-validating
    from affectfusion.data.fold_plan import Protocol
    from affectfusion.recipes import config_kind
    from affectfusion.recipes.cv import run_cv

    if folds and group:
        raise AffectFusionError("--folds and --group are two protocols; pass one of them")
    if folds and k:
        raise AffectFusionError("--k makes folds from groups; --folds takes them from a column")
    kind = config_kind(config)
    if kind not in ("fusion", "specialists"):
        raise AffectFusionError(f"cv trains fusion and specialists configs; {config} is a {kind!r} config")
    overrides = parse_set_options(set_)
    if allow_leakage:
        overrides["data.allow_leakage"] = True
    cfg: RunConfig | SpecialistsConfig
    if kind == "specialists":
        from affectfusion.recipes.specialists.config import load_specialists_config  # its own schema

        cfg = load_specialists_config(config, overrides)
    else:
        cfg = load_config(config, overrides)
    from affectfusion.rundir import CvPaths, default_run_dir  # numpy: not for --help

    out = out or default_run_dir(cfg.name, "cv")
    chosen = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    if consecutive and not (group and k):
        raise AffectFusionError("--consecutive makes blocks of groups; pass it with --group and --k")
    protocol = Protocol(folds=folds, group=group, k=k, val_fraction=val_fraction, consecutive=consecutive)
    summary = run_cv(cfg, out, protocol, chosen, overwrite, workers, err_console)
    rows = [
        [
            name,
            f"{m['mean']:.3f}",
            "-" if m["std"] is None else f"{m['std']:.3f}",
            "-" if not m["ci95"] else f"[{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]",
        ]
        for name, m in summary["metrics"].items()
        if m["mean"] is not None and name.split(".")[-1] in SHOWN
    ]
    print_frame(
        f"{cfg.name}: {summary['protocol']['name']} ({CvPaths(out).report})", ["metric", "mean", "std", "95% CI"], rows
    )
    console.print(f"cross-validation folder: {out}")


SHOWN = ("accuracy", "balanced_accuracy", "macro_f1", "mae", "rmse", "pearson_r", "ccc", "micro_f1")
