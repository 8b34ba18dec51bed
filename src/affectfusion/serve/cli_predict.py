"""``affectfusion predict``: one input from flags, or a table of inputs to a predictions CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from affectfusion.errors import AffectFusionError
from affectfusion.io import write_csv
from affectfusion.serve.predictor import Prediction, load_predictor

console = Console()
err_console = Console(stderr=True)


def predict_command(
    run: Annotated[
        Path, typer.Argument(help="Run directory written by `affectfusion train` (or a specialists output folder)")
    ],
    text: Annotated[str | None, typer.Option(help="Text (transcript, post, utterance)")] = None,
    audio: Annotated[Path | None, typer.Option(help="Audio file (WAV/FLAC/OGG/MP3)")] = None,
    image: Annotated[Path | None, typer.Option(help="Face image (JPG/PNG/BMP)")] = None,
    video: Annotated[Path | None, typer.Option(help="Video file (MP4/AVI/MOV/MKV/WEBM)")] = None,
    eeg: Annotated[Path | None, typer.Option(help="EEG as .npz with 'data' [channels, time] and 'sfreq'")] = None,
    features: Annotated[
        list[str] | None, typer.Option(help="Pre-extracted features for a modality: MODALITY=file.npy (repeatable)")
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(help="CSV/JSONL with one input per row: columns id and text/audio/image/video/signal or modality"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Predictions CSV for --batch (default: <batch>.predictions.csv)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the single prediction as JSON")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for --batch")] = True,
) -> None:
    """Predict with a trained run from raw media or features, for any subset of its modalities.

    Inputs go through the same extractors the run was trained with. Rows of a --batch table that
    cannot be used get their reason in the `error` column; the others are predicted.
    """
    from affectfusion.serve.batch import predict_table

    single = {"text": text, "audio": audio, "image": image, "video": video, "signal": eeg}
    single = {k: (str(v) if isinstance(v, Path) else v) for k, v in single.items() if v is not None}
    for item in features or []:
        if "=" not in item:
            raise AffectFusionError(f"--features expects MODALITY=file.npy, got {item!r}")
        modality, path = item.split("=", 1)
        single[modality.strip()] = path
    if batch is not None and single:
        raise AffectFusionError("give either --batch or single inputs (--text/--audio/...), not both")
    if batch is None and not single:
        raise AffectFusionError("nothing to predict: give --text/--audio/--image/--video/--eeg/--features or --batch")
    from affectfusion.serve.backends import run_kind

    if run_kind(run) == "vlm":
        _predict_vlm(run, single, batch, out, as_json)
        return
    predictor = load_predictor(run)  # a trained run, or a specialists folder (specialists, then fusion)
    if batch is not None:
        df = predict_table(predictor, batch, progress=progress)
        out = out or batch.with_suffix(".predictions.csv")
        write_csv(df, out)
        failed = int((df["error"] != "").sum())
        err_console.print(f"{len(df)} rows, {len(df) - failed} predicted, {failed} with errors -> {out}")
        return
    result = predictor.predict_one(single)
    if result.error:
        raise AffectFusionError(result.error)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        print_prediction(result)


def print_prediction(p: Prediction) -> None:
    """Per task the label (or value) and the class probabilities, then the modality weights."""
    for name, out in p.tasks.items():
        if "value" in out:
            console.print(f"[bold]{name}[/]: {out['value']:.4g}")
            continue
        shown = out.get("label") or ", ".join(out.get("labels", [])) or "(none)"
        table = Table(title=f"{name}: {shown}", title_justify="left")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for c, prob in sorted(out["probabilities"].items(), key=lambda kv: -kv[1]):
            table.add_row(c, f"{prob:.3f}")
        console.print(table)
    if p.modality_weights:
        weights = ", ".join(f"{m} {w:.2f}" for m, w in p.modality_weights.items())
        console.print(f"modality weights: {weights}")
    console.print(f"modalities used: {', '.join(p.modalities_used)}")


def _predict_vlm(run: Path, single: dict[str, str], batch: Path | None, out: Path | None, as_json: bool) -> None:
    """A vision-language run (``kind: vlm``): face images -> generated text and its parsed fields."""
    from affectfusion.data.media_table import read_table
    from affectfusion.serve.backends import VLMBackend

    if set(single) - {"image"}:
        raise AffectFusionError(f"a vision-language run takes only --image, not {', '.join(set(single) - {'image'})}")
    backend = VLMBackend(run)
    if batch is not None:
        df = backend.predict_table(read_table(batch), batch.parent)
        out = out or batch.with_suffix(".predictions.csv")
        write_csv(df, out)
        failed = int((df["error"] != "").sum())
        err_console.print(f"{len(df)} rows, {len(df) - failed} predicted, {failed} with errors -> {out}")
        return
    analysis = backend.analyse(single)
    if analysis.error:
        raise AffectFusionError(analysis.error)
    if as_json:
        console.print_json(json.dumps(analysis.raw))
        return
    console.print(f"[bold]emotion[/]: {analysis.headline.get('emotion')}")
    console.print(f"generated: {analysis.generated_text}", highlight=False)
    for name, value in analysis.fields.items():
        console.print(f"{name}: {value}", highlight=False)
