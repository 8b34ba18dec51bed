"""``init``: a starter config for your own data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from affectfusion.cli.common import console, err_console
from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:
    from affectfusion.data.starter import TablePlan


def init(
    folder: Annotated[
        Path, typer.Argument(help="Folder of your data (created if missing), or its table; the config goes there")
    ],
    table: Annotated[
        Path | None,
        typer.Option(
            help="Labelled CSV/JSONL: a row per sample, text cells and media paths (default: the one CSV in FOLDER)"
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Label column (default: label, emotion, class, target or y)")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            help="Speaker/person column: its groups never cross train/dev/test (default: a column named "
            "speaker, actor, subject, participant, person, identity, group or session)"
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing affectfusion.yaml")] = False,
) -> None:
    """Write a complete, commented starter config (and train/dev/test tables) for your own data.

    With a labelled table, every column's role is inferred (text, audio, image, video by file
    extension; short codes such as a speaker are left out), the classes are read from the labels and
    the rows are split 60/20/20 (stratified, or disjoint by --group: whole groups move the shares).
    The sizes written are printed, with a warning for a split too small to select epochs, calibrate or
    test on. Without a table, a template table and config are written to fill in.
    """
    # deferred: pandas and scikit-learn load only when the command runs
    from affectfusion.data.starter import split_note, write_starter

    if folder.is_file():  # `init data.csv`: the table itself, its folder takes the config
        if table is not None:
            raise AffectFusionError(f"{folder} is a file; give a folder, or the table alone")
        folder, table = folder.parent, folder
    written, plan = write_starter(folder, table, label, group, force)
    for path in written:
        err_console.print(f"wrote {path}")
    if plan is None:
        console.print(f"Fill {written[1]}, then run: affectfusion init {folder} --table <your table> --force")
        return
    roles = ", ".join(f"{m} <- {c}" for m, c in plan.inputs.items())
    console.print(
        f"inputs: {roles}; label: {plan.label_column} ({len(plan.classes)} classes: {', '.join(plan.classes)})"
    )
    if plan.group_column:
        console.print(f"groups: {plan.group_column} (each group stays within one of train/dev/test)")
    console.print(f"splits: {split_note(plan)}", highlight=False)
    for warning in split_warnings(plan):
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if plan.ignored:
        console.print(f"left out (not text or media): {', '.join(plan.ignored)}; use --group for a speaker column")
    console.print(f"next: affectfusion train {written[0]}")


def split_warnings(plan: TablePlan) -> list[str]:
    """What the splits init wrote are too small for: the dev split to select epochs and calibrate on,
    the test split to score on."""
    from affectfusion.evaluation.conformal import split_too_small  # numpy: only once a table was split

    dev = plan.split_classes.get("dev", {})
    warnings = [split_too_small("dev", plan.split_sizes["dev"], dev)] if "dev" in plan.split_sizes else []
    test = plan.split_sizes.get("test", 30)
    if test < 30:
        warnings.append(
            f"test has only {test} rows: its scores are noisy (one row moves accuracy by {100 / test:.0f} points)"
        )
    return [w for w in warnings if w]
