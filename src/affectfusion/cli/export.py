"""``export``: a fusion run's trained network as ONNX plus a JSON sidecar, checked against the Predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from affectfusion.cli.common import console, err_console


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A fusion run directory written by `affectfusion train`")],
    fmt: Annotated[str, typer.Option("--format", help="Export format (onnx)")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: RUN/export)")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Dataset root for the check on the test split (default: the config's)")
    ] = None,
) -> None:
    """Export a fusion run's network as ONNX plus a JSON sidecar, checked against the Predictor.

    Features in, probabilities / values out; any subset of the run's modalities through the graph's
    `present` input; dynamic batch size and sequence lengths. Before writing, onnxruntime runs the
    graph on the run's test split and must agree with the Predictor to 1e-4 (see docs/export.md).
    """
    from affectfusion.serve.export import export_run  # torch, onnx: only when exporting

    result = export_run(run_dir, out, fmt, data)
    check = result.check
    err_console.print(f"exported in {result.export_seconds:.1f} s: {result.model} and {result.sidecar}")
    console.print(
        f"checked against the Predictor on split {check['split']!r} ({check['samples']} samples, "
        f"{len(check['subsets'])} modality subsets) in {result.check_seconds:.1f} s: "
        f"max abs diff {check['max_abs_diff']:.2e} (tolerance {check['tolerance']:g})",
        highlight=False,
    )
