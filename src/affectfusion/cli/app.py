"""The ``affectfusion`` Typer app: every command registered, and the error boundary.

Command modules import only typer, rich and the config schema at module level; each command
imports what it needs when it runs, so ``affectfusion --help`` starts in well under a second.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import warnings
from typing import Annotated

import typer

from affectfusion.cli import analysis, cv, data, export, runs, serve, train, trust, tune
from affectfusion.cli.common import err_console
from affectfusion.errors import AffectFusionError
from affectfusion.quiet import VERBOSE_ENV

app = typer.Typer(
    help="AffectFusion: multimodal emotion and affect recognition with interchangeable fusion strategies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show third-party libraries' logs and warnings too")
    ] = False,
) -> None:
    """Quiet by default: native libraries' start-up lines, INFO logs and known harmless warnings are hidden."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        logging.basicConfig(level=logging.INFO)
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
    # torch warns once per process when a read-only numpy array becomes a tensor; the data is only read
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


app.command()(train.train)
app.command()(runs.test)
app.command()(cv.cv)
app.command()(runs.compare)
app.command()(train.extract)
app.command("list")(runs.list_)
app.command()(data.init)
app.command()(train.demo)
app.command("analyze")(analysis.analyze_command)
app.command("ablate")(analysis.ablate_command)
app.command("robustness")(analysis.robustness_command)
app.command("check-data")(trust.check_data_command)
app.command("calibrate")(trust.calibrate_command)
app.command("export")(export.export_command)
app.command()(tune.tune)
serve.register(app)


def main() -> None:
    """Entry point: user errors become one red line and exit code 2, never a traceback."""
    try:
        app()
    except AffectFusionError as e:
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as e:  # a full disk met by a library's own writer (ours are AffectFusionErrors already)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        from affectfusion.io import disk_full  # deferred: io loads numpy, and the CLI starts without it

        err_console.print(f"[red]error:[/] {disk_full(e, e.filename)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(130)
